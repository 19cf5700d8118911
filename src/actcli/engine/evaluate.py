"""Running a model over a split and turning its logits into classification metrics.

The classification metrics come from torchmetrics (checked against scikit-learn's in the tests):

- ``per_class``: precision, recall and F1 of every class (0 where undefined: a class never
  predicted has precision 0, a class never true recall 0), and its support;
- ``f1_macro``: the unweighted mean F1 over the classes that occur in the labels or the
  predictions (torchmetrics' ``average="macro"``, which leaves out classes without true
  positive, false positive or false negative; scikit-learn's ``f1_score(average="macro")``
  with its default labels). A class predicted but never true counts, with F1 0;
- ``f1_weighted``: per-class F1 weighted by support;
- ``mean_class_accuracy``: the mean recall over the classes present in the labels
  (scikit-learn's ``balanced_accuracy_score``).

torchmetrics is imported where it is used (it takes seconds), not by ``actcli train``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import Progress
from torch.utils.data import DataLoader

from actcli.fileio import atomic_path, write_text
from actcli.pipeline import clips_to_device
from actcli.report import ClassMetrics, TestMetrics


@dataclass
class Predictions:
    """Model outputs over a loader: ``logits float [N, K]``, ``labels long [N]``.

    For multi-view input ``logits`` are per video (log of the views' mean softmax) and
    ``view_logits float [N, V, K]`` keeps every view.
    """

    logits: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    skipped: list[str] = field(default_factory=list)
    view_logits: torch.Tensor | None = None


@torch.no_grad()
def predict_loader(
    model: torch.nn.Module,
    loader: DataLoader,
    device: torch.device,
    progress: Progress | None = None,
    description: str = "evaluate",
) -> Predictions:
    """Logits for every readable clip of ``loader`` (model in eval mode, no gradients)."""
    from actcli.engine.memory_format import uses_channels_last

    model.eval()
    channels_last = isinstance(model, torch.nn.Module) and uses_channels_last(model)  # OpenVINO: contiguous
    logits, labels, indices, skipped = [], [], [], []
    task = progress.add_task(description, total=len(loader)) if progress else None
    for batch in loader:
        skipped.extend(batch["skipped"])
        if batch["clips"] is not None:
            clips = batch["clips"]
            if isinstance(clips, torch.Tensor) and clips.ndim == 6:  # [B, V, C, T, H, W]: every view, per video
                out = model(clips_to_device(clips.flatten(0, 1), device, channels_last)).float().cpu()
                logits.append(out.reshape(clips.shape[0], clips.shape[1], -1))
            else:
                logits.append(model(clips_to_device(clips, device, channels_last)).float().cpu())
            labels.append(batch["labels"])
            indices.append(batch["indices"])
        if progress is not None and task is not None:
            progress.advance(task)
    if progress is not None and task is not None:
        progress.remove_task(task)
    if not logits:
        return Predictions(torch.empty(0, 0), torch.empty(0, dtype=torch.long),
                           torch.empty(0, dtype=torch.long), skipped)
    stacked = torch.cat(logits)
    if stacked.ndim == 3:
        video = stacked.softmax(dim=-1).mean(dim=1).clamp_min(1e-12).log()
        return Predictions(video, torch.cat(labels), torch.cat(indices), skipped, view_logits=stacked)
    return Predictions(stacked, torch.cat(labels), torch.cat(indices), skipped)


def confusion_matrix(predicted: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``long [K, K]``: row = true class, column = predicted class (``predicted``, ``labels``: ``long [N]``)."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix  # seconds to import: when used
    # torchmetrics wants K >= 2; a K-th class that occurs nowhere changes none of the first K rows.
    cm = multiclass_confusion_matrix(predicted, labels, max(2, num_classes))
    return cm[:num_classes, :num_classes]


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` highest logits (k capped at K)."""
    k = min(k, logits.shape[1])
    hits = (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1)
    return float(hits.float().mean())


def classification_metrics(
    predictions: Predictions, classes: list[str], split: str
) -> tuple[TestMetrics, torch.Tensor]:
    """Top-1/5, mean class accuracy, macro/weighted F1 and per-class P/R/F1, plus the confusion matrix.

    With several views per video, these are video-level (views' softmax averaged) and
    ``clip_top1``/``clip_top5`` score every view on its own.
    """
    from torchmetrics.functional.classification import multiclass_f1_score, multiclass_precision, multiclass_recall

    logits, labels = predictions.logits, predictions.labels
    if len(labels) == 0:
        raise ValueError("no readable clip to evaluate")
    k = len(classes)
    predicted = logits.argmax(dim=1)
    cm = confusion_matrix(predicted, labels, k)
    support = cm.sum(dim=1)
    args = (predicted, labels, max(2, k))  # as in confusion_matrix: a class that occurs nowhere counts nowhere
    precision, recall, f1 = (metric(*args, average="none")[:k]
                             for metric in (multiclass_precision, multiclass_recall, multiclass_f1_score))
    per_class = {
        name: ClassMetrics(
            precision=float(precision[i]), recall=float(recall[i]), f1=float(f1[i]),
            support=int(support[i]),
        )
        for i, name in enumerate(classes)
    }
    views = predictions.view_logits
    if views is not None:  # clip level: every view judged on its own
        clip_logits = views.flatten(0, 1)
        clip_labels = labels.repeat_interleave(views.shape[1])
    else:
        clip_logits, clip_labels = logits, labels
    metrics = TestMetrics(
        split=split,
        clips=len(labels),
        skipped_clips=len(predictions.skipped),
        top1=topk_accuracy(logits, labels, 1),
        top5=topk_accuracy(logits, labels, 5),
        mean_class_accuracy=float(recall[support > 0].mean()),
        f1_macro=float(multiclass_f1_score(*args, average="macro")),
        f1_weighted=float(multiclass_f1_score(*args, average="weighted")),
        loss=float(F.cross_entropy(logits, labels)),
        per_class=per_class,
        clip_top1=topk_accuracy(clip_logits, clip_labels, 1),
        clip_top5=topk_accuracy(clip_logits, clip_labels, 5),
        views_per_video=views.shape[1] if views is not None else 1,
    )
    return metrics, cm


def write_confusion_csv(cm: torch.Tensor, classes: list[str], path: Path) -> None:
    """Confusion matrix as CSV: header ``true\\predicted,<classes>``, one row per true class."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["true\\predicted", *classes])
    for name, row in zip(classes, cm.tolist(), strict=True):
        writer.writerow([name, *row])
    write_text(path, buffer.getvalue())


def plot_confusion(cm: torch.Tensor, classes: list[str], path: Path, title: str) -> None:
    """Row-normalised confusion matrix as a PNG heat map (counts written in the cells)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(classes)
    rates = cm.double() / cm.sum(dim=1, keepdim=True).clamp(min=1)
    size = max(4.0, 0.35 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
