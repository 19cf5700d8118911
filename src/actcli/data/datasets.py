"""Clip datasets over annotation tables, and the loader that skips unreadable videos.

A sample is ``{"clip": float [C, T, H, W], "label": int, "index": int}``. A video that cannot
be decoded yields ``{"skipped": path}``; :func:`collate_clips` drops it and reports its path, so one
corrupt file costs one sample (counted in the report), not the run.
"""

from __future__ import annotations

import math
import random
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler

from actcli.data.audio import N_MELS, NoAudio, has_audio, log_mel, read_audio
from actcli.data.clip_cache import EVAL_VIEW, TRAIN_VIEW, ClipCache
from actcli.data.features import FeatureStore
from actcli.data.motion import clip_motion, with_previous
from actcli.data.transforms import VideoTransform, spatial_views_transform
from actcli.data.video import (
    ClipSpec,
    DecodeError,
    VideoInfo,
    centre_clip_start,
    clip_indices,
    clip_span,
    probe,
    read_clip,
)
from actcli.errors import UserError
from actcli.models.convention import PYTORCHVIDEO, Convention

AUDIO_FRAMES = 128  # log-mel frames per clip (10 ms each at the native span; resized to this)


def check_videos_exist(root: Path, table: pd.DataFrame, source: Path) -> None:
    """Fail with one line naming the first missing video and how many are missing."""
    missing = [p for p in table["path"] if not (root / p).is_file()]
    if missing:
        raise UserError(
            f"{source} names {len(missing)} video(s) missing under {root} (first: {missing[0]}); "
            "pass the right --root or re-run `actcli annotate`"
        )


def clip_windows(table: pd.DataFrame) -> list[tuple[float, float] | None]:
    """Each row's ``(start, end)`` in seconds from optional ``start``/``end`` columns (None: the whole file)."""
    if "start" not in table.columns and "end" not in table.columns:
        return [None] * len(table)
    starts = table["start"] if "start" in table.columns else pd.Series([np.nan] * len(table))
    ends = table["end"] if "end" in table.columns else pd.Series([np.nan] * len(table))
    return [None if pd.isna(a) and pd.isna(b) else (0.0 if pd.isna(a) else float(a), math.inf if pd.isna(b)
            else float(b)) for a, b in zip(starts, ends, strict=True)]


class WindowPastEnd(DecodeError):
    """A clip's ``start``/``end`` window begins at or after the end of its video (a wrong list row)."""


def window_past_end(window: tuple[float, float] | None, duration: float) -> bool:
    """Whether ``window`` (seconds) starts at or after the end of a video ``duration`` seconds long."""
    return window is not None and duration > 0 and window[0] >= duration


def window_frames(info: VideoInfo, window: tuple[float, float] | None) -> tuple[int, int]:
    """``(first, count)``: the frames of a video inside ``window`` (seconds; None: all frames), at least one.

    Raises:
        WindowPastEnd: the window starts at or after the video's end (no frame of it exists).
    """
    if window is None:
        return 0, info.frames
    if window_past_end(window, info.duration):
        raise WindowPastEnd(f"clip {window[0]:g}-{window[1]:g} s starts after the end of the {info.duration:.2f} s "
                            "video")
    fps = info.fps or 25.0
    first = min(max(0, math.floor(window[0] * fps)), max(0, info.frames - 1))
    stop = info.frames if math.isinf(window[1]) else min(info.frames, math.ceil(window[1] * fps))
    return first, max(1, stop - first)


def feature_key(relative_path: str) -> str:
    """Where a video's features are stored: its path relative to the root, without the suffix."""
    return Path(relative_path).with_suffix("").as_posix()


