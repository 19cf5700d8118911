"""Clip cache (--cache-clips): frames decoded once, read memory-mapped, disk-limited, invalidated."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch
from conftest import TRAIN_FLAGS

from actcli.data.clip_cache import (
    EVAL_VIEW,
    TRAIN_VIEW,
    ClipCache,
    fill_clip_cache,
    grid_indices,
    resize_for_cache,
)
from actcli.data.datasets import VideoClipDataset
from actcli.data.transforms import eval_transform
from actcli.data.video import ClipSpec, probe, read_frames
from actcli.report import read_report

SPEC = ClipSpec(frames=4, stride=2, crop=32)


def _videos(root, count):
    return sorted(root.rglob("*.avi"))[:count]


def _table(root, videos):
    return pd.DataFrame({"path": [str(v.relative_to(root)) for v in videos], "label_id": [0] * len(videos)})


def test_entries_hold_resized_frames_and_eval_clips_match_decoding(tiny_dataset, tmp_path):
    videos = _videos(tiny_dataset, 3)
    cache = ClipCache(tmp_path, SPEC, "pyav", limit_bytes=10**9)
    for view in (TRAIN_VIEW, EVAL_VIEW):
        stats = fill_clip_cache(cache, videos, SPEC, view, "pyav", workers=0)
        assert (stats.cached, stats.written, stats.over_limit) == (3, 3, 0)

    grid = cache.get(videos[0], TRAIN_VIEW)
    assert isinstance(grid, np.memmap) and grid.dtype == np.uint8
    assert grid.shape == (8, 3, 40, 53)  # 16 frames every 2nd; 64x48 -> short side 1.25 x 32
    expected = resize_for_cache(read_frames(videos[0], grid_indices(probe(videos[0]), SPEC)), SPEC, TRAIN_VIEW)
    assert torch.equal(torch.from_numpy(np.array(grid)), expected)

    # Validation reads exactly the pixels it would decode without the cache.
    plain = VideoClipDataset(tiny_dataset, _table(tiny_dataset, videos), SPEC, eval_transform(32), training=False)
    cached = VideoClipDataset(tiny_dataset, _table(tiny_dataset, videos), SPEC, eval_transform(32), training=False)
    cached.clip_cache = cache
    for i in range(3):
        assert torch.equal(plain[i]["clip"], cached[i]["clip"])

    # A training clip is `frames` consecutive grid frames.
    training = VideoClipDataset(tiny_dataset, _table(tiny_dataset, videos), SPEC, lambda f: f, training=True)
    training.clip_cache = cache
    torch.manual_seed(0)
    clip = training.cached_frames(videos[0])
    starts = [s for s in range(5) if torch.equal(clip, torch.from_numpy(np.array(grid[s:s + 4])))]
    assert clip.shape == (4, 3, 40, 53) and len(starts) == 1


def test_limit_bounds_disk_use_and_changed_videos_are_decoded_again(tiny_dataset, tmp_path):
    videos = _videos(tiny_dataset, 6)
    probe_cache = ClipCache(tmp_path / "probe", SPEC, "pyav", limit_bytes=10**9)
    fill_clip_cache(probe_cache, videos[:1], SPEC, EVAL_VIEW, "pyav", workers=0)
    entry = probe_cache.used_bytes()

    cache = ClipCache(tmp_path, SPEC, "pyav", limit_bytes=int(2.5 * entry))
    stats = fill_clip_cache(cache, videos, SPEC, EVAL_VIEW, "pyav", workers=0)
    assert (stats.written, stats.over_limit) == (2, 4)
    assert cache.used_bytes() == 2 * entry <= cache.limit_bytes
    assert sum(f.stat().st_size for f in cache.root.rglob("*.npy")) == 2 * entry

    # A changed video misses (new key); with room again it is written anew.
    stat = videos[0].stat()
    os.utime(videos[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cache.get(videos[0], EVAL_VIEW) is None
    bigger = ClipCache(tmp_path, SPEC, "pyav", limit_bytes=10**9)
    again = fill_clip_cache(bigger, videos[:2], SPEC, EVAL_VIEW, "pyav", workers=0)
    assert (again.cached, again.written) == (2, 1)


def test_train_reads_the_cache_not_the_videos(cli, annotated, workdir):
    flags = ["train", "--dataset", "synthetic", "--experiment", "cc", "--epochs", "2", "--cache-clips", *TRAIN_FLAGS]
    cli(*flags)
    first = read_report(max(workdir.glob("outputs/runs/cc/*/report-train.json"))).metrics
    cache = first["clip_cache"]
    assert cache["videos"] == 12 and cache["written"] == 12 and first["skipped_clips"] == 0
    assert 0 < cache["used_bytes"] <= cache["limit_bytes"]

    # Same size and mtime, unreadable content: only a run that reads the cache still sees every clip.
    for video in annotated.rglob("*.avi"):
        stat = video.stat()
        video.write_bytes(b"\0" * stat.st_size)
        os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    cli(*flags)
    second = read_report(max(workdir.glob("outputs/runs/cc/*/report-train.json"))).metrics
    assert (second["clip_cache"]["cached"], second["clip_cache"]["written"]) == (12, 0)
    assert second["skipped_clips"] == 0 and second["history"][-1]["train_loss"] > 0
