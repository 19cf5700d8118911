"""Frozen-backbone fast path: features cached once, invalidated when a video or the model changes."""

from __future__ import annotations

import os
import re

import torch
from conftest import TRAIN_FLAGS

from actcli.data.cache import FeatureCache, model_key, video_key
from actcli.data.video import ClipSpec
from actcli.report import read_report

FAST = ["--freeze", "backbone", "--no-augment", "--epochs", "2"]


def _counts(output: str) -> list[tuple[int, int]]:
    return [(int(a), int(b)) for a, b in re.findall(r"backbone features: (\d+) cached, (\d+) computed", output)]


def test_features_are_cached_and_invalidated(cli, annotated, workdir):
    first = cli("train", "--dataset", "synthetic", "--experiment", "fast", *FAST, *TRAIN_FLAGS).output
    assert _counts(first) == [(0, 6), (0, 6)]  # train and val, all computed
    second = cli("train", "--dataset", "synthetic", "--experiment", "fast", *FAST, *TRAIN_FLAGS).output
    assert _counts(second) == [(6, 0), (6, 0)]

    # A changed video (new modification time) is recomputed; the others still hit.
    train_csv = (workdir / "annotations" / "synthetic" / "train.csv").read_text().splitlines()
    video = annotated / train_csv[1].split(",")[0]
    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = cli("train", "--dataset", "synthetic", "--experiment", "fast", *FAST, *TRAIN_FLAGS).output
    assert _counts(third) == [(5, 1), (6, 0)]

    # Another clip spec (or model, or weights) is another cache key: everything recomputed.
    flags = [f if f != "32" else "48" for f in TRAIN_FLAGS]
    fourth = cli("train", "--dataset", "synthetic", "--experiment", "fast", *FAST, *flags).output
    assert _counts(fourth) == [(0, 6), (0, 6)]

    # The checkpoint holds the whole model (backbone + trained head): `test` runs on videos.
    cli("test", "--experiment", "fast")
    runs = sorted((workdir / "outputs" / "runs" / "fast").iterdir())
    assert 0 <= read_report(runs[-1] / "report-test-test.json").metrics["top1"] <= 1


def test_cache_keys(tmp_path):
    video = tmp_path / "a.avi"
    video.write_bytes(b"1234")
    key = video_key(video)
    video.write_bytes(b"12345")
    assert video_key(video) != key
    spec = ClipSpec(4, 2, 32)
    assert model_key("x3d_xs", "random-seed0", spec) != model_key("x3d_xs", "random-seed1", spec)
    assert model_key("x3d_xs", "w", spec) != model_key("x3d_s", "w", spec)
    cache = FeatureCache(tmp_path, "k")
    assert cache.get(video) is None
    cache.put(video, torch.arange(3.0))
    assert torch.equal(cache.get(video), torch.arange(3.0))