class VideoClipDataset(Dataset):
    """One clip per video: random position in training, centred for evaluation.

    Args:
        root: folder the table's ``path`` column is relative to.
        table: rows with ``path`` and ``label_id``.
        spec: frames, stride and crop of a clip.
        transform: ``uint8 [T, C, H, W]`` -> ``float [C, T, H, W]``.
        training: random clip start (from torch's RNG, seeded per DataLoader worker).
        decoder: ``pyav`` or ``torchcodec`` (see :func:`actcli.data.video.read_clip`).
        observe: early prediction: only the first ``r`` of each video is visible, ``r`` fixed
            (a float) or drawn uniformly per sample from ``(low, high)``; None: the whole video.
        modalities: ``["rgb"]`` (samples hold a tensor) or several of ``rgb``, ``audio``, ``motion``,
            ``features`` (samples hold a dict: ``"rgb": [C, T, H, W]``; ``"audio": [1, 64, 128]``, the
            log-mel of the clip's time span; ``"motion": [2, T, H, W]``, see :mod:`actcli.data.motion`;
            ``"features": [T, D]``, see :mod:`actcli.data.features`).
        no_audio: a video without sound gets a silent spectrogram (``zeros``) or is left out
            (``skip``); either way :attr:`silent_videos` lists them.
        motion: ``difference`` or ``farneback``, how motion is computed from the decoded frames.
        features: where precomputed features are read (required with ``features``); a video's
            key is its path relative to ``root`` without the suffix.
        convention: how ``transform`` normalises clips (motion undoes it to read grey levels).

    Set ``clip_cache`` to read videos present in a filled :class:`ClipCache` from it instead
    of decoding them (see :mod:`actcli.data.clip_cache` for what changes).
    """

    def __init__(
        self,
        root: Path,
        table: pd.DataFrame,
        spec: ClipSpec,
        transform: VideoTransform,
        training: bool,
        decoder: str = "pyav",
        observe: float | tuple[float, float] | None = None,
        modalities: Sequence[str] = ("rgb",),
        no_audio: str = "zeros",
        motion: str = "difference",
        features: FeatureStore | None = None,
        convention: Convention = PYTORCHVIDEO,
    ) -> None:
        if "features" in modalities and features is None:
            raise UserError("--modalities features needs --features PATH (a folder of .npy files or an LMDB)")
        self.motion, self.features, self.convention = motion, features, convention
        self.root = root
        self.paths = table["path"].tolist()
        self.labels = table["label_id"].astype(int).tolist()
        self.windows = clip_windows(table.reset_index(drop=True))  # clips cut from longer files (start, end)
        self.spec = spec
        self.transform = transform
        self.training = training
        self.decoder = decoder
        self.observe = observe
        self.modalities = list(modalities)
        self.silent_videos: list[str] = []
        if "audio" in self.modalities:
            self.silent_videos = [p for p in self.paths if not has_audio(root / p)]
            if no_audio == "skip" and self.silent_videos:
                silent = set(self.silent_videos)
                keep = [i for i, p in enumerate(self.paths) if p not in silent]
                self.paths = [self.paths[i] for i in keep]
                self.labels = [self.labels[i] for i in keep]
                self.windows = [self.windows[i] for i in keep]
        self.clip_cache: ClipCache | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def feature_dim(self) -> int:
        """D of the ``features`` modality, read from the first video's features."""
        try:
            return self.features.dimension(feature_key(self.paths[0]))
        except DecodeError as exc:
            raise UserError(f"cannot read features: {exc}; check --features") from None

    def visible_frames(self, total: int) -> int:
        """How many of a video's ``total`` frames may be read: all, or the first ``r`` (at least 1)."""
        if self.observe is None:
            return total
        if isinstance(self.observe, tuple):
            low, high = self.observe
            ratio = low + (high - low) * float(torch.rand(()).item())
        else:
            ratio = self.observe
        return max(1, min(total, math.floor(ratio * total)))

    def choose_indices(self, info: VideoInfo, window: tuple[float, float] | None = None) -> list[int]:
        """Frame indices of this sample's clip inside the visible part of a video of ``info.frames``
        frames, or of its ``window`` (seconds) when the clip is cut from a longer file."""
        spec = self.spec
        first, total = window_frames(info, window)
        visible = self.visible_frames(total)
        if self.training:
            slack = visible - clip_span(spec.frames, spec.stride)
            start = int(torch.randint(0, slack + 1, ()).item()) if slack > 0 else 0
        else:
            start = centre_clip_start(visible, spec.frames, spec.stride)
        return [first + i for i in clip_indices(visible, spec.frames, spec.stride, start)]

    def cached_frames(self, path: Path) -> torch.Tensor | None:
        """This sample's ``uint8 [T, C, H, W]`` frames from the clip cache, None if not cached.

        Training: ``frames`` consecutive stride-grid frames from a random grid position.
        """
        stored = self.clip_cache.get(path, TRAIN_VIEW if self.training else EVAL_VIEW) if self.clip_cache else None
        if stored is None:
            return None
        if not self.training:
            return torch.from_numpy(np.array(stored))
        slack = len(stored) - self.spec.frames
        start = int(torch.randint(0, slack + 1, ()).item()) if slack > 0 else 0
        return torch.from_numpy(np.ascontiguousarray(stored[clip_indices(len(stored), self.spec.frames, 1, start)]))

    def _modalities_sample(self, index: int) -> dict[str, torch.Tensor]:
        """One input per modality for the chosen clip; DecodeError if the video or its features are unreadable."""
        path, chosen = self.root / self.paths[index], self.modalities
        span: list[float] = []
        times: list[float] = []

        def choose(info: VideoInfo) -> list[int]:
            indices = self.choose_indices(info, self.windows[index])
            fps = info.fps or 25.0
            # Never past the clip's last frame + 1: with --observe the sound stops where the picture does.
            end = min(indices[0] + clip_span(self.spec.frames, self.spec.stride), max(indices) + 1)
            span[:] = [indices[0] / fps, end / fps]
            times[:] = [i / fps for i in indices]
            return with_previous(indices) if "motion" in chosen else indices

        inputs: dict[str, torch.Tensor] = {}
        if "rgb" in chosen or "motion" in chosen:
            frames, _ = read_clip(path, choose, self.decoder)
            clip = self.transform(frames)  # motion: pairs (previous, current), one random crop for all
            if "motion" in chosen:
                inputs["motion"] = clip_motion(clip, self.motion, self.convention)
                clip = clip[:, 1::2]
            if "rgb" in chosen:
                inputs["rgb"] = clip
        else:
            choose(probe(path))
        if "audio" in chosen:
            try:
                spectrogram = log_mel(read_audio(path, *span))
            except NoAudio:
                spectrogram = torch.zeros(1, N_MELS, AUDIO_FRAMES)
            inputs["audio"] = F.interpolate(spectrogram[None], size=(N_MELS, AUDIO_FRAMES), mode="bilinear")[0]
        if "features" in chosen:
            inputs["features"] = self.features.read(feature_key(self.paths[index]), times)
        return {m: inputs[m] for m in chosen}

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.root / self.paths[index]
        if self.modalities != ["rgb"]:
            try:
                inputs = self._modalities_sample(index)
            except WindowPastEnd as exc:
                return {"skipped": f"{path} ({exc})"}
            except DecodeError:
                return {"skipped": str(path)}
            return {"clip": inputs, "label": self.labels[index], "index": index}
        frames = self.cached_frames(path)
        if frames is None:
            try:
                frames, _ = read_clip(path, lambda info: self.choose_indices(info, self.windows[index]), self.decoder)
            except WindowPastEnd as exc:
                return {"skipped": f"{path} ({exc})"}
            except DecodeError:
                return {"skipped": str(path)}
        return {"clip": self.transform(frames), "label": self.labels[index], "index": index}


