"""EK100 challenge submission files: write them, and read them back with the official checks.

Format (version "0.2"; epic-kitchens/C1-Action-Recognition ``utils/challenge.py`` and
C3-Action-Anticipation ``evaluate_anticipation_json_ek100.py``)::

    {"version": "0.2", "challenge": "action_recognition" | "action_anticipation",
     "sls_pt": 0-5, "sls_tl": 0-5, "sls_td": 0-5,   (any JSON number in [0, 5], e.g. 5.0)
     "results": {"<narration_id>": {"verb": {"0": s, ..., "96": s},
                                    "noun": {"0": s, ..., "299": s},
                                    "action": {"<verb>,<noun>": s, ... exactly 100}}}}

Recognition files carry no ``action`` (the evaluator derives it); anticipation files carry
the 100 best actions. Reading accepts either; without ``action``, actions come from
:func:`actcli.ek100.scores.ranked_actions`. Any deviation is one :class:`UserError` line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actcli.ek100.annotations import NUM_NOUNS, NUM_VERBS
from actcli.ek100.scores import ACTION_BASE, TOP_ACTIONS, action_scores, rank_kept, ranked_actions
from actcli.errors import UserError
from actcli.fileio import write_text

VERSION = "0.2"
CHALLENGES = {"recognition": "action_recognition", "anticipation": "action_anticipation"}
_VERB_KEYS = [str(i) for i in range(NUM_VERBS)]
_NOUN_KEYS = [str(i) for i in range(NUM_NOUNS)]


@dataclass(frozen=True)
class Supervision:
    """Self-reported supervision levels (0-5) of a submission: pretraining, training labels, data."""

    pt: int = 5
    tl: int = 5
    td: int = 5


def make_submission(
    task: str,
    narration_ids: list[str],
    verb_scores: np.ndarray,
    noun_scores: np.ndarray,
    sls: Supervision = Supervision(),
) -> dict:
    """The submission dict for ``verb_scores [N, 97]`` and ``noun_scores [N, 300]`` (any real scores)."""
    results = {}
    actions, probs = action_scores(verb_scores, noun_scores) if task == "anticipation" else (None, None)
    for i, narration in enumerate(narration_ids):
        entry = {"verb": dict(zip(_VERB_KEYS, map(float, verb_scores[i]), strict=True)),
                 "noun": dict(zip(_NOUN_KEYS, map(float, noun_scores[i]), strict=True))}
        if actions is not None and probs is not None:
            entry["action"] = {f"{a // ACTION_BASE},{a % ACTION_BASE}": float(p)
                               for a, p in zip(actions[i], probs[i], strict=True)}
        results[str(narration)] = entry
    return {"version": VERSION, "challenge": CHALLENGES[task], "sls_pt": sls.pt, "sls_tl": sls.tl,
            "sls_td": sls.td, "results": results}


def write_submission(submission: dict, path: Path) -> None:
    """Write ``submission`` as JSON, atomically."""
    write_text(path, json.dumps(submission))


@dataclass(frozen=True)
class SubmittedScores:
    """Scores of a submission in ground-truth order: ``[N, 97]``, ``[N, 300]``, ranked action ids ``[N, 100]``."""

    verb_scores: np.ndarray
    noun_scores: np.ndarray
    action_ids: np.ndarray
    challenge: str


def _scores(entry: dict, task: str, keys: list[str], where: str) -> list[float]:
    if not isinstance(entry, dict):
        raise UserError(f"{where} must be an object with 'verb' and 'noun' scores")
    scores = entry.get(task)
    if not isinstance(scores, dict):
        raise UserError(f"{where} has no '{task}' scores")
    if list(scores) != keys and sorted(scores, key=lambda k: int(k) if _is_number(k) else -1) != keys:
        raise UserError(f"{where} '{task}' must have exactly the keys 0..{len(keys) - 1}")
    values = [scores[k] for k in keys]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise UserError(f"{where} '{task}' has a score that is not a number")
    return values


def _is_number(text: str) -> bool:
    """ASCII digits only (``"²".isdigit()`` is True but ``int("²")`` fails)."""
    return text.isascii() and text.isdigit()


def _actions(entry: dict, where: str) -> list[int]:
    actions = entry["action"]
    if not isinstance(actions, dict) or len(actions) != TOP_ACTIONS:
        raise UserError(f"{where} must have exactly {TOP_ACTIONS} 'action' scores")
    ids, values = [], []
    for key, score in actions.items():
        parts = str(key).split(",")
        if len(parts) != 2 or not all(_is_number(p.strip()) for p in parts):
            raise UserError(f"{where} action {key!r} is not 'verb,noun'")
        verb, noun = int(parts[0]), int(parts[1])
        if verb >= NUM_VERBS or noun >= NUM_NOUNS:
            raise UserError(f"{where} action {key!r} names a class outside 97 verbs x 300 nouns")
        if not isinstance(score, (int, float)) or isinstance(score, bool):
            raise UserError(f"{where} action {key!r} score is not a number")
        ids.append(verb * ACTION_BASE + noun)
        values.append(score)
    return rank_kept(np.array(ids), np.asarray(values, dtype=float)).tolist()


def _is_level(value: object) -> bool:
    """Whether the official check accepts a supervision level: any number with ``0 <= value <= 5``
    (``5.0`` and ``2.5`` too; NaN, strings and ``null`` fail). epic-kitchens/C3-Action-Anticipation
    ``evaluate_anticipation_json_ek100.py``, ``validate_supervision_level``::

        if not (0 <= submission[property] <= 5):
            raise InvalidSLSException(...)
    """
    return isinstance(value, (int, float)) and 0 <= value <= 5


def _check_challenge(path: Path, challenge: object, expected: str | None) -> None:
    """Refuse a challenge the evaluator does not score, as ``validate_submission_challenge`` does.

    The official anticipation evaluator (C3-Action-Anticipation ``evaluate_anticipation_json_ek100.py``)
    validates with ``supported_challenges='action_anticipation'``, so it refuses
    ``"action_recognition"`` files; recognition (whose JSON evaluator runs on CodaLab, not in
    C1-Action-Recognition) refuses ``"action_anticipation"`` files by the same rule.
    ``expected=None`` accepts either challenge (the file's own challenge picks the metrics).
    """
    if challenge not in CHALLENGES.values():
        raise UserError(f"{path} has challenge {challenge!r}; expected one of {', '.join(CHALLENGES.values())}")
    if expected is not None and challenge != expected:
        task = next(t for t, c in CHALLENGES.items() if c == expected)
        raise UserError(f"{path} is an {challenge!r} submission; the {task} evaluator scores only {expected!r} "
                        f"files (score it as its own challenge)")


def read_submission(path: Path, narration_ids: list[str], challenge: str | None = None) -> SubmittedScores:
    """Load and check a submission for exactly ``narration_ids``; scores come back in their order.

    ``challenge`` (``"action_recognition"`` / ``"action_anticipation"``): the only challenge to
    accept, as the official evaluator of that challenge does; ``None`` accepts either.
    """
    if not path.is_file():
        raise UserError(f"{path} not found; pass the submission JSON written by `actcli test`")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a JSON object with 'version', 'challenge', 'sls_*' and 'results'")
    if data.get("version") != VERSION:
        raise UserError(f"{path} has version {data.get('version')!r}; EK100 submissions are version \"{VERSION}\"")
    _check_challenge(path, data.get("challenge"), challenge)
    for key in ("sls_pt", "sls_tl", "sls_td"):
        if not _is_level(data.get(key)):
            raise UserError(f"{path} needs {key} as a number from 0 to 5, not {data.get(key)!r}")
    results = data.get("results")
    if not isinstance(results, dict):
        raise UserError(f"{path} has no 'results' object")
    missing = [n for n in narration_ids if n not in results]
    if missing:
        raise UserError(f"{path} lacks {len(missing)} segment(s) of the annotations (first: {missing[0]})")
    if len(results) != len(narration_ids):
        extra = next(k for k in results if k not in set(narration_ids))
        raise UserError(f"{path} has segment(s) not in the annotations (first: {extra})")
    bad = next((n for n in narration_ids if not isinstance(results[n], dict)), None)
    if bad is not None:
        raise UserError(f"{path} segment {bad} must be an object with 'verb' and 'noun' scores")
    with_actions = {"action" in results[n] for n in narration_ids}
    if len(with_actions) > 1:
        raise UserError(f"{path} gives 'action' scores for some segments only; give them for all or none")
    # float64, as the official read_array_from_dict fills np.zeros: ties then sort as they do there
    verbs = np.array([_scores(results[n], "verb", _VERB_KEYS, f"{path} segment {n}") for n in narration_ids],
                     dtype=float)
    nouns = np.array([_scores(results[n], "noun", _NOUN_KEYS, f"{path} segment {n}") for n in narration_ids],
                     dtype=float)
    if with_actions == {True}:
        actions = np.array([_actions(results[n], f"{path} segment {n}") for n in narration_ids])
    else:
        actions = ranked_actions(verbs.reshape(len(narration_ids), NUM_VERBS),
                                 nouns.reshape(len(narration_ids), NUM_NOUNS))
    return SubmittedScores(verbs.reshape(-1, NUM_VERBS), nouns.reshape(-1, NUM_NOUNS),
                           actions.reshape(-1, TOP_ACTIONS), data["challenge"])
