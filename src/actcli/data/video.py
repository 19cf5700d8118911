"""Video decoding that reads only the frames a clip needs, and frame-index sampling.

Two decoders read clips the same way: to read frames ``[i0 .. i1]`` they seek to the key
frame at or before ``i0`` and decode forward until ``i1``, so a clip from the middle of a
long video costs a few GOPs, not the whole file.

* ``pyav``: PyAV, FFmpeg bundled in the wheel, always installed;
* ``torchcodec``: FFmpeg's system libraries (``apt-get install ffmpeg``); 1.5-2.7x faster
  on UCF50-like files here (docs/performance.md), so ``auto`` picks it when it works.

Frame indices are 0-based positions in display order. A video's frame count comes from
the container header when present, else from duration x fps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from actcli.errors import UserError

DECODERS = ("auto", "torchcodec", "pyav")
SMALL_FRAME_PIXELS = 640 * 480


class DecodeError(Exception):
    """A video file could not be opened or decoded (missing, corrupt, no video stream)."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video: frame count, frames per second, size in pixels."""

    frames: int
    fps: float
    width: int
    height: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.fps if self.fps else 0.0


def _open(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise DecodeError(f"cannot open {path}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise DecodeError(f"{path} has no video stream")
    return container


def _info(stream: av.video.stream.VideoStream, container: av.container.InputContainer) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    frames = int(stream.frames or 0)
    if frames <= 0 and fps > 0:
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        else:
            seconds = (container.duration or 0) / av.time_base
        frames = int(round(seconds * fps))
    return VideoInfo(frames=frames, fps=fps, width=stream.width, height=stream.height)


def probe(path: Path) -> VideoInfo:
    """Read the header of ``path``; raises :class:`DecodeError` if it is not a readable video."""
    container = _open(path)
    try:
        info = _info(container.streams.video[0], container)
    finally:
        container.close()
    if info.frames <= 0 or info.width <= 0:
        raise DecodeError(f"{path} reports no frames")
    return info


def _frame_index(frame: av.VideoFrame, start: float, fps: float) -> int:
    if frame.time is None:
        raise DecodeError("frame without timestamp")
    return int(round((frame.time - start) * fps))


def ffmpeg_threads(width: int, height: int) -> int:
    """FFmpeg decoding threads for frames of this size: 1 up to 640x480, else 0 (FFmpeg picks).

    Measured on 2 cores: threads cost more than they give on 320x240 frames (6.6 vs 10.5 ms
    per clip with torchcodec) and pay off on 1080p (0.50 vs 0.92 s).
    """
    return 1 if width * height <= SMALL_FRAME_PIXELS else 0


def resolve_decoder(name: str) -> str:
    """``auto`` -> ``torchcodec`` when it works here, else ``pyav``; an unusable choice -> UserError."""
    if name not in DECODERS:
        raise UserError(f"unknown decoder {name!r}; choose one of {', '.join(DECODERS)}")
    from actcli.data.torchcodec_video import unavailable_reason

    reason = unavailable_reason() if name != "pyav" else None
    if name == "torchcodec" and reason:
        raise UserError(f"{reason}, or use --decoder pyav")
    if name == "auto":
        return "pyav" if reason else "torchcodec"
    return name


def read_clip(
    path: Path, choose: Callable[[VideoInfo], Sequence[int]], decoder: str = "pyav"
) -> tuple[torch.Tensor, list[int]]:
    """Open ``path`` once, pick frame indices from its header with ``choose``, decode them.

    ``decoder`` is ``pyav`` or ``torchcodec`` (see :func:`resolve_decoder`). A file torchcodec
    cannot decode (e.g. a header that over-counts frames) is retried with PyAV for the same
    indices, so both decoders accept the same files.

    Returns:
        ``uint8 [T, C, H, W]`` RGB frames in the order chosen (T = number of indices), and
        the indices that were requested from the decoder.
    Raises:
        DecodeError: the file is missing, corrupt or has no decodable frame.
    """
    if decoder == "pyav":
        return read_clip_pyav(path, choose)
    from actcli.data.torchcodec_video import read_clip_torchcodec

    chosen: list[list[int]] = []

    def choose_once(info: VideoInfo) -> list[int]:
        if not chosen:
            chosen.append([int(i) for i in choose(info)])
        return chosen[0]

    try:
        return read_clip_torchcodec(path, choose_once)
    except DecodeError:
        return read_clip_pyav(path, choose_once)


def read_clip_pyav(
    path: Path, choose: Callable[[VideoInfo], Sequence[int]]
) -> tuple[torch.Tensor, list[int]]:
    """:func:`read_clip` with PyAV: open ``path`` once, pick indices with ``choose``, decode them.

    Indices past the last decodable frame get the last frame (headers sometimes over-count).

    Returns:
        ``uint8 [T, C, H, W]`` RGB frames in the order chosen (T = number of indices), and
        the indices that were requested from the decoder.
    Raises:
        DecodeError: the file is missing, corrupt or has no decodable frame.
    """
    container = _open(path)
    try:
        stream = container.streams.video[0]
        info = _info(stream, container)
        if ffmpeg_threads(info.width, info.height) != 1:
            stream.thread_type = "AUTO"
        indices = [int(i) for i in choose(info)]
        if not indices:
            raise ValueError("no frame indices chosen")
        frames = _decode_range(container, stream, sorted(set(indices)), info.fps)
    except (av.FFmpegError, ValueError) as exc:
        raise DecodeError(f"cannot decode {path}: {exc}") from exc
    finally:
        container.close()
    if not frames:
        raise DecodeError(f"cannot decode {path}: no frames")
    last = frames[max(frames)]
    stacked = np.stack([frames.get(i, last) for i in indices])  # [T, H, W, C]
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous(), indices


def read_frames(path: Path, indices: Sequence[int], decoder: str = "pyav") -> torch.Tensor:
    """Decode the frames at ``indices`` (any order, repeats allowed): ``uint8 [T, C, H, W]``."""
    return read_clip(path, lambda _info: indices, decoder)[0]


def _decode_range(
    container, stream, wanted: list[int], fps: float, seek: bool = True
) -> dict[int, np.ndarray]:
    """Decode from the key frame before ``wanted[0]`` up to ``wanted[-1]``.

    Returns ``{index: uint8 [H, W, C]}`` for the wanted indices found, plus the last frame
    decoded when the video ends early (the caller pads missing indices with it).
    """
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    first, last = wanted[0], wanted[-1]
    seeked = seek and first > 0 and fps > 0 and stream.time_base is not None
    if seeked:
        target = int((start + first / fps) / stream.time_base)
        container.seek(target, stream=stream, backward=True, any_frame=False)
    wanted_set = set(wanted)
    found: dict[int, np.ndarray] = {}
    index, previous = -1, None
    for count, frame in enumerate(container.decode(stream)):
        index = _frame_index(frame, start, fps) if fps > 0 else count
        if seeked and count == 0 and index > first:
            # The seek landed past the first wanted frame: decode from the start instead.
            container.seek(0, stream=stream, backward=True, any_frame=False)
            return _decode_range(container, stream, wanted, fps, seek=False)
        if index in wanted_set:
            found[index] = frame.to_ndarray(format="rgb24")
        previous = frame
        if index >= last:
            break
    if previous is not None and index < last and index not in found:
        found[index] = previous.to_ndarray(format="rgb24")
    return found


@dataclass(frozen=True)
class ClipSpec:
    """How a clip is cut: ``frames`` frames taken every ``stride`` source frames, ``crop`` pixels."""

    frames: int
    stride: int
    crop: int

    def __str__(self) -> str:
        return f"{self.frames}x{self.stride}@{self.crop}"


def clip_indices(num_frames: int, frames: int, stride: int, start: int) -> list[int]:
    """Indices of a clip of ``frames`` frames, ``stride`` apart, from ``start``.

    Indices are clamped to ``[0, num_frames - 1]`` so videos shorter than the clip repeat
    their last frame.
    """
    last = max(0, num_frames - 1)
    return [min(start + k * stride, last) for k in range(frames)]


def clip_span(frames: int, stride: int) -> int:
    """Number of source frames one clip covers."""
    return (frames - 1) * stride + 1


def centre_clip_start(num_frames: int, frames: int, stride: int) -> int:
    """The start that centres the clip in the video (0 if the video is shorter)."""
    return max(0, (num_frames - clip_span(frames, stride)) // 2)


def require_readable(path: Path) -> VideoInfo:
    """:func:`probe` for user-facing commands: a bad file becomes a :class:`UserError`."""
    if not path.is_file():
        raise UserError(f"video {path} not found; check the path")
    try:
        return probe(path)
    except DecodeError as exc:
        raise UserError(f"{exc}; the file is not a readable video") from None
