"""EK100 score arithmetic: action scores from verb and noun scores, top-k hits, class-mean recall.

Plain NumPy, vectorised over segments, so scoring the 9,668 validation segments takes
well under a second. Shapes: ``N`` segments, ``V`` = 97 verbs, ``C`` = 300 nouns, ``K`` kept
actions. An action id is ``verb * 1000 + noun`` (the official encoding).
"""

from __future__ import annotations

import numpy as np

ACTION_BASE = 1000
TOP_ACTIONS = 100
CHUNK = 1024


def action_id(verb: np.ndarray | int, noun: np.ndarray | int) -> np.ndarray | int:
    """``verb * 1000 + noun``."""
    return verb * ACTION_BASE + noun


def descending(scores: np.ndarray) -> np.ndarray:
    """Indices sorting each row from the highest score, ties broken exactly as the official
    evaluators do (``np.argsort(x)[:, ::-1]``: among equal scores the highest index first)."""
    return np.argsort(scores, axis=-1)[..., ::-1]


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, computed stably."""
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def action_scores(
    verb_scores: np.ndarray, noun_scores: np.ndarray, top: int = TOP_ACTIONS
) -> tuple[np.ndarray, np.ndarray]:
    """The official recognition action scores: softmax over each segment's ``top`` verb scores
    and ``top`` noun scores separately, every verb x noun product, the ``top`` best kept.

    Args:
        verb_scores: ``float [N, V]``; noun_scores: ``float [N, C]`` (any real scores).
    Returns:
        ``int [N, top]`` action ids (best first) and ``float [N, top]`` their probabilities.
    """
    if len(verb_scores) > CHUNK:  # bound memory: [N, 97 * 100] products per chunk, not for all N at once
        parts = [action_scores(verb_scores[i:i + CHUNK], noun_scores[i:i + CHUNK], top)
                 for i in range(0, len(verb_scores), CHUNK)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    top_v, top_n = min(top, verb_scores.shape[1]), min(top, noun_scores.shape[1])
    verbs = descending(verb_scores)[:, :top_v]
    nouns = descending(noun_scores)[:, :top_n]
    rows = np.arange(len(verb_scores))[:, None]
    verb_probs = softmax(verb_scores[rows, verbs])
    noun_probs = softmax(noun_scores[rows, nouns])
    products = (verb_probs[:, :, None] * noun_probs[:, None, :]).reshape(len(verb_scores), -1)  # [N, top_v*top_n]
    best = descending(products)[:, :top]
    ids = action_id(verbs[rows, best // top_n], nouns[rows, best % top_n])
    return ids, products[rows, best]


def rank_kept(action_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``int [N, K]``: each row of ``action_ids`` reordered by its ``scores`` (both ``[N, K]``), best first,
    as the official ``_scores_dict_to_ranks`` orders a segment's ``{action_id: score}`` dict
    (epic-kitchens/C1-Action-Recognition ``utils/scoring.py``, C3-Action-Anticipation
    ``evaluate_anticipation_json_ek100.py``)::

        class_ids = np.array(list(score.keys()))
        score_array = np.array([score[class_id] for class_id in class_ids])
        ranks.append(class_ids[np.argsort(score_array)[::-1]])

    so among equal scores the action stored last comes first.
    """
    return np.take_along_axis(action_ids, descending(scores), axis=-1)


def ranked_actions(verb_scores: np.ndarray, noun_scores: np.ndarray, top: int = TOP_ACTIONS) -> np.ndarray:
    """``int [N, top]`` action ids, best first, as the official evaluators rank a file without
    ``action`` scores: :func:`action_scores` keeps the best products, the evaluators store them in
    a ``{action_id: score}`` dict in that order (C1 ``evaluate.py``, C3 ``convert_results``)::

        {action_id_from_verb_noun(verb, noun): score
         for verb, noun, score in zip(segment_verbs, segment_nouns, segment_score)}

    and rank that dict again with :func:`rank_kept`. Without ties this is the order of
    :func:`action_scores`; with ties (e.g. all-zero rows) the tied kept actions come out reversed.
    """
    ids, probs = action_scores(verb_scores, noun_scores, top)
    return rank_kept(ids, probs)


def ranked(scores: np.ndarray, k: int) -> np.ndarray:
    """``int [N, k]``: the indices of the ``k`` highest scores per row, best first."""
    return descending(scores)[:, :k]


def topk_hits(predicted: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """``bool [N]``: whether ``labels[i]`` is among the first ``k`` columns of ``predicted[i]``."""
    return (predicted[:, :k] == labels[:, None]).any(axis=1)


def class_mean_recall(hits: np.ndarray, labels: np.ndarray, classes: np.ndarray | None = None) -> float:
    """Mean over classes of the fraction of each class's segments with a hit.

    Only classes present in ``labels`` count; ``classes`` restricts them further (e.g. tail
    classes). Returns NaN when no class remains.
    """
    present = np.unique(labels)
    if classes is not None:
        present = np.intersect1d(present, classes)
    if len(present) == 0:
        return float("nan")
    return float(np.mean([hits[labels == c].mean() for c in present]))
