"""Clip cache for full fine-tuning (``--cache-clips``): decode and resize each video once.

Training re-decodes every video every epoch; with the cache, one pass before training
stores ``uint8 [N, C, H, W]`` frames per video as ``.npy`` files that later epochs read
memory-mapped, so decoding leaves the training loop.

* **train** entries (view ``grid``) hold the frames on the clip's stride grid (source frames
  ``0, s, 2s, ...``), short side resized to ``1.25 x crop`` (the largest size the training
  transform draws). A training clip is ``frames`` consecutive grid frames from a random grid
  position, so its temporal jitter moves in steps of ``stride`` frames instead of 1; the
  spatial augmentation runs on the cached frames as before.
* **eval** entries (view ``centre``) hold exactly the centred clip, resized and centre-cropped
  as the evaluation transform does, so validation sees the same pixels as without the cache.

Entries live in ``<outputs>/cache/clips/<spec key>/<video key>-<view>.npy``; the spec key
hashes the clip spec and the decoder, the video key the video's path, size and mtime, so a
changed video is decoded again and a stale entry is never read. The whole ``cache/clips``
folder is kept under ``limit_bytes``: once full, further videos are decoded each epoch as
without the cache, and the report says how many.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from actcli.data.cache import video_key
from actcli.data.entry import drop_entry, entry_ok, write_entry
from actcli.data.video import ClipSpec, DecodeError, VideoInfo, centre_clip_start, clip_indices, read_clip
from actcli.models.convention import PYTORCHVIDEO, Convention

TRAIN_VIEW, EVAL_VIEW = "grid", "centre"
TRAIN_SCALE = 1.25  # the training transform's largest short side, as a multiple of the crop


def grid_indices(info: VideoInfo, spec: ClipSpec) -> list[int]:
    """Source frames ``0, stride, 2 * stride, ...`` inside the video (at least one)."""
    return list(range(0, max(1, info.frames), spec.stride))


def centre_indices(info: VideoInfo, spec: ClipSpec) -> list[int]:
    """The centred clip's source frames (as the evaluation loader picks them)."""
    return clip_indices(info.frames, spec.frames, spec.stride, centre_clip_start(info.frames, spec.frames, spec.stride))


def resize_for_cache(frames: torch.Tensor, spec: ClipSpec, view: str,
                     convention: Convention = PYTORCHVIDEO) -> torch.Tensor:
    """``uint8 [T, C, H, W]`` -> the cached form, still ``uint8``: short side ``1.25 x S`` (train) or the
    centre ``S x S`` square (eval), S being the convention's short side (the crop for pytorchvideo's:
    exactly the centre crop the evaluation transform takes)."""
    short = convention.short_side(spec.crop)
    if view == TRAIN_VIEW:
        return v2.functional.resize(frames, [round(TRAIN_SCALE * short)], antialias=True)
    resized = v2.functional.resize(frames, [short], antialias=True)
    return v2.functional.center_crop(resized, [short])


@dataclass
class ClipCacheStats:
    """What one fill pass found: entries present or written, videos left out, bytes on disk."""

    cached: int = 0
    written: int = 0
    over_limit: int = 0
    unreadable: int = 0


class ClipCache:
    """Memory-mapped ``uint8 [N, C, H, W]`` frames of videos for one clip spec and decoder."""

    def __init__(self, outputs: Path, spec: ClipSpec, decoder: str, limit_bytes: int,
                 convention: Convention = PYTORCHVIDEO) -> None:
        parts = [spec.frames, spec.stride, spec.crop, decoder] + ([convention.resize] if convention.resize != 1 else [])
        key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
        self.convention = convention
        self.damaged: list[Path] = []
        self.root = outputs / "cache" / "clips"
        self.folder = self.root / key
        self.limit_bytes = limit_bytes
        self._used: int | None = None

    def path(self, video: Path, view: str) -> Path:
        return self.folder / f"{video_key(video)}-{view}.npy"

    def verified(self, video: Path, view: str) -> bool:
        """Whether the entry exists and matches its recorded size and digest; a damaged one (truncated,
        zeroed, overwritten, or without its record) is dropped and counted in :attr:`damaged`."""
        entry = self.path(video, view)
        if not entry.is_file():
            return False
        if entry_ok(entry):
            return True
        if self._used is not None:
            self._used -= entry.stat().st_size
        drop_entry(entry)
        self.damaged.append(entry)
        return False

    def get(self, video: Path, view: str) -> np.ndarray | None:
        """The cached frames (read-only memory map), or None when absent or unreadable."""
        entry = self.path(video, view)
        if not entry.is_file():
            return None
        try:
            return np.load(entry, mmap_mode="r")
        except (OSError, ValueError):
            return None

    def used_bytes(self) -> int:
        """Bytes in the whole clip cache (every spec), counted once then kept up to date."""
        if self._used is None:
            self._used = sum(f.stat().st_size for f in self.root.rglob("*.npy")) if self.root.is_dir() else 0
        return self._used

    def put(self, video: Path, view: str, frames: torch.Tensor) -> bool:
        """Store ``uint8 [N, C, H, W]`` frames; False (nothing written) if it would pass the limit."""
        array = frames.contiguous().numpy()
        if self.used_bytes() + array.nbytes > self.limit_bytes:
            return False
        buffer = io.BytesIO()
        np.save(buffer, array)
        write_entry(self.path(video, view), buffer.getbuffer())
        self._used = self.used_bytes() + self.path(video, view).stat().st_size
        return True


class _Missing(Dataset):
    """Decode-and-resize jobs for the videos missing from the cache (run in DataLoader workers)."""

    def __init__(self, videos: list[Path], spec: ClipSpec, view: str, decoder: str,
                 convention: Convention = PYTORCHVIDEO) -> None:
        self.videos, self.spec, self.view, self.decoder, self.convention = videos, spec, view, decoder, convention

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None]:
        choose = grid_indices if self.view == TRAIN_VIEW else centre_indices
        try:
            frames, _ = read_clip(self.videos[index], lambda info: choose(info, self.spec), self.decoder)
        except DecodeError:
            return index, None
        return index, resize_for_cache(frames, self.spec, self.view, self.convention)


def fill_clip_cache(
    cache: ClipCache,
    videos: list[Path],
    spec: ClipSpec,
    view: str,
    decoder: str,
    workers: int,
    progress: Progress | None = None,
) -> ClipCacheStats:
    """Decode and store every video of ``videos`` missing from ``cache`` until the limit is hit."""
    stats = ClipCacheStats()
    missing = [v for v in videos if not cache.verified(v, view)]
    stats.cached = len(videos) - len(missing)
    if not missing:
        return stats
    loader = DataLoader(_Missing(missing, spec, view, decoder, cache.convention), batch_size=None,
                        num_workers=workers)
    task = progress.add_task(f"caching {view} clips", total=len(missing)) if progress else None
    for index, frames in loader:  # in order: index counts the videos handled
        if frames is None:
            stats.unreadable += 1
        elif cache.put(missing[index], view, frames):
            stats.written += 1
        else:
            stats.over_limit = len(missing) - index  # this video and every one not yet decoded
            break
        if progress is not None and task is not None:
            progress.advance(task)
    if progress is not None and task is not None:
        progress.remove_task(task)
    stats.cached += stats.written
    return stats
