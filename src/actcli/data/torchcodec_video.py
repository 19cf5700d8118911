"""Clip decoding with torchcodec (FFmpeg's libraries from the system, e.g. Debian's ``ffmpeg``).

torchcodec is optional: it needs FFmpeg's shared libraries, which a pip install does not
bring. :func:`unavailable_reason` says why it cannot be used here (None when it can). Frames
are located by time (``approximate`` seek mode; ``exact`` on variable-frame-rate files, where
approximate mode returns frames out of order): index ``i`` is the frame played at
``start + i / fps`` seconds (``get_frames_played_at``), the convention of the PyAV reader, with
the frame count, rate and start read from the header by :func:`actcli.data.video.probe` so
both decoders cut the same clip. Files without display timestamps (AVI) never come here
(:func:`actcli.data.video.torchcodec_can_index`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import torch

from actcli.data.video import DecodeError, VideoInfo, ffmpeg_threads, probe, slot_tolerance


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


@lru_cache(maxsize=1)
def cuda_unavailable_reason() -> str | None:
    """None when torchcodec can decode on a CUDA GPU here (NVDEC), else why not."""
    reason = unavailable_reason()
    if reason is not None:
        return reason
    if not torch.cuda.is_available():
        return "no CUDA GPU is visible"
    return None


def _open(path: Path, threads: int, exact: bool = False, device: str = "cpu"):
    from torchcodec.decoders import VideoDecoder

    if not path.is_file():
        raise DecodeError(f"cannot open {path}: no such file")
    try:
        if device != "cpu":  # NVDEC: FFmpeg's threads do not apply
            return VideoDecoder(str(path), seek_mode="exact" if exact else "approximate", device=device)
        return VideoDecoder(str(path), seek_mode="exact" if exact else "approximate", num_ffmpeg_threads=threads)
    except (RuntimeError, ValueError) as exc:
        raise DecodeError(f"cannot open {path}: {exc}") from exc


def read_clip_torchcodec(
    path: Path, choose: Callable[[VideoInfo], Sequence[int]], device: str = "cpu"
) -> tuple[torch.Tensor, list[int]]:
    """Same contract as :func:`actcli.data.video.read_clip`, decoded by torchcodec on ``device``
    (``cuda``: NVDEC; the frames are copied back to CPU memory, where the transforms run).

    Returns ``uint8 [T, C, H, W]`` RGB frames in the order chosen and the chosen indices;
    indices past the header's frame count get the last frame.
    """
    info = probe(path)
    # approximate mode places frames on a constant-rate grid; a variable-rate file needs its real index
    decoder = _open(path, threads=ffmpeg_threads(info.width, info.height), exact=not info.constant_rate,
                    device=device)
    indices = [int(i) for i in choose(info)]
    if not indices:
        raise DecodeError(f"cannot decode {path}: no frame indices chosen")
    inside = sorted({max(i, 0) for i in indices if i < info.frames})
    times = [info.start + i / info.fps + slot_tolerance(info.fps) for i in inside]
    try:
        batch = decoder.get_frames_played_at(times).data if inside else None  # uint8 [N, C, H, W]
        if any(i >= info.frames for i in indices):  # past the end: the last frame
            tail = decoder.get_frames_at([len(decoder) - 1]).data
            batch = tail if batch is None else torch.cat([batch, tail])
    except (RuntimeError, IndexError, ValueError) as exc:
        raise DecodeError(f"cannot decode {path}: {exc}") from exc
    wanted = [*inside, info.frames]
    position = {index: n for n, index in enumerate(wanted)}
    order = torch.tensor([position[min(max(i, 0), info.frames)] for i in indices], device=batch.device)
    return batch[order].contiguous().cpu(), indices
