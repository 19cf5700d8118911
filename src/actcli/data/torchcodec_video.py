"""Clip decoding with torchcodec (FFmpeg's libraries from the system, e.g. Debian's ``ffmpeg``).

torchcodec is optional: it needs FFmpeg's shared libraries, which a pip install does not
bring. :func:`unavailable_reason` says why it cannot be used here (None when it can). Frames
are located in ``approximate`` seek mode: index ``i`` is the frame at ``start + i / fps``
seconds, the same convention as the PyAV reader, and the decoder seeks to the key frame
before the first wanted frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import torch

from actcli.data.video import DecodeError, VideoInfo, ffmpeg_threads


@lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None when torchcodec imports and finds FFmpeg's libraries, else why it does not."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except ImportError:
        return "torchcodec is not installed (pip install torchcodec)"
    except (OSError, RuntimeError) as exc:  # FFmpeg's shared libraries are missing or too old
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"torchcodec cannot load FFmpeg's libraries ({first_line[:120]}); install them (apt-get install ffmpeg)"
    return None


def _open(path: Path, threads: int):
    from torchcodec.decoders import VideoDecoder

    if not path.is_file():
        raise DecodeError(f"cannot open {path}: no such file")
    try:
        return VideoDecoder(str(path), seek_mode="approximate", num_ffmpeg_threads=threads)
    except (RuntimeError, ValueError) as exc:
        raise DecodeError(f"cannot open {path}: {exc}") from exc


def read_clip_torchcodec(
    path: Path, choose: Callable[[VideoInfo], Sequence[int]]
) -> tuple[torch.Tensor, list[int]]:
    """Same contract as :func:`actcli.data.video.read_clip`, decoded by torchcodec.

    Returns ``uint8 [T, C, H, W]`` RGB frames in the order chosen and the chosen indices;
    indices past the header's frame count get the last frame.
    """
    decoder = _open(path, threads=1)
    meta = decoder.metadata
    if ffmpeg_threads(meta.width or 0, meta.height or 0) != 1:
        decoder = _open(path, threads=0)
    frames = int(meta.num_frames or 0)
    fps = float(meta.average_fps or 0.0)
    if frames <= 0 or not meta.width:
        raise DecodeError(f"{path} reports no frames")
    info = VideoInfo(frames=frames, fps=fps, width=int(meta.width), height=int(meta.height))
    indices = [int(i) for i in choose(info)]
    if not indices:
        raise DecodeError(f"cannot decode {path}: no frame indices chosen")
    wanted = sorted({min(max(i, 0), frames - 1) for i in indices})
    try:
        batch = decoder.get_frames_at(wanted).data  # uint8 [N, C, H, W]
    except (RuntimeError, IndexError, ValueError) as exc:
        raise DecodeError(f"cannot decode {path}: {exc}") from exc
    position = {index: n for n, index in enumerate(wanted)}
    order = torch.tensor([position[min(max(i, 0), frames - 1)] for i in indices])
    return batch[order].contiguous(), indices
