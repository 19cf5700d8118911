"""EK100 media in two layouts, sampled in seconds so both give the same clip for a segment.

* **frames**: ``<root>/<P01>/rgb_frames/<P01_01>/frame_0000000001.jpg``, 1-indexed JPEGs at
  60 fps (``PXX_YY``) or 50 fps (``PXX_1YY``), as released;
* **videos**: ``<root>/<P01>/videos/<P01_01>.MP4``, indexed at the file's own frame rate (the
  native rate listed in ``EPIC_100_video_info.csv`` for the released videos).

Optical flow (the ``motion`` modality) comes from the released ``flow_frames``:
``<root>/<P01>/flow_frames/<P01_01>/{u,v}/frame_0000000001.jpg``, TV-L1 flow at half the RGB
rate, flow frame ``k`` (0-based) computed from RGB frames ``2k`` and ``2k + 1``. A time ``t``
reads flow frame ``floor((t * fps - 1) / 2)``, the newest whose second RGB frame starts at or
before ``t``, so flow never looks past ``t`` either; in a video's first ``1 / fps`` seconds, where
no such flow frame exists, it reads no motion.

A time ``t`` (seconds) maps to the frame shown at ``t``: index ``floor(t * fps)`` (0-based;
frame file ``index + 1``). A frame covers ``[index / fps, (index + 1) / fps)``, so a time
before ``t_end`` never maps to a frame that starts at or after ``t_end``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_jpeg, read_file

from actcli.data.video import DecodeError, read_clip
from actcli.ek100.annotations import frames_fps


def frame_path(root: Path, video_id: str, index: int) -> Path:
    """The released JPEG of 0-based frame ``index`` (files are 1-indexed)."""
    participant = video_id.split("_")[0]
    return root / participant / "rgb_frames" / video_id / f"frame_{index + 1:010d}.jpg"


def video_path(root: Path, video_id: str) -> Path:
    """The original video file of ``video_id``."""
    return root / video_id.split("_")[0] / "videos" / f"{video_id}.MP4"


def layout(root: Path, video_id: str) -> str:
    """``frames`` or ``videos``: whichever exists for this video (frames first); DecodeError if neither."""
    if (frame_path(root, video_id, 0).parent).is_dir():
        return "frames"
    if video_path(root, video_id).is_file():
        return "videos"
    raise DecodeError(f"neither {frame_path(root, video_id, 0).parent} nor {video_path(root, video_id)} exists")


def segment_times(start: float, stop: float, count: int, offset: float = 0.5) -> list[float]:
    """``count`` times splitting ``[start, stop)`` into equal parts, ``offset`` (0-1) into each part.

    ``offset=0.5`` takes the middle of each part (evaluation); a random offset per part is
    the usual training jitter. Every time is ``>= start`` and ``< stop`` when ``stop > start``.
    """
    length = max(stop - start, 0.0)
    return [start + (k + min(max(offset, 0.0), 0.999999)) * length / count for k in range(count)]


def time_to_index(t: float, fps: float) -> int:
    """The 0-based frame shown at time ``t`` seconds (``floor(t * fps)``, never negative)."""
    return max(0, int(math.floor(t * fps)))


def read_frames_at(root: Path, video_id: str, times: Sequence[float], video_fps: float | None = None,
                   decoder: str = "pyav") -> tuple[torch.Tensor, list[int]]:
    """Frames of ``video_id`` at ``times`` (seconds): ``uint8 [T, C, H, W]`` and the 0-based indices read.

    ``video_fps`` is the original video's rate (from the video info file; probed when None).
    Raises DecodeError naming the first missing frame file or an unreadable video.
    """
    if layout(root, video_id) == "frames":
        fps = frames_fps(video_id)
        indices = [time_to_index(t, fps) for t in times]
        images = []
        for index in indices:
            path = frame_path(root, video_id, index)
            if not path.is_file():
                raise DecodeError(f"frame {path} is missing")
            try:
                images.append(decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB))
            except RuntimeError as exc:
                raise DecodeError(f"cannot decode {path}: {exc}") from None
        return torch.stack(images), indices
    path = video_path(root, video_id)
    requested: list[int] = []

    def choose(info) -> list[int]:
        # The file's own rate decides which frame an index is (a re-encoded copy may differ from
        # EPIC_100_video_info.csv); the CSV's rate is the fallback when the header has none.
        fps = info.fps or video_fps or 0.0
        if fps <= 0:
            raise DecodeError(f"{path} reports no frame rate")
        requested.extend(time_to_index(t, fps) for t in times)
        return requested

    frames, _ = read_clip(path, choose, decoder)
    return frames, requested


def flow_path(root: Path, video_id: str, channel: str, index: int) -> Path:
    """The released ``u`` or ``v`` flow JPEG of 0-based flow frame ``index`` (files are 1-indexed)."""
    participant = video_id.split("_")[0]
    return root / participant / "flow_frames" / video_id / channel / f"frame_{index + 1:010d}.jpg"


def time_to_flow_index(t: float, fps: float) -> int:
    """The 0-based flow frame read at time ``t``: ``floor((t * fps - 1) / 2)``, never negative (module docstring)."""
    return max(0, int(math.floor((t * fps - 1) / 2)))


def read_flow_at(root: Path, video_id: str, times: Sequence[float]) -> tuple[torch.Tensor, list[int]]:
    """Released flow of ``video_id`` at ``times``: ``uint8 [T, 2, H, W]`` (``u``, ``v``) and the flow indices read.

    Raises DecodeError naming the first missing or unreadable JPEG.
    """
    fps = frames_fps(video_id)
    indices = [time_to_flow_index(t, fps) for t in times]
    pairs = []
    for t, index in zip(times, indices, strict=True):
        planes = []
        for channel in ("u", "v"):
            path = flow_path(root, video_id, channel, index)
            if not path.is_file():
                raise DecodeError(f"flow frame {path} is missing")
            try:
                planes.append(decode_jpeg(read_file(str(path)), mode=ImageReadMode.GRAY)[0])
            except RuntimeError as exc:
                raise DecodeError(f"cannot decode {path}: {exc}") from None
        flow = torch.stack(planes)
        if (2 * index + 1) / fps > t:  # the first 1/fps s: flow frame 0 would show the next frame; no motion
            flow = torch.full_like(flow, 128)
        pairs.append(flow)
    return torch.stack(pairs), indices
