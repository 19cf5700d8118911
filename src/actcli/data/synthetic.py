"""The built-in synthetic action dataset: real MPEG-4 AVI files in UCF50's layout.

Each clip shows one shape (ellipse, rectangle or triangle, never round, so rotation shows)
on a textured background. The class is *how it moves*: left, right, up, down, growing,
shrinking, turning clockwise or anticlockwise. Start position, size, colours, speed and
shape are random, so no single frame tells the class and frame order matters.

Groups play the role of UCF's groups (same actor and scene): every clip of group ``gNN``
shares a background texture and palette, across all classes, so a group-aware split
really keeps scenes out of the test set while the background cannot give the class away.

With ``audio=True`` every clip also has a sound track and each class is a motion plus a
sound (``MoveLeftBeep``, ``MoveLeftHiss``, ...; see :mod:`actcli.data.synthetic_audio`), so
some classes differ only in what is heard: the dataset on which fusing modalities must help.

Layout: ``DEST/<Class>/v_<Class>_gNN_cMM.avi`` (UCF50's), deterministic from the seed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from actcli.data.synthetic_audio import SAMPLE_RATE, SOUNDS, render_sound
from actcli.fileio import atomic_path

MOTIONS: tuple[str, ...] = (
    "MoveLeft",
    "MoveRight",
    "MoveUp",
    "MoveDown",
    "Grow",
    "Shrink",
    "RotateClockwise",
    "RotateAnticlockwise",
)
FPS = 25
CODEC = "mpeg4"


@dataclass(frozen=True)
class SyntheticSpec:
    """Size of the generated dataset. Defaults train to >90% in a few CPU minutes."""

    classes: int = 8
    groups: int = 20
    clips_per_class: int = 40
    frames: int = 32
    width: int = 160
    height: int = 120
    seed: int = 0
    audio: bool = False


@dataclass(frozen=True)
class Pose:
    """Where the shape is in one frame: centre (pixels), scale (pixels), angle (radians)."""

    x: float
    y: float
    scale: float
    angle: float


def clip_name(motion: str, group: int, clip: int) -> str:
    """UCF-style file name, e.g. ``v_MoveLeft_g03_c02.avi`` (groups and clips 1-based)."""
    return f"v_{motion}_g{group:02d}_c{clip:02d}.avi"


def motion_path(motion: str, rng: np.random.Generator, width: int, height: int) -> Callable[[float], Pose]:
    """Random start pose and speed for ``motion``; returns pose as a function of t in [0, 1].

    Motions are large (40% of the frame, most of a half turn, a twofold size change) so
    that any clip covering most of the video shows them clearly.
    """
    short = min(width, height)
    scale = rng.uniform(0.08, 0.12) * short
    travel = rng.uniform(0.35, 0.45) * short
    angle0 = rng.uniform(0, 2 * math.pi)
    turn = rng.uniform(0.6, 0.9) * math.pi
    growth = rng.uniform(2.0, 2.6)

    def start(span_x: float, span_y: float, margin: float) -> tuple[float, float]:
        x = rng.uniform(margin + max(0.0, -span_x), width - margin - max(0.0, span_x))
        y = rng.uniform(margin + max(0.0, -span_y), height - margin - max(0.0, span_y))
        return x, y

    if motion in ("MoveLeft", "MoveRight"):
        dx = travel if motion == "MoveRight" else -travel
        x0, y0 = start(dx, 0.0, scale * 0.7)
        return lambda t: Pose(x0 + dx * t, y0, scale, angle0)
    if motion in ("MoveUp", "MoveDown"):
        dy = travel if motion == "MoveDown" else -travel
        x0, y0 = start(0.0, dy, scale * 0.7)
        return lambda t: Pose(x0, y0 + dy * t, scale, angle0)
    if motion in ("Grow", "Shrink"):
        small = scale * 0.6
        big = min(small * growth, 0.45 * short)
        x0, y0 = start(0.0, 0.0, big)
        first, last = (small, big) if motion == "Grow" else (big, small)
        return lambda t: Pose(x0, y0, first + (last - first) * t, angle0)
    if motion in ("RotateClockwise", "RotateAnticlockwise"):
        # Image y points down, so a growing angle turns clockwise on screen.
        sign = 1.0 if motion == "RotateClockwise" else -1.0
        x0, y0 = start(0.0, 0.0, scale * 1.2)
        return lambda t: Pose(x0, y0, scale * 1.2, angle0 + sign * turn * t)
    raise ValueError(f"unknown motion {motion!r}")


def shape_mask(shape: str, pose: Pose, xs: np.ndarray, ys: np.ndarray, aspect: float) -> np.ndarray:
    """Boolean ``[H, W]`` mask of an elongated shape at ``pose`` (pixel grids ``xs``, ``ys``)."""
    cos, sin = math.cos(pose.angle), math.sin(pose.angle)
    u = ((xs - pose.x) * cos + (ys - pose.y) * sin) / pose.scale
    v = (-(xs - pose.x) * sin + (ys - pose.y) * cos) / pose.scale
    if shape == "ellipse":
        return u**2 + (v * aspect) ** 2 <= 1.0
    if shape == "rectangle":
        return (np.abs(u) <= 1.0) & (np.abs(v) * aspect <= 1.0)
    # Triangle with an apex at u=1: convex, so inside = under all three edges.
    return (u <= 1.0) & (u >= -1.0) & (np.abs(v) * aspect <= (1.0 - u) * 0.5 + 1e-9)


def group_background(group: int, seed: int, width: int, height: int) -> np.ndarray:
    """The scene of a group: ``uint8 [H, W, 3]`` smooth colour gradient plus stripes."""
    rng = np.random.default_rng([seed, 1_000_003, group])
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(20, 90, size=3)
    tilt = rng.uniform(-20, 20, size=3)
    gradient = base + tilt * (xs / width)[..., None]
    theta = rng.uniform(0, math.pi)
    period = rng.uniform(12, 40)
    stripes = np.sin((xs * math.cos(theta) + ys * math.sin(theta)) * 2 * math.pi / period)
    image = gradient + rng.uniform(2, 6) * stripes[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def render_clip(motion: str, group: int, clip: int, spec: SyntheticSpec, variant: int = 0) -> np.ndarray:
    """All frames of one clip: ``uint8 [T, H, W, 3]`` RGB.

    Two to four shapes perform the same motion, each from its own random pose, size and
    colour, so the motion covers much of the frame and is easy to see at low resolution.
    ``variant`` (> 0 for the sound classes) draws another clip of the same motion.
    """
    motion_index = MOTIONS.index(motion)
    rng = np.random.default_rng([spec.seed, motion_index, group, clip] + ([variant] if variant else []))
    background = group_background(group, spec.seed, spec.width, spec.height)
    objects = []
    for _ in range(int(rng.integers(6, 10))):
        path = motion_path(motion, rng, spec.width, spec.height)
        shape = str(rng.choice(["ellipse", "rectangle", "triangle"]))
        colour = rng.uniform(120, 255, size=3)
        colour[rng.integers(3)] = 255  # brighter than the (dark) scene
        objects.append((path, shape, rng.uniform(1.8, 2.6), colour))
    noise = rng.normal(0, 3, size=(spec.frames, spec.height, spec.width, 1))
    ys, xs = np.mgrid[0 : spec.height, 0 : spec.width].astype(np.float32)
    frames = np.empty((spec.frames, spec.height, spec.width, 3), dtype=np.uint8)
    for index in range(spec.frames):
        t = index / max(1, spec.frames - 1)
        frame = background.astype(np.float32)
        for path, shape, aspect, colour in objects:
            frame[shape_mask(shape, path(t), xs, ys, aspect)] = colour
        frames[index] = np.clip(frame + noise[index], 0, 255).astype(np.uint8)
    return frames


def write_video(path: Path, frames: np.ndarray, fps: int = FPS, audio: np.ndarray | None = None,
                audio_rate: int = SAMPLE_RATE) -> None:
    """Encode ``uint8 [T, H, W, 3]`` RGB frames as MPEG-4 in AVI, atomically; with ``audio``
    (``float32 [S]`` mono in [-1, 1]) also a 16-bit PCM sound track."""
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="avi") as container:
        stream = container.add_stream(CODEC, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 400_000
        sound = container.add_stream("pcm_s16le", rate=audio_rate, layout="mono") if audio is not None else None
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None and audio is not None:
            samples = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None, :]
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate = audio_rate
            for packet in sound.encode(frame):
                container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)


def class_names(spec: SyntheticSpec) -> dict[str, tuple[str, str | None]]:
    """Class name -> (motion, sound or None): the first ``classes`` motions, or with audio the
    first ``classes / 2`` motions, each with every sound."""
    if spec.audio:
        if spec.classes % 2 or not 2 <= spec.classes <= 2 * len(MOTIONS):
            raise ValueError(f"with audio, classes must be even and between 2 and {2 * len(MOTIONS)}")
        return {f"{m}{s}": (m, s) for m in MOTIONS[: spec.classes // 2] for s in SOUNDS}
    if not 2 <= spec.classes <= len(MOTIONS):
        raise ValueError(f"classes must be between 2 and {len(MOTIONS)}")
    return {m: (m, None) for m in MOTIONS[: spec.classes]}


def plan(spec: SyntheticSpec) -> list[tuple[str, int, int]]:
    """Every clip to generate as ``(class, group, clip)``, clips spread evenly over groups."""
    items = []
    for name in class_names(spec):
        for n in range(spec.clips_per_class):
            items.append((name, n % spec.groups + 1, n // spec.groups + 1))
    return items


def _write_clip(dest: Path, name: str, group: int, clip: int, spec: SyntheticSpec) -> None:
    motion, sound = class_names(spec)[name]
    if sound is None:
        write_video(dest / name / clip_name(name, group, clip), render_clip(motion, group, clip, spec))
        return
    variant = 1 + SOUNDS.index(sound)
    frames = render_clip(motion, group, clip, spec, variant)
    audio = render_sound(sound, [spec.seed, MOTIONS.index(motion), group, clip, variant], spec.frames / FPS)
    write_video(dest / name / clip_name(name, group, clip), frames, audio=audio)


def generate(
    dest: Path, spec: SyntheticSpec, progress: Callable[[int], None] | None = None, workers: int | None = None
) -> int:
    """Write the dataset under ``dest`` with ``workers`` processes (default: all CPUs).

    Files already present are kept, so an interrupted run resumes. Returns the clip count.
    """
    items = plan(spec)
    todo = [item for item in items if not (dest / item[0] / clip_name(*item)).exists()]
    if progress is not None:
        progress(len(items) - len(todo))
    workers = min(workers or os.cpu_count() or 1, len(todo))
    if workers <= 1:
        for item in todo:
            _write_clip(dest, *item, spec)
            if progress is not None:
                progress(1)
        return len(items)
    with ProcessPoolExecutor(workers) as pool:
        for future in as_completed([pool.submit(_write_clip, dest, *item, spec) for item in todo]):
            future.result()
            if progress is not None:
                progress(1)
    return len(items)