def view_starts(num_frames: int, spec: ClipSpec, views: int) -> list[int]:
    """Start frames of ``views`` clips spread evenly over the video (one view: centred)."""
    if views == 1:
        return [centre_clip_start(num_frames, spec.frames, spec.stride)]
    slack = max(0, num_frames - clip_span(spec.frames, spec.stride))
    return [round(i * slack / (views - 1)) for i in range(views)]


class MultiViewDataset(Dataset):
    """Every video as ``temporal x spatial`` clips: ``float [V, C, T, H, W]``, V = T_views x S_views.

    The frames of all temporal views are decoded in one pass over the file.
    """

    def __init__(
        self, root: Path, table: pd.DataFrame, spec: ClipSpec, temporal: int, spatial: int, decoder: str = "pyav",
        convention: Convention = PYTORCHVIDEO,
    ) -> None:
        self.root = root
        self.paths = table["path"].tolist()
        self.labels = table["label_id"].astype(int).tolist()
        self.windows = clip_windows(table.reset_index(drop=True))
        self.spec, self.temporal, self.decoder = spec, temporal, decoder
        self.transform = spatial_views_transform(spec.crop, spatial, convention)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        spec = self.spec

        def choose(info: VideoInfo) -> list[int]:
            first, total = window_frames(info, self.windows[index])
            return [first + i for start in view_starts(total, spec, self.temporal)
                    for i in clip_indices(total, spec.frames, spec.stride, start)]

        path = self.root / self.paths[index]
        try:
            frames, _ = read_clip(path, choose, self.decoder)
        except WindowPastEnd as exc:
            return {"skipped": f"{path} ({exc})"}
        except DecodeError:
            return {"skipped": str(path)}
        clips = frames.reshape(self.temporal, spec.frames, *frames.shape[1:])
        views = torch.cat([self.transform(clip) for clip in clips])  # [T_views * S_views, C, T, H, W]
        return {"clip": views, "label": self.labels[index], "index": index}


