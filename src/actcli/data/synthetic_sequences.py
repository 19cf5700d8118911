"""The synthetic anticipation dataset: real videos, each a sequence of the synthetic motion actions
that follows a fixed, documented transition grammar, so the next action is predictable from the
ones seen, with a known best possible accuracy.

Every video (``DEST/videos/seq_gNN_vMMM.mp4``, MPEG-4 Part 2 in MP4 at 25 fps, a key frame every 12
frames, so a clip anywhere in the video is read after a seek instead of decoding from the start)
shows ``actions`` actions one after the other, each lasting 1.5-3 s (uniform, whole frames), each
drawn as streams of shapes performing its motion at the speed of :mod:`actcli.data.synthetic`'s
clips, over the scene of the video's group ``gNN`` (:func:`render_video`). Which action comes next
follows a second-order Markov chain over the
8 motion classes (:class:`Grammar`):

* the first action is uniform over the 8 classes, the second uniform over the 7 others;
* afterwards, with ``a`` and ``b`` the two previous actions, the next is ``rule(a, b)`` with
  probability ``p`` (0.9) and otherwise uniform over the 6 classes that are neither ``b`` nor
  ``rule(a, b)``. ``rule(a, b)`` is the class ``shift(b)`` places after ``a`` in the cyclic order of
  the 7 classes other than ``b`` (``shift(b) = 1 + (3b mod 6)``), so it is never ``a`` or ``b``,
  and for a fixed ``b`` every ``a`` leads elsewhere: knowing the last action alone leaves the next
  uniform over 7 classes (1/7 top-1), the next is never the last one ("same as the last action":
  0), and only a model that recognises the *two* previous actions can reach the best possible
  top-1, ``p``.

Beside the videos: ``segments.csv`` (the segment list in the format of ``--dataset list``:
``path,label,start,end,group``, plus each action's ``position`` in its video), ``grammar.json``
(the rule table, the full transition tensor and the Bayes-optimal next-action top-1 and top-5,
computed exactly from it) and ``synthetic-sequences.json`` (the options, so a second run with
other options into the same folder is refused). Deterministic from the seed; an interrupted run
resumes (videos already written are kept).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd

from actcli.data.synthetic import CODEC, FPS, MOTIONS, group_background, motion_path, shape_mask
from actcli.fileio import atomic_path, write_json, write_text

MANIFEST = "synthetic-sequences.json"
GRAMMAR = "grammar.json"
SEGMENTS = "segments.csv"


@dataclass(frozen=True)
class SequenceSpec:
    """Size of the generated dataset (defaults: ``make demo-anticipation``'s)."""

    videos: int = 160
    groups: int = 16
    actions: int = 10
    min_seconds: float = 1.5
    max_seconds: float = 3.0
    width: int = 64
    height: int = 48
    rule_probability: float = 0.9
    seed: int = 0


class Grammar:
    """The second-order transition grammar of the module docstring over ``len(classes)`` classes."""

    def __init__(self, classes: tuple[str, ...] = MOTIONS, p: float = 0.9) -> None:
        if len(classes) < 4:
            raise ValueError("the grammar needs at least 4 classes")
        self.classes, self.p = tuple(classes), float(p)

    @property
    def size(self) -> int:
        return len(self.classes)

    def shift(self, b: int) -> int:
        """How far ``rule(a, b)`` lies after ``a`` among the classes other than ``b``: 1 .. K - 2."""
        return 1 + (3 * b) % (self.size - 2)

    def rule(self, a: int, b: int) -> int:
        """The likely next class after ``a`` then ``b`` (``a != b``): never ``a``, never ``b``."""
        others = [c for c in range(self.size) if c != b]
        return others[(others.index(a) + self.shift(b)) % len(others)]

    def transition(self) -> np.ndarray:
        """``float [K, K, K]``: ``P(next = c | a, b)`` for ``a != b`` (rows with ``a == b`` are zero)."""
        k = self.size
        table = np.zeros((k, k, k))
        for a in range(k):
            for b in range(k):
                if a == b:
                    continue
                likely = self.rule(a, b)
                rest = [c for c in range(k) if c not in (b, likely)]
                table[a, b, rest] = (1.0 - self.p) / len(rest)
                table[a, b, likely] = self.p
        return table

    def bayes_optimal(self, k: int) -> float:
        """The best possible top-``k`` accuracy of the next action given the two previous ones: the sum
        of the ``k`` largest ``P(c | a, b)``, the same for every context (checked), so exact whatever
        the contexts' frequencies."""
        table = self.transition()
        values = {round(float(np.sort(table[a, b])[::-1][:k].sum()), 12)
                  for a in range(self.size) for b in range(self.size) if a != b}
        if len(values) != 1:
            raise AssertionError(f"contexts differ in their best top-{k}: {sorted(values)}")
        return values.pop()

    def sample(self, count: int, rng: np.random.Generator) -> list[int]:
        """``count`` classes following the grammar."""
        k = self.size
        sequence = [int(rng.integers(k))]
        if count > 1:
            sequence.append(int(rng.choice([c for c in range(k) if c != sequence[0]])))
        table = self.transition()
        while len(sequence) < count:
            probs = table[sequence[-2], sequence[-1]]
            sequence.append(int(rng.choice(k, p=probs)))
        return sequence[:count]

    def describe(self) -> dict:
        """What ``grammar.json`` holds."""
        k = self.size
        return {
            "classes": list(self.classes),
            "order": 2,
            "rule_probability": self.p,
            "first_action": "uniform over the classes",
            "second_action": "uniform over the classes other than the first",
            "next_action": ("rule[a][b] with probability rule_probability, else uniform over the classes that are "
                            "neither b nor rule[a][b] (a, b: the two previous actions)"),
            "rule": {self.classes[a]: {self.classes[b]: self.classes[self.rule(a, b)] for b in range(k) if b != a}
                     for a in range(k)},
            "transition": self.transition().round(6).tolist(),
            "transition_layout": "transition[a][b][c] = P(next = c | two previous actions a then b), class ids as "
                                 "in classes",
            "bayes_optimal_next_action": {"top1": self.bayes_optimal(1), "top5": self.bayes_optimal(5)},
            "bayes_optimal_note": ("best possible accuracy for an action whose two previous actions are known (every "
                                   "action from the third on); anticipation windows that start before the video are "
                                   "dropped with --before-start drop, which keeps only such actions for tau_a + tau_o "
                                   ">= 2 x max_seconds"),
            "baselines_expected": {"same_as_last_action_top1": 0.0,
                                   "most_frequent_next_given_last_top1": round(1.0 / (k - 1), 6)},
        }


def video_name(group: int, video: int) -> str:
    return f"videos/seq_g{group:02d}_v{video:03d}.mp4"


def write_video(path: Path, frames: np.ndarray, fps: int = FPS) -> None:
    """Encode ``uint8 [T, H, W, 3]`` RGB frames as MPEG-4 in MP4 (timestamps, so readers seek), atomically."""
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream(CODEC, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 300_000
        stream.gop_size = 12
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def plan(spec: SequenceSpec) -> list[tuple[int, int]]:
    """Every video as ``(group, video)``, spread evenly over the groups (both 1-based)."""
    return [(n % spec.groups + 1, n + 1) for n in range(spec.videos)]


def video_actions(spec: SequenceSpec, video: int) -> tuple[list[int], list[int]]:
    """The classes of one video's actions and their frame boundaries (``len + 1`` frame numbers)."""
    rng = np.random.default_rng([spec.seed, 7_000_001, video])
    classes = Grammar(MOTIONS, spec.rule_probability).sample(spec.actions, rng)
    lengths = rng.integers(math.ceil(spec.min_seconds * FPS), math.floor(spec.max_seconds * FPS) + 1,
                           size=spec.actions)
    return classes, [0, *np.cumsum(lengths).tolist()]


LIFETIME = (28, 36)  # frames one shape takes for its motion: about a clip of actcli.data.synthetic (32 frames)


def _shape(motion: str, rng: np.random.Generator, spec: SequenceSpec):
    colour = rng.uniform(120, 255, size=3)
    colour[rng.integers(3)] = 255  # brighter than the (dark) scene
    return (motion_path(motion, rng, spec.width, spec.height), str(rng.choice(["ellipse", "rectangle", "triangle"])),
            rng.uniform(1.8, 2.6), colour)


def render_video(spec: SequenceSpec, group: int, video: int) -> np.ndarray:
    """All frames of one video: ``uint8 [T, H, W, 3]``.

    Each action is drawn as 5-7 streams of shapes on the scene of the video's group: every shape performs
    the action's motion once, over 28-36 frames (as fast as in a clip of :mod:`actcli.data.synthetic`), and
    is replaced by a new one (random pose, size, colour) when it is done, each stream at its own phase. So
    every moment of an action, however short the window, shows its motion at full speed, and the only
    thing that changes at a boundary is the motion.
    """
    classes, bounds = video_actions(spec, video)
    rng = np.random.default_rng([spec.seed, 7_000_003, video])
    background = group_background(group, spec.seed, spec.width, spec.height).astype(np.float32)
    ys, xs = np.mgrid[0:spec.height, 0:spec.width].astype(np.float32)
    frames = np.empty((bounds[-1], spec.height, spec.width, 3), dtype=np.uint8)
    for cls, first, stop in zip(classes, bounds[:-1], bounds[1:], strict=True):
        motion = MOTIONS[cls]
        streams = []
        for _ in range(int(rng.integers(5, 8))):
            life = int(rng.integers(*LIFETIME))
            streams.append([life, int(rng.integers(life)), _shape(motion, rng, spec)])  # life, age, current shape
        for i in range(stop - first):
            frame = background.copy()
            for stream in streams:
                life, age, (path, shape, aspect, colour) = stream
                frame[shape_mask(shape, path(age / (life - 1)), xs, ys, aspect)] = colour
                stream[1] = age + 1
                if stream[1] >= life:
                    stream[1], stream[2] = 0, _shape(motion, rng, spec)
            frame += rng.normal(0, 3, size=(spec.height, spec.width, 1))
            frames[first + i] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def segment_rows(spec: SequenceSpec) -> pd.DataFrame:
    """The segment list: one row per action of every video (``path,label,start,end,group,position``)."""
    rows = []
    for group, video in plan(spec):
        classes, bounds = video_actions(spec, video)
        for position, (cls, first, stop) in enumerate(zip(classes, bounds[:-1], bounds[1:], strict=True)):
            rows.append({"path": video_name(group, video), "label": MOTIONS[cls], "start": round(first / FPS, 6),
                         "end": round(stop / FPS, 6), "group": f"g{group:02d}", "position": position})
    return pd.DataFrame(rows)


def _write(dest: Path, spec: SequenceSpec, group: int, video: int) -> None:
    write_video(dest / video_name(group, video), render_video(spec, group, video))


def check_spec(spec: SequenceSpec) -> None:
    """ValueError naming the first option out of range."""
    if spec.videos < 1 or spec.groups < 1 or spec.actions < 3:
        raise ValueError("--videos and --groups must be at least 1 and --actions at least 3")
    if not 0.5 <= spec.min_seconds <= spec.max_seconds:
        raise ValueError("action lengths must satisfy 0.5 <= min <= max seconds")
    if not 0 < spec.rule_probability <= 1:
        raise ValueError("the rule probability must be in (0, 1]")
    if spec.width < 32 or spec.height < 32:
        raise ValueError("videos must be at least 32x32 pixels")


def generate(dest: Path, spec: SequenceSpec, progress: Callable[[int], None] | None = None,
             workers: int | None = None) -> int:
    """Write the videos, ``segments.csv``, ``grammar.json`` and the manifest under ``dest``; returns the video
    count. Videos already there are kept (an interrupted run resumes); a folder made with other options
    raises ValueError."""
    check_spec(spec)
    manifest = dest / MANIFEST
    wanted = {"generator": 2, **asdict(spec)}
    if manifest.is_file() and json.loads(manifest.read_text(encoding="utf-8")) != wanted:
        raise ValueError(f"{dest} holds synthetic sequences made with other options; pass another --dest or delete "
                         "the folder")
    items = plan(spec)
    todo = [item for item in items if not (dest / video_name(*item)).exists()]
    if progress is not None:
        progress(len(items) - len(todo))
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo)))
    if workers == 1:
        for item in todo:
            _write(dest, spec, *item)
            if progress is not None:
                progress(1)
    elif todo:
        with ProcessPoolExecutor(workers) as pool:
            for future in as_completed([pool.submit(_write, dest, spec, *item) for item in todo]):
                future.result()
                if progress is not None:
                    progress(1)
    write_text(dest / SEGMENTS, segment_rows(spec).to_csv(index=False, lineterminator="\n"))
    write_json(dest / GRAMMAR, {**Grammar(MOTIONS, spec.rule_probability).describe(), "spec": asdict(spec)})
    write_json(manifest, wanted)
    return len(items)


def read_grammar(root: Path) -> dict | None:
    """``grammar.json`` of a synthetic-sequences root (or its parent), None when there is none."""
    for folder in (root, root.parent):
        path = folder / GRAMMAR
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                return None
    return None
