"""Metrics and report schema on hand-checked numbers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import torch
from pydantic import ValidationError

from actcli.engine.benchmark import percentiles
from actcli.engine.evaluate import Predictions, classification_metrics, confusion_matrix
from actcli.report import Report, environment


def test_classification_metrics_by_hand():
    # true: 0 0 1 1 2 ; predicted: 0 1 1 1 0
    logits = torch.tensor([[3.0, 1, 0], [1, 3, 0], [0, 3, 1], [0, 3, 1], [3, 0, 2]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    metrics, cm = classification_metrics(Predictions(logits, labels, torch.arange(5)), ["a", "b", "c"], "test")
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert metrics.top1 == pytest.approx(3 / 5)
    assert metrics.top5 == 1.0
    # recalls: a 1/2, b 1, c 0 -> mean 0.5; precisions: a 1/2, b 2/3, c 0
    assert metrics.mean_class_accuracy == pytest.approx(0.5)
    f1 = [0.5, 0.8, 0.0]
    assert metrics.f1_macro == pytest.approx(sum(f1) / 3)
    assert metrics.f1_weighted == pytest.approx((2 * 0.5 + 2 * 0.8 + 0) / 5)
    assert metrics.per_class["b"].precision == pytest.approx(2 / 3)
    # top-2: sample 1 (true 0, logits 1,3,0) has 0 in its top 2; sample 4 (true 2: 3,0,2) too.


def test_confusion_matrix_rows_are_true_classes():
    assert confusion_matrix(torch.tensor([1, 1]), torch.tensor([0, 1]), 2).tolist() == [[0, 1], [0, 1]]


def test_percentiles():
    values = list(range(1, 101))
    p = percentiles(values)
    assert (p.p50, p.p95, p.mean) == (50.5, 95, 50.5)


def test_report_schema_checks_metrics_of_its_command():
    base = dict(command="test", created=datetime.now(UTC), environment=environment(torch.device("cpu")), config={})
    with pytest.raises(ValidationError):
        Report(**base, metrics={"top1": 0.5})
    bench = {"batch_size": 2, "runs": 3, "warmup": 1, "throughput_clips_per_s": 5.0,
             "model_throughput_clips_per_s": 9.0,
             "model_ms_per_sample": {"p50": 1.0, "p95": 2.0, "mean": 1.5},
             "end_to_end_ms_per_sample": {"p50": 1.0, "p95": 2.0, "mean": 1.5}}
    assert Report(**{**base, "command": "benchmark"}, metrics=bench).metrics["runs"] == 3


def test_video_level_averages_view_probabilities():
    # Two videos, three views each, two classes. Video 0 (label 0): views vote 0, 0, 1 with
    # probabilities that average to class 0. Video 1 (label 1): every view says 0 weakly.
    views = torch.tensor([[[2.0, 0.0], [2.0, 0.0], [0.0, 0.5]], [[0.2, 0.0], [0.1, 0.0], [0.3, 0.0]]])
    video = views.softmax(-1).mean(1).log()
    predictions = Predictions(video, torch.tensor([0, 1]), torch.arange(2), view_logits=views)
    metrics, _ = classification_metrics(predictions, ["a", "b"], "test")
    assert metrics.top1 == 0.5 and metrics.clip_top1 == pytest.approx(2 / 6)
    assert metrics.views_per_video == 3
