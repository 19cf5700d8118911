"""Early action prediction: only the first r of a video is read; per-ratio accuracy and curve."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from conftest import TRAIN_FLAGS

from actcli.data.datasets import VideoClipDataset
from actcli.data.transforms import eval_transform
from actcli.data.video import ClipSpec, probe, read_clip
from actcli.report import read_report

SPEC = ClipSpec(frames=4, stride=2, crop=32)


def _dataset(root, training, observe):
    videos = sorted(root.rglob("*.avi"))[:4]
    table = pd.DataFrame({"path": [str(v.relative_to(root)) for v in videos], "label_id": [0] * len(videos)})
    return VideoClipDataset(root, table, SPEC, eval_transform(32), training, observe=observe), videos


@pytest.mark.parametrize(("training", "observe"), [(False, 0.25), (False, 0.5), (True, (0.1, 0.4))])
def test_no_frame_past_the_observed_part_is_requested(tiny_dataset, training, observe):
    dataset, videos = _dataset(tiny_dataset, training, observe)
    high = observe[1] if isinstance(observe, tuple) else observe
    torch.manual_seed(0)
    for video in videos:
        total = probe(video).frames  # 16
        for _ in range(5):
            frames, requested = read_clip(video, dataset.choose_indices)
            assert max(requested) < max(1, math.floor(high * total)), requested
            assert frames.shape[0] == SPEC.frames
    whole, _ = _dataset(tiny_dataset, False, None)
    assert max(read_clip(videos[0], whole.choose_indices)[1]) > math.floor(0.5 * 16)  # without observe: later frames


def test_early_prediction_train_and_test(cli, annotated, workdir):
    cli("train", "--dataset", "synthetic", "--epochs", "1", "--experiment", "early", "--observe-range", "0.3", "1.0",
        *TRAIN_FLAGS)
    config = next(workdir.glob("outputs/runs/early/*/config.toml")).read_text()
    assert "observe_range = [0.3, 1.0]" in config
    cli("test", "--experiment", "early", "--observe", "1.0,0.25,0.5", "--report", "early.json")
    report = read_report(workdir / "early.json")
    metrics = report.metrics
    assert metrics["ratios"] == [0.25, 0.5, 1.0] and len(metrics["top1"]) == 3 and metrics["clips"] == 6
    assert all(0 <= a <= b <= 1 for a, b in zip(metrics["top1"], metrics["top5"], strict=True))
    assert (workdir / "early-test.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ratios" in cli.fails("test", "--experiment", "early", "--observe", "0,0.5")
    assert "drop --views" in cli.fails("test", "--experiment", "early", "--observe", "0.5", "--views", "3x1")
    assert "0 < low <= high <= 1" in cli.fails("train", "--dataset", "synthetic", "--observe-range", "0.8", "0.2",
                                               *TRAIN_FLAGS)
