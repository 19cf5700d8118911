"""On-disk cache of frozen-backbone features: decode and run the backbone once per video.

With ``--freeze backbone`` and no augmentation, a video's backbone output never changes
between epochs, so it is computed once and stored under
``<outputs>/cache/features/<model key>/<video key>.pt``. The model key hashes the model
name, the starting weights (file content hash, or "random" with the seed), the clip spec
and the view; the video key hashes the video's path, size and modification time. A changed
video or model therefore misses the cache and is recomputed; stale entries are never read.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from pathlib import Path

import torch
from rich.progress import Progress
from torch.utils.data import DataLoader, Dataset

from actcli.data.entry import drop_entry, entry_ok, write_entry
from actcli.data.video import READER_VERSION, ClipSpec


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's content (weights files: a few MB to a few hundred)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_key(model_name: str, weights_id: str, spec: ClipSpec, view: str = "centre", decoder: str = "pyav") -> str:
    """Short hash naming one (model, weights, clip spec, view, decoder) combination.

    The decoder is part of the key because two decoders may convert colours slightly differently.
    """
    text = json.dumps([model_name, weights_id, spec.frames, spec.stride, spec.crop, view, decoder])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def video_key(path: Path) -> str:
    """Hash of a video's resolved path, size and modification time (ns), and of the frame reader's version
    (:data:`~actcli.data.video.READER_VERSION`: entries of an older reader, which may hold other frames, miss)."""
    stat = path.stat()
    text = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, READER_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


class FeatureCache:
    """Feature vectors ``float [D]`` of videos for one model key.

    Each entry is checked against its size and digest (:mod:`actcli.data.entry`) when read; a
    truncated, zeroed or overwritten one is dropped (and so computed again), counted in
    :attr:`damaged`.
    """

    def __init__(self, outputs: Path, key: str) -> None:
        self.folder = outputs / "cache" / "features" / key
        self.damaged: list[Path] = []

    def path(self, video: Path) -> Path:
        return self.folder / f"{video_key(video)}.pt"

    def get(self, video: Path) -> torch.Tensor | None:
        """The cached feature, or None when absent or damaged (then dropped and recorded)."""
        entry = self.path(video)
        if not entry.is_file():
            return None
        data = entry.read_bytes()
        feature = None
        if entry_ok(entry, data):
            try:
                feature = torch.load(io.BytesIO(data), weights_only=True)
            except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError):
                feature = None
        if not isinstance(feature, torch.Tensor) or feature.ndim != 1:
            drop_entry(entry)
            self.damaged.append(entry)
            return None
        return feature

    def put(self, video: Path, feature: torch.Tensor) -> None:
        buffer = io.BytesIO()
        torch.save(feature.clone(), buffer)
        write_entry(self.path(video), buffer.getbuffer())


class FeatureDataset(Dataset):
    """Cached features as samples: ``{"clip": float [D], "label", "index"}``."""

    def __init__(self, features: torch.Tensor, labels: list[int]) -> None:
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        return {"clip": self.features[index], "label": self.labels[index], "index": index}


@torch.inference_mode()
def cached_features(
    backbone: torch.nn.Module,
    loader: DataLoader,
    videos: list[Path],
    cache: FeatureCache,
    device: torch.device,
    progress: Progress | None = None,
) -> tuple[torch.Tensor, int, list[str]]:
    """Features ``float [N, D]`` of every video of ``loader``'s dataset, computing misses.

    ``loader`` must yield the dataset in order (no shuffling). Returns the features, how
    many were computed (cache misses) and the unreadable videos (their rows are zeros).
    """
    from actcli.pipeline import clips_to_device

    hits = [cache.get(v) for v in videos]
    missing = [i for i, f in enumerate(hits) if f is None]
    skipped: list[str] = []
    if missing:
        backbone.eval()
        subset = DataLoader(torch.utils.data.Subset(loader.dataset, missing), batch_size=loader.batch_size,
                            num_workers=loader.num_workers, collate_fn=loader.collate_fn)
        task = progress.add_task("caching backbone features", total=len(subset)) if progress else None
        for batch in subset:
            skipped.extend(batch["skipped"])
            if batch["clips"] is not None:
                out = backbone(clips_to_device(batch["clips"], device)).float().cpu()
                for position, feature in zip(batch["indices"].tolist(), out, strict=True):
                    cache.put(videos[position], feature)
                    hits[position] = feature
            if progress is not None and task is not None:
                progress.advance(task)
        if progress is not None and task is not None:
            progress.remove_task(task)
    dim = next((f.shape[0] for f in hits if f is not None), 0)
    features = torch.stack([f if f is not None else torch.zeros(dim) for f in hits]) if hits else torch.zeros(0, 0)
    return features, len(missing), skipped