def collate_clips(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack good samples into ``clips [B, C, T, H, W]`` (``[B, V, C, T, H, W]`` for
    multi-view samples), ``labels [B]``, ``indices [B]``.

    Unreadable samples are dropped and listed under ``skipped``; ``clips`` is None if none
    of the batch could be read.
    """
    good = [s for s in samples if "clip" in s]
    batch: dict[str, Any] = {"skipped": [s["skipped"] for s in samples if "skipped" in s]}
    if good and isinstance(good[0]["clip"], dict):  # several modalities: stack each
        batch["clips"] = {name: torch.stack([s["clip"][name] for s in good]) for name in good[0]["clip"]}
        batch["labels"] = torch.tensor([s["label"] for s in good], dtype=torch.long)
        batch["indices"] = torch.tensor([s["index"] for s in good], dtype=torch.long)
    elif good:
        batch["clips"] = torch.stack([s["clip"] for s in good])
        batch["labels"] = torch.tensor([s["label"] for s in good], dtype=torch.long)
        batch["indices"] = torch.tensor([s["index"] for s in good], dtype=torch.long)
    else:
        batch["clips"] = None
    return batch


def seed_worker(worker_id: int) -> None:
    """Seed NumPy and Python in a DataLoader worker from its torch seed (set by the loader), and
    ignore Ctrl-C there: the main process stops the run cleanly (:mod:`actcli.engine.interrupt`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    workers: int,
    shuffle: bool,
    seed: int = 0,
    pin_memory: bool = False,
    sampler: Sampler | None = None,
) -> DataLoader:
    """A DataLoader that streams clips with ``workers`` processes, reproducible from ``seed``.

    Workers are started afresh every epoch (not persistent) so that re-seeding the loader's
    generator at an epoch start fixes the order and every worker's augmentation RNG. A
    ``sampler`` (e.g. a rank's shard, see :mod:`actcli.engine.distributed`) replaces ``shuffle``.
    """
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else None,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_clips,
        generator=generator,
        pin_memory=pin_memory,
        worker_init_fn=seed_worker,
        drop_last=False,
    )
