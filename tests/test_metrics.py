"""Metrics and report schema on hand-checked numbers, and the classification metrics against
scikit-learn's on random cases."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import pytest
import torch
from pydantic import ValidationError
from sklearn import metrics as sk

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


def test_macro_f1_averages_over_the_classes_in_labels_or_predictions():
    # The case of issue 15: class 2 is predicted once and never true. scikit-learn's macro F1 counts it
    # (F1 0): (2/3 + 1 + 0) / 3 = 0.556, not (2/3 + 1) / 2 = 0.833; classes in neither (here 3 and 4) do not count.
    labels, predicted = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 2, 1, 1])
    for k in (3, 5):
        logits = torch.nn.functional.one_hot(predicted, k).float()
        metrics, _ = classification_metrics(Predictions(logits, labels, torch.arange(4)), list("abcde")[:k], "test")
        assert metrics.f1_macro == pytest.approx(5 / 9)
        assert metrics.f1_macro == pytest.approx(sk.f1_score(labels, predicted, average="macro"))
        assert metrics.mean_class_accuracy == pytest.approx(0.75)  # recalls of the true classes 0 and 1: 1/2, 1
        assert metrics.per_class["c"].precision == 0.0 and metrics.per_class["c"].support == 0


@pytest.mark.parametrize("seed", range(40))  # k in 2..8 (some > 5, for top-5), n in 1..39
def test_classification_metrics_equal_scikit_learns(seed):
    generator = torch.Generator().manual_seed(seed)
    k = int(torch.randint(2, 9, (1,), generator=generator))
    n = int(torch.randint(1, 40, (1,), generator=generator))
    present = torch.randperm(k, generator=generator)[: int(torch.randint(1, k + 1, (1,), generator=generator))]
    labels = present[torch.randint(0, len(present), (n,), generator=generator)]  # some classes never true
    logits = torch.randn(n, k, generator=generator)
    predicted = logits.argmax(1)
    metrics, cm = classification_metrics(Predictions(logits, labels, torch.arange(n)), [f"c{i}" for i in range(k)],
                                         "test")
    every = list(range(k))
    assert cm.tolist() == sk.confusion_matrix(labels, predicted, labels=every).tolist()
    assert metrics.f1_macro == pytest.approx(sk.f1_score(labels, predicted, average="macro", zero_division=0))
    assert metrics.f1_weighted == pytest.approx(sk.f1_score(labels, predicted, average="weighted", zero_division=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true": left out, as intended
        assert metrics.mean_class_accuracy == pytest.approx(sk.balanced_accuracy_score(labels, predicted))
    precision, recall, f1, support = sk.precision_recall_fscore_support(labels, predicted, labels=every,
                                                                        zero_division=0)
    for i in every:
        row = metrics.per_class[f"c{i}"]
        assert (row.precision, row.recall, row.f1) == pytest.approx((precision[i], recall[i], f1[i]))
        assert row.support == support[i]
    assert metrics.top1 == pytest.approx(sk.accuracy_score(labels, predicted))
    assert metrics.top5 == (1.0 if k <= 5 else pytest.approx(sk.top_k_accuracy_score(labels, logits, k=5,
                                                                                      labels=every)))


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
