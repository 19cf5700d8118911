"""EK100 metrics exactly as the official evaluators compute them.

Recognition (epic-kitchens/C1-Action-Recognition, ``utils/metrics.py``): top-1 and top-5
accuracy (fraction of segments whose label is among the k best) for verb, noun and action
over all segments; top-1 on the unseen-participant segments and on the tail segments.

Anticipation (epic-kitchens/C3-Action-Anticipation, ``evaluate_anticipation_json_ek100.py``):
class-mean top-5 recall: for each class present in the subset's ground truth, the fraction
of its segments with the label in the top 5, averaged over those classes, for the same
subsets.

Subsets: **unseen** = segments of the unseen participants; **tail** = segments whose verb is
a tail verb (verb metrics), whose noun is a tail noun (noun metrics), or either (action
metrics). Values are fractions in [0, 1] (the official scripts print them x 100); a subset
with no segment gives NaN, written as null in reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from actcli.ek100.annotations import Subsets
from actcli.ek100.scores import action_id, class_mean_recall, ranked, topk_hits

TASKS = ("verb", "noun", "action")


@dataclass(frozen=True)
class GroundTruth:
    """Labels of ``N`` segments: ``int [N]`` verb and noun classes, participant of each."""

    verbs: np.ndarray
    nouns: np.ndarray
    participants: np.ndarray

    @property
    def actions(self) -> np.ndarray:
        return action_id(self.verbs, self.nouns)

    def labels(self, task: str) -> np.ndarray:
        return {"verb": self.verbs, "noun": self.nouns, "action": self.actions}[task]


@dataclass(frozen=True)
class Rankings:
    """Class ids per segment, best first: ``int [N, 97]`` verbs, ``int [N, 300]`` nouns, ``int [N, 100]`` actions."""

    verbs: np.ndarray
    nouns: np.ndarray
    actions: np.ndarray

    @classmethod
    def from_scores(cls, verb_scores: np.ndarray, noun_scores: np.ndarray, action_ids: np.ndarray) -> Rankings:
        """Rank full verb ``[N, 97]`` / noun ``[N, 300]`` scores; ``action_ids [N, 100]`` are already ranked."""
        return cls(ranked(verb_scores, verb_scores.shape[1]), ranked(noun_scores, noun_scores.shape[1]), action_ids)

    def of(self, task: str) -> np.ndarray:
        return {"verb": self.verbs, "noun": self.nouns, "action": self.actions}[task]


def subset_masks(truth: GroundTruth, subsets: Subsets) -> dict[str, dict[str, np.ndarray]]:
    """``bool [N]`` masks per group (overall, unseen, tail) and task."""
    everything = np.ones(len(truth.verbs), dtype=bool)
    unseen = np.isin(truth.participants, list(subsets.unseen_participants))
    tail_verb = np.isin(truth.verbs, list(subsets.tail_verbs))
    tail_noun = np.isin(truth.nouns, list(subsets.tail_nouns))
    return {
        "overall": dict.fromkeys(TASKS, everything),
        "unseen": dict.fromkeys(TASKS, unseen),
        "tail": {"verb": tail_verb, "noun": tail_noun, "action": tail_verb | tail_noun},
    }


def _accuracy(hits: np.ndarray) -> float:
    return float(hits.mean()) if len(hits) else float("nan")


def recognition_metrics(ranks: Rankings, truth: GroundTruth, subsets: Subsets) -> dict[str, dict[str, float]]:
    """``{"overall": {verb_top1, verb_top5, noun_..., action_...}, "unseen": {*_top1}, "tail": {*_top1}}``."""
    out: dict[str, dict[str, float]] = {}
    for group, masks in subset_masks(truth, subsets).items():
        out[group] = {}
        for task in TASKS:
            labels, mask = truth.labels(task), masks[task]
            for k in (1, 5) if group == "overall" else (1,):
                out[group][f"{task}_top{k}"] = _accuracy(topk_hits(ranks.of(task)[mask], labels[mask], k))
    return out


def anticipation_metrics(ranks: Rankings, truth: GroundTruth, subsets: Subsets) -> dict[str, dict[str, float]]:
    """``{group: {verb_mean_top5_recall, noun_mean_top5_recall, action_mean_top5_recall}}``."""
    out: dict[str, dict[str, float]] = {}
    for group, masks in subset_masks(truth, subsets).items():
        out[group] = {}
        for task in TASKS:
            labels, mask = truth.labels(task)[masks[task]], masks[task]
            hits = topk_hits(ranks.of(task)[mask], labels, 5)
            out[group][f"{task}_mean_top5_recall"] = class_mean_recall(hits, labels)
    return out
