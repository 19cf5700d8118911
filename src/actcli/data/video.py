"""Video decoding that reads only the frames a clip needs, and frame-index sampling.

**Frame indices** are 0-based positions in display order: frame ``i`` is the ``i``-th frame
a decoder outputs from the start of the file, on every file and with either decoder. Two
kinds of container need two ways of finding it:

* containers with presentation timestamps (MP4/MOV, MKV/WebM, MPEG-TS, ...): frame ``i`` is
  the frame on display at ``start + i / fps`` seconds, where ``start`` is the stream's first
  timestamp (MKV/WebM files often start at ``t > 0``). The reader seeks to the key frame
  before the first wanted frame, so a clip from the middle of a long video costs a few GOPs.
  On variable-frame-rate files a time with no frame of its own shows the nearest *earlier*
  frame, never a later one.
* containers without them (AVI, raw elementary streams): the timestamps FFmpeg reports
  follow the packets, not the display. On MPEG-4 Part 2 AVIs with B-frames (DivX/XviD
  "packed bitstream", the codec of UCF50, UCF101 and HMDB51) they run 2, 4, 3, 6, 5, ...
  while the decoded frames come out in display order, so these files are decoded from
  their start and frames counted (:data:`COUNTED_FORMATS`). A short clip costs about what a
  seek would (measured: 40 vs 52 ms for a 7 s 320x240 XviD file); long AVIs cost more:
  ``--cache-clips`` decodes them once.

Two decoders:

* ``pyav``: PyAV, FFmpeg bundled in the wheel, always installed;
* ``torchcodec``: FFmpeg's system libraries (``apt-get install ffmpeg``); faster on files with
  timestamps. torchcodec locates frames by timestamp, so files of :data:`COUNTED_FORMATS` are
  read by PyAV whatever the choice (:func:`torchcodec_can_index`).

A video's frame count and rate come from the container header (through PyAV, whichever
decoder then decodes): the header's frame count when present, else the stream's duration
(without its start offset) x fps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from actcli.errors import UserError

DECODERS = ("auto", "torchcodec", "pyav", "torchcodec-cuda")
SMALL_FRAME_PIXELS = 640 * 480
READER_VERSION = 2  # bumped when the frames read for an index change; part of every cache key
COUNTED_FORMATS = frozenset({"avi", "m4v", "h264", "hevc", "h263", "mpegvideo", "mjpeg", "rawvideo", "cavsvideo"})


class DecodeError(Exception):
    """A video file could not be opened or decoded (missing, corrupt, no video stream)."""


class _UnorderedTimestamps(Exception):
    """Decoded frames' timestamps are missing or go backwards: count frames instead."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video: frame count, frames per second, size in pixels,
    ``start``, the first frame's time in seconds (index ``i`` is at ``start + i / fps``), and
    ``constant_rate``: False when the average rate differs from the stream's base rate (a
    variable-frame-rate file, e.g. from a phone)."""

    frames: int
    fps: float
    width: int
    height: int
    start: float = 0.0
    constant_rate: bool = True

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


def counts_frames(container: av.container.InputContainer) -> bool:
    """Whether frames of this container are found by counting (no display timestamps)."""
    return bool(COUNTED_FORMATS.intersection(container.format.name.split(",")))


def _stream_start(stream: av.video.stream.VideoStream) -> float:
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def _info(stream: av.video.stream.VideoStream, container: av.container.InputContainer) -> VideoInfo:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    start = 0.0 if counts_frames(container) else _stream_start(stream)
    frames = int(stream.frames or 0)
    if frames <= 0 and fps > 0:
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        else:  # the container's duration runs from time 0: take off where the stream starts
            begin = (container.start_time or 0) / av.time_base
            seconds = (container.duration or 0) / av.time_base - max(0.0, begin)
        frames = int(round(seconds * fps))
    base = float(stream.base_rate) if stream.base_rate else fps
    constant = fps <= 0 or abs(base - fps) <= 1e-3 * fps
    return VideoInfo(frames=frames, fps=fps, width=stream.width, height=stream.height, start=start,
                     constant_rate=constant)


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


def ffmpeg_threads(width: int, height: int) -> int:
    """FFmpeg decoding threads for frames of this size: 1 up to 640x480, else 0 (FFmpeg picks).

    Measured on 2 cores: threads cost more than they give on 320x240 frames (6.6 vs 10.5 ms
    per clip with torchcodec) and pay off on 1080p (0.50 vs 0.92 s).
    """
    return 1 if width * height <= SMALL_FRAME_PIXELS else 0


def resolve_decoder(name: str) -> str:
    """``auto`` -> ``torchcodec`` when it works here, else ``pyav``; an unusable choice -> UserError.

    ``torchcodec-cuda`` decodes on the GPU (NVDEC, through torchcodec's CUDA device) where a CUDA GPU and
    torchcodec are there; elsewhere one warning line, then what ``auto`` picks (CPU decoding)."""
    if name not in DECODERS:
        raise UserError(f"unknown decoder {name!r}; choose one of {', '.join(DECODERS)}")
    from actcli.data.torchcodec_video import cuda_unavailable_reason, unavailable_reason

    if name == "torchcodec-cuda":
        cuda_reason = cuda_unavailable_reason()
        if cuda_reason is None:
            return name
        fallback = resolve_decoder("auto")
        _warn_once(f"--decoder torchcodec-cuda: {cuda_reason}; decoding on the CPU with {fallback}")
        return fallback
    reason = unavailable_reason() if name != "pyav" else None
    if name == "torchcodec" and reason:
        raise UserError(f"{reason}, or use --decoder pyav")
    if name == "auto":
        return "pyav" if reason else "torchcodec"
    return name


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """One warning line per process for ``message`` (decoders are resolved by every command and loader)."""
    if message not in _WARNED:
        _WARNED.add(message)
        from actcli import console as ui

        ui.warn(message)


def torchcodec_can_index(path: Path) -> bool:
    """Whether torchcodec finds frame ``i`` of ``path`` by timestamp correctly: not for containers
    without display timestamps (AVI: its B-frame timestamps are out of display order)."""
    return path.suffix.lower() not in {".avi", ".m4v", ".divx", ".xvid", ".h264", ".264", ".mjpeg", ".mjpg"}


def read_clip(
    path: Path, choose: Callable[[VideoInfo], Sequence[int]], decoder: str = "pyav"
) -> tuple[torch.Tensor, list[int]]:
    """Open ``path``, pick frame indices from its header with ``choose``, decode them.

    ``decoder`` is ``pyav``, ``torchcodec`` or ``torchcodec-cuda`` (see :func:`resolve_decoder`; the frames
    come back in CPU memory either way). torchcodec reads
    files it can index by timestamp (:func:`torchcodec_can_index`); AVIs, and any file it cannot
    decode, are read with PyAV for the same indices, so both decoders give the same frames.

    Returns:
        ``uint8 [T, C, H, W]`` RGB frames in the order chosen (T = number of indices), and
        the indices that were requested from the decoder.
    Raises:
        DecodeError: the file is missing, corrupt or has no decodable frame.
    """
    if decoder == "pyav" or not torchcodec_can_index(path):
        return read_clip_pyav(path, choose)
    from actcli.data.torchcodec_video import read_clip_torchcodec

    chosen: list[list[int]] = []

    def choose_once(info: VideoInfo) -> list[int]:
        if not chosen:
            chosen.append([int(i) for i in choose(info)])
        return chosen[0]

    try:
        return read_clip_torchcodec(path, choose_once, "cuda" if decoder == "torchcodec-cuda" else "cpu")
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
        wanted = sorted(set(indices))
        if counts_frames(container) or info.fps <= 0:
            frames = frames_by_count(container.decode(stream), wanted)
        else:
            try:
                frames = _frames_by_time_with_seek(container, stream, wanted, info)
            except _UnorderedTimestamps:
                container.seek(0, stream=stream, backward=True, any_frame=False)
                frames = frames_by_count(container.decode(stream), wanted)
    except (av.FFmpegError, ValueError) as exc:
        raise DecodeError(f"cannot decode {path}: {exc}") from exc
    finally:
        container.close()
    if not frames:
        raise DecodeError(f"cannot decode {path}: no frames")
    stacked = np.stack([frames[i] for i in indices])  # [T, H, W, C]
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous(), indices


def read_frames(path: Path, indices: Sequence[int], decoder: str = "pyav") -> torch.Tensor:
    """Decode the frames at ``indices`` (any order, repeats allowed): ``uint8 [T, C, H, W]``."""
    return read_clip(path, lambda _info: indices, decoder)[0]


def _rgb(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def frames_by_count(decoded: Iterator[av.VideoFrame], wanted: list[int]) -> dict[int, np.ndarray]:
    """Frame ``i`` = the ``i``-th frame decoded from the start; ``wanted`` sorted, unique.

    Returns ``{index: uint8 [H, W, C]}`` for every wanted index: indices past the last decoded
    frame get the last frame (the nearest earlier one). Empty if nothing decodes.
    """
    found: dict[int, np.ndarray] = {}
    wanted_set, last, index, previous = set(wanted), wanted[-1], -1, None
    for index, frame in enumerate(decoded):
        if index in wanted_set:
            found[index] = _rgb(frame)
        previous = frame
        if index >= last:
            break
    if previous is not None and index < last:
        tail = found.get(index) if index in found else _rgb(previous)
        for i in wanted:
            if i > index:
                found[i] = tail
    return found


def _frames_by_time_with_seek(container, stream, wanted: list[int], info: VideoInfo) -> dict[int, np.ndarray]:
    """:func:`frames_by_time` after seeking to the key frame before ``wanted[0]``; decodes from the
    start instead when the seek lands past it."""
    first_time = info.start + wanted[0] / info.fps
    if wanted[0] > 0 and stream.time_base is not None:
        container.seek(int(first_time / stream.time_base), stream=stream, backward=True, any_frame=False)
        frames = frames_by_time(container.decode(stream), wanted, info, must_start_by=first_time)
        if frames is not None:
            return frames
        container.seek(0, stream=stream, backward=True, any_frame=False)
    return frames_by_time(container.decode(stream), wanted, info) or {}


def slot_tolerance(fps: float) -> float:
    """Seconds a frame may be late and still count as on display at its slot (timestamp rounding)."""
    return 0.01 / fps + 1e-6


class _LazyRGB:
    """A decoded frame converted to ``uint8 [H, W, C]`` RGB on first use, once."""

    def __init__(self, frame: av.VideoFrame) -> None:
        self.frame, self._array = frame, None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = _rgb(self.frame)
        return self._array


def frames_by_time(
    decoded: Iterator[av.VideoFrame], wanted: list[int], info: VideoInfo, must_start_by: float | None = None
) -> dict[int, np.ndarray] | None:
    """Frame ``i`` = the frame on display at ``info.start + i / info.fps``: the last one whose time is
    not after it (within :func:`slot_tolerance`); ``wanted`` sorted, unique.

    Returns ``{index: uint8 [H, W, C]}`` for every wanted index (past the end: the last frame;
    before the first frame: the first), empty if nothing decodes, or None when ``must_start_by``
    is set and the first decoded frame comes after it (a seek that landed too late).
    Raises:
        _UnorderedTimestamps: a frame without a timestamp, or timestamps going backwards.
    """
    tolerance = slot_tolerance(info.fps)
    found: dict[int, np.ndarray] = {}
    pending = list(reversed(wanted))  # the next wanted index is at the end
    shown: _LazyRGB | None = None  # the frame on display before the current one
    previous_time = -np.inf
    for count, frame in enumerate(decoded):
        time = frame.time
        if time is None or time < previous_time:
            raise _UnorderedTimestamps
        if count == 0 and must_start_by is not None and time > must_start_by + tolerance:
            return None
        current = _LazyRGB(frame)
        while pending and info.start + pending[-1] / info.fps + tolerance < time:
            found[pending.pop()] = (shown or current).array  # the slot passed before this frame
        if not pending:
            return found
        shown, previous_time = current, time
    while pending and shown is not None:
        found[pending.pop()] = shown.array  # at or past the last frame: the last one
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
