"""Per-time features of a zoo backbone, written as RULSTM's LMDB or ``.npy`` files (``actcli extract``).

Row ``r`` of a video holds the features of time ``r / fps``: the backbone's output for the clip of
``frames`` frames at ``stride`` that **ends** with the frame shown at that time (frame
``floor(r / fps x video fps)``; earlier frames repeat the first at the video's start). A row
therefore never sees a frame after its time, and a sequence model reading time ``t`` (row
``floor(t x fps)``, :mod:`actcli.data.features`) never sees a frame after ``t``: anticipation
windows stay honest through extraction.

Outputs (``--out PATH``):

* ``lmdb``: an LMDB in RULSTM's layout: key ``<video>_frame_<10 digits>.jpg`` = row + 1 (frames
  counted from 1, as RULSTM's ``img_tmpl``), value the ``float32`` bytes of one row;
* ``npy``: ``<out>/<video>.npy``, ``float32 [rows, D]``.

``<video>`` is the feature key every dataset reads: the video's path without its suffix
(``videos/seq_g01_v001``) or EK100's video id. With ``tokens``, a row is the backbone's
spatio-temporal tokens before pooling, ``[N, D]`` flattened to ``N x D`` values.

``features.json`` beside the data records the backbone, its weights, the clip, the rate, ``dim``
and ``tokens``, the feature cache's model key (:func:`actcli.data.cache.model_key`) and, per video
done, its rows and :func:`~actcli.data.cache.video_key` (path, size, modification time). A second
run with the same options skips the videos already done (resumable); one with other options is
refused, so one store never mixes two backbones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from actcli.data.cache import video_key
from actcli.data.features import META_FILE, forget_environment, lmdb_key
from actcli.data.transforms import eval_transform
from actcli.data.video import ClipSpec, DecodeError, probe, read_clip
from actcli.errors import UserError
from actcli.fileio import atomic_path, write_json
from actcli.models.convention import Convention

LAYOUTS = ("lmdb", "npy")
CHUNK_ROWS = 64
LMDB_MAP_SIZE = 1 << 36  # 64 GiB of address space; the file grows only as rows are written (sparse)


@dataclass(frozen=True)
class VideoSource:
    """One video to extract: its feature ``key``, its file (or EK100 frames folder) and how to read it."""

    key: str
    path: Path
    read: Callable[[Sequence[int]], torch.Tensor]  # 0-based frame indices -> uint8 [N, C, H, W]
    frames: int
    fps: float

    def identity(self) -> str:
        """What changes when the video does (the feature cache's video key)."""
        return video_key(self.path)


def file_source(key: str, path: Path, decoder: str = "pyav") -> VideoSource:
    """A video file read with :func:`actcli.data.video.read_clip` (DecodeError if unreadable)."""
    info = probe(path)
    if info.frames < 1 or not info.fps:
        raise DecodeError(f"{path} has no frames or no frame rate")

    def read(indices: Sequence[int]) -> torch.Tensor:
        frames, _ = read_clip(path, lambda _info: list(indices), decoder)
        return frames

    return VideoSource(key, path, read, info.frames, float(info.fps))


def row_count(frames: int, video_fps: float, fps: float) -> int:
    """Rows of a video of ``frames`` frames: one per ``1 / fps`` s up to its last frame's time."""
    return int(math.floor((frames - 1) / video_fps * fps + 1e-9)) + 1


def causal_clip(row: int, fps: float, video_fps: float, frames: int, spec: ClipSpec) -> list[int]:
    """The 0-based frames of row ``row``'s clip: ``spec.frames`` frames ``spec.stride`` apart, the last one the
    frame shown at ``row / fps`` (never later; clamped to the video's first frame)."""
    last = min(frames - 1, int(math.floor(row / fps * video_fps + 1e-9)))
    return [max(0, last - (spec.frames - 1 - k) * spec.stride) for k in range(spec.frames)]


def token_network(backbone: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``clips [B, 3, T, H, W] -> tokens [B, N, D]``: the backbone's feature map before its pooling.

    A backbone with its own ``forward_tokens`` uses it (e.g. a transformer's patch tokens);
    pytorchvideo's ResNet-style networks (``blocks`` ending in a pooling head) run every block but
    the head and flatten ``[B, D, t, h, w]`` to ``t x h x w`` tokens. Others: one error line.
    """
    own = getattr(backbone, "forward_tokens", None)
    if callable(own):
        return own
    blocks = getattr(backbone, "blocks", None)
    if isinstance(blocks, nn.ModuleList) and len(blocks) > 1:
        def tokens(clips: torch.Tensor) -> torch.Tensor:
            x = clips
            for block in blocks[:-1]:
                x = block(x)
            if not isinstance(x, torch.Tensor) or x.ndim != 5:
                raise UserError("--tokens: this backbone's last feature map is not one [B, D, T, H, W] tensor "
                                "(two-pathway networks); extract pooled features instead")
            return x.flatten(2).transpose(1, 2)
        return tokens
    raise UserError("--tokens needs a backbone whose tokens actcli can reach (pytorchvideo ResNet-style networks, "
                    "or one with forward_tokens); extract pooled features instead")


class Extractor:
    """Runs a frozen backbone over the causal clips of every row of a video (module docstring)."""

    def __init__(self, backbone: nn.Module, spec: ClipSpec, convention: Convention, fps: float, tokens: bool,
                 device: torch.device, batch_size: int = 16) -> None:
        from actcli.pipeline import to_device

        self.backbone = to_device(backbone, device).eval()  # channels-last-3d on CPU
        self.spec, self.fps, self.device, self.batch_size = spec, fps, device, batch_size
        self.transform = eval_transform(spec.crop, convention)
        self.network = token_network(self.backbone) if tokens else self.backbone

    def chunk(self, source: VideoSource, first: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoded, transformed frames ``float [C, U, h, w]`` of rows ``first .. first + CHUNK_ROWS`` and, per row,
        the positions of its clip's frames among them ``long [rows, T]`` (runs in a loader worker)."""
        rows = row_count(source.frames, source.fps, self.fps)
        clips = [causal_clip(r, self.fps, source.fps, source.frames, self.spec)
                 for r in range(first, min(rows, first + CHUNK_ROWS))]
        wanted = sorted({i for clip in clips for i in clip})
        where = {index: position for position, index in enumerate(wanted)}
        return self.transform(source.read(wanted)), torch.tensor([[where[i] for i in clip] for clip in clips])

    @torch.inference_mode()
    def features(self, frames: torch.Tensor, picks: torch.Tensor) -> np.ndarray:
        """The backbone's output for the clips ``picks`` of ``frames``: ``float32 [rows, D]`` (tokens: ``N x D``)."""
        from actcli.pipeline import clips_to_device

        clips = frames[:, picks.flatten()].reshape(frames.shape[0], len(picks), self.spec.frames,
                                                   *frames.shape[2:]).transpose(0, 1)
        out = []
        for start in range(0, len(picks), self.batch_size):
            part = clips_to_device(clips[start:start + self.batch_size].contiguous(), self.device)
            out.append(self.network(part).float().cpu().reshape(len(part), -1).numpy())
        return np.concatenate(out).astype(np.float32)

    def video(self, source: VideoSource, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """``float32 [rows, D]`` (tokens: ``[rows, N * D]``) for ``source``, in this process."""
        rows = row_count(source.frames, source.fps, self.fps)
        out = []
        for first in range(0, rows, CHUNK_ROWS):
            out.append(self.features(*self.chunk(source, first)))
            if progress is not None:
                progress(len(out[-1]))
        return np.concatenate(out)

    def dims(self) -> tuple[int, int]:
        """``(D, N)``: features per token and tokens per row (N = 0 for pooled features)."""
        with torch.inference_mode():
            clip = torch.zeros(1, 3, self.spec.frames, self.spec.crop, self.spec.crop, device=self.device)
            out = self.network(clip)
        return (int(out.shape[-1]), int(out.shape[1]) if out.ndim == 3 else 0)


def read_meta(out: Path) -> dict | None:
    """``features.json`` of a store (None when absent)."""
    path = out / META_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON; delete the store {out} and extract again") from None


SAME_OPTIONS = ("layout", "fps", "cache_key", "tokens")


class FeatureWriter:
    """Writes one store (LMDB or ``.npy``) and its ``features.json``; knows which videos are done."""

    def __init__(self, out: Path, layout: str, meta: dict) -> None:
        if layout not in LAYOUTS:
            raise UserError(f"--format must be one of {', '.join(LAYOUTS)}")
        self.out, self.layout = out, layout
        existing = read_meta(out)
        if existing is not None:
            differ = [k for k in SAME_OPTIONS if existing.get(k) != meta.get(k)]
            if differ:
                raise UserError(f"{out} holds features made with other options ({', '.join(differ)}: "
                                f"{', '.join(str(existing.get(k)) for k in differ)}); pass another --out or delete it")
            self.meta = existing
        else:
            if out.exists() and any(out.iterdir()):
                raise UserError(f"{out} exists and is not a feature store written by actcli extract; pass another "
                                "--out")
            self.meta = {**meta, "videos": {}}
        self.meta.setdefault("videos", {})

    def done(self, source: VideoSource) -> bool:
        entry = self.meta["videos"].get(source.key)
        return bool(entry) and entry.get("source") == source.identity()

    def write(self, source: VideoSource, features: np.ndarray) -> None:
        if self.layout == "npy":
            target = self.out / f"{source.key}.npy"
            with atomic_path(target) as tmp, open(tmp, "wb") as handle:
                np.save(handle, features, allow_pickle=False)
        else:
            import lmdb

            self.out.mkdir(parents=True, exist_ok=True)
            forget_environment(self.out)
            with lmdb.open(str(self.out), map_size=LMDB_MAP_SIZE, lock=True) as env, env.begin(write=True) as txn:
                for row, values in enumerate(features):
                    txn.put(lmdb_key(source.key, row + 1), np.ascontiguousarray(values, dtype=np.float32).tobytes())
        self.meta["videos"][source.key] = {"rows": int(len(features)), "source": source.identity()}
        self.save()

    def save(self) -> None:
        write_json(self.out / META_FILE, self.meta)


class _Chunks(torch.utils.data.Dataset):
    """Every ``(video, first row)`` chunk of the videos to extract, decoded by loader workers in order."""

    def __init__(self, sources: list[VideoSource], extractor: Extractor) -> None:
        self.sources, self.extractor = sources, extractor
        self.plan = [(i, first) for i, s in enumerate(sources)
                     for first in range(0, row_count(s.frames, s.fps, extractor.fps), CHUNK_ROWS)]

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, k: int):
        i, first = self.plan[k]
        try:
            return i, first, *self.extractor.chunk(self.sources[i], first)
        except DecodeError as exc:
            return i, first, str(exc), None


def extract_all(sources: list[VideoSource], extractor: Extractor, writer: FeatureWriter,
                progress=None, warn: Callable[[str], None] = print, workers: int = 0) -> dict[str, int]:
    """Extract every source not done yet, decoding in ``workers`` loader processes while this one runs the
    backbone; returns ``{"videos", "done_before", "extracted", "unreadable"}``. A video is written (and
    recorded as done) once all its rows are computed, so an interrupted run redoes at most one video."""
    todo = [s for s in sources if not writer.done(s)]
    stats = {"videos": len(sources), "done_before": len(sources) - len(todo), "extracted": 0, "unreadable": 0}
    rows = sum(row_count(s.frames, s.fps, extractor.fps) for s in todo)
    task = progress.add_task("extracting features", total=rows) if progress is not None else None
    chunks = _Chunks(todo, extractor)
    loader = torch.utils.data.DataLoader(chunks, batch_size=None, num_workers=workers)
    parts: dict[int, list[np.ndarray]] = {}
    failed: set[int] = set()
    for i, first, frames, picks in loader:
        source = todo[i]
        if picks is None:
            if i not in failed:
                warn(f"skipped unreadable video {source.path}: {frames}")
                stats["unreadable"] += 1
                failed.add(i)
        elif i not in failed:
            parts.setdefault(i, []).append(extractor.features(frames, picks))
        if progress is not None:
            progress.advance(task, len(picks) if picks is not None else CHUNK_ROWS)
        if first + CHUNK_ROWS >= row_count(source.frames, source.fps, extractor.fps) and i not in failed:
            writer.write(source, np.concatenate(parts.pop(i)))
            stats["extracted"] += 1
    writer.save()
    return stats
