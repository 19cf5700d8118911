"""Anticipation metrics for any dataset, the two baselines every model must beat, and the recall-vs-tau_a plot.

Metrics (fractions in [0, 1]) per anticipation time ``tau_a``, over the segments whose window lies in
the video: **top-1** and **top-5** accuracy and **class-mean top-5 recall** (for each class present,
the fraction of its segments with the label in the top 5, averaged over those classes: EK100's
anticipation metric, :func:`actcli.ek100.scores.class_mean_recall`). With EK100's two heads the
label is the action (``verb * 1000 + noun``, ranked from the verb x noun products as the official
evaluators do) and each head gets its class-mean top-5 recall too.

Baselines, computed from the ground-truth segment table (so they are oracles of the past):

* **same as the last observed action**: the label of the action under way at ``start - tau_a``;
* **most frequent next action**: the most frequent target of the training split (top-1 and top-5);
* **most frequent next action given the last observed one** (a bigram of the training split, falling
  back to the most frequent): how far the last action alone gets.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import torch

from actcli.data.sequences import SegmentRows
from actcli.ek100.scores import action_id, class_mean_recall, ranked, ranked_actions, topk_hits
from actcli.fileio import atomic_path

BASELINES = ("same_as_last", "most_frequent_next", "most_frequent_next_given_last")


def ranked_labels(logits: torch.Tensor, heads: tuple[int, ...]) -> np.ndarray:
    """``int [N, k]`` label ids, best first (EK100 heads: action ids from verb x noun, 100 kept)."""
    scores = logits.float().numpy()
    if not heads:
        return ranked(scores, min(5, scores.shape[1]))
    return ranked_actions(scores[:, :heads[0]], scores[:, heads[0]:heads[0] + heads[1]])


def target_ids(labels: np.ndarray, heads: tuple[int, ...]) -> np.ndarray:
    """``int [N]``: the label (one head) or the action id (verb, noun)."""
    return labels[:, 0] if not heads else action_id(labels[:, 0], labels[:, 1])


def scores(ranks: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """``{"top1", "top5", "mean_top5_recall"}`` of rankings ``[N, k]`` against ``truth [N]``."""
    if len(truth) == 0:
        return {"top1": 0.0, "top5": 0.0, "mean_top5_recall": 0.0}
    top5 = topk_hits(ranks, truth, 5)
    return {"top1": float(topk_hits(ranks, truth, 1).mean()), "top5": float(top5.mean()),
            "mean_top5_recall": class_mean_recall(top5, truth)}


def head_recalls(logits: torch.Tensor, labels: np.ndarray, heads: tuple[int, ...]) -> dict[str, float]:
    """EK100: class-mean top-5 recall of the verb and the noun head."""
    out = {}
    start = 0
    for name, size, column in (("verb", heads[0], 0), ("noun", heads[1], 1)):
        part = logits[:, start:start + size].float().numpy()
        out[name] = class_mean_recall(topk_hits(ranked(part, 5), labels[:, column], 5), labels[:, column])
        start += size
    return out


def _encode(labels: tuple[int, ...] | None) -> tuple[int, ...] | None:
    return tuple(labels) if labels is not None else None


def baselines(test: SegmentRows, train: SegmentRows, tau_a: float, keep: np.ndarray) -> dict[str, float]:
    """Top-1 of the baselines (module docstring) on the test segments ``keep``, and ``most_frequent_next_top5``."""
    targets = [tuple(int(v) for v in row) for row in train.labels]
    frequent = [label for label, _ in Counter(targets).most_common(5)] or [tuple(test.labels[0])]
    given: dict[tuple[int, ...], Counter] = {}
    for i, target in enumerate(targets):
        last = _encode(train.last_observed(i, tau_a))
        if last is not None:
            given.setdefault(last, Counter())[target] += 1
    hits = dict.fromkeys([*BASELINES, "most_frequent_next_top5"], 0)
    index = np.flatnonzero(keep)
    for i in index:
        truth = tuple(int(v) for v in test.labels[i])
        last = _encode(test.last_observed(int(i), tau_a))
        hits["same_as_last"] += int(last == truth)
        hits["most_frequent_next"] += int(frequent[0] == truth)
        hits["most_frequent_next_top5"] += int(truth in frequent[:5])
        bigram = given.get(last) if last is not None else None
        guess = bigram.most_common(1)[0][0] if bigram else frequent[0]
        hits["most_frequent_next_given_last"] += int(guess == truth)
    return {k: v / max(1, len(index)) for k, v in hits.items()}


def plot_recall(taus: list[float], series: dict[str, list[float]], path: Path, title: str,
                reference: dict[str, float] | None = None) -> None:
    """Accuracy / recall against ``tau_a`` (one line per series), with horizontal reference lines
    (e.g. the grammar's best possible top-1), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for (name, values), marker in zip(series.items(), "osD^v<>*x+", strict=False):
        ax.plot(taus, values, marker=marker, label=name)
    for name, value in (reference or {}).items():
        ax.axhline(value, linestyle="--", linewidth=1, color="grey")
        ax.text(max(taus), value, f" {name}", va="bottom", ha="right", fontsize=7, color="grey")
    ax.set_xlabel("anticipation time tau_a (s)")
    ax.set_ylabel("accuracy / recall")
    ax.set_ylim(0, 1.02)
    ax.invert_xaxis()  # RULSTM's tables read from the farthest anticipation to the nearest
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
