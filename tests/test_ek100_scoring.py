"""EK100 scoring: hand-computed cases, the official evaluators' code as reference, submissions, `actcli score`."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actcli.ek100.annotations import FILES, Subsets, load_segments, load_subsets
from actcli.ek100.metrics import GroundTruth, Rankings, anticipation_metrics, recognition_metrics
from actcli.ek100.scores import action_scores, class_mean_recall
from actcli.ek100.submission import make_submission, read_submission, write_submission
from actcli.errors import UserError
from actcli.report import read_report

EK100 = Path(__file__).parent / "data" / "ek100"  # real annotation rows, see its README.md


# --- the official code, verbatim from epic-kitchens/C3-Action-Anticipation evaluate_anticipation_json_ek100.py
def official_softmax(xs):
    if xs.ndim == 1:
        xs = xs.reshape((1, -1))
    max_x = np.max(xs, axis=1).reshape((-1, 1))
    exp_x = np.exp(xs - max_x)
    return exp_x / np.sum(exp_x, axis=1).reshape((-1, 1))


def official_top_scores(scores, top_n=100):
    top_n_scores_idx = np.argsort(scores)[:, ::-1][:, :top_n]
    top_n_scores = scores[np.arange(0, len(scores)).reshape(-1, 1), top_n_scores_idx]
    return top_n_scores_idx, top_n_scores


def official_compute_action_scores(verb_scores, noun_scores, top_n=100):
    top_verbs, top_verb_scores = official_top_scores(verb_scores, top_n=top_n)
    top_nouns, top_noun_scores = official_top_scores(noun_scores, top_n=top_n)
    top_verb_probs = official_softmax(top_verb_scores)
    top_noun_probs = official_softmax(top_noun_scores)
    action_probs_matrix = top_verb_probs[:, :, np.newaxis] * top_noun_probs[:, np.newaxis, :]
    instance_count = action_probs_matrix.shape[0]
    action_ranks = action_probs_matrix.reshape(instance_count, -1).argsort(axis=-1)[:, ::-1]
    verb_ranks_idx, noun_ranks_idx = np.unravel_index(action_ranks[:, :top_n], shape=(action_probs_matrix.shape[1:]))
    segments = np.arange(0, instance_count).reshape(-1, 1)
    return ((top_verbs[segments, verb_ranks_idx], top_nouns[segments, noun_ranks_idx]),
            action_probs_matrix.reshape(instance_count, -1)[segments, action_ranks[:, :top_n]])


def official_topk_accuracy(rankings, labels, ks=(1, 5)):
    maxk = np.max(ks)
    tp = rankings[:, :maxk] == labels.reshape(-1, 1)
    return [tp[:, :k].max(1).mean() for k in ks]


def official_mean_topk_recall(rankings, labels, k=5):
    classes = np.unique(labels)
    recalls = []
    for c in classes:
        idx = labels == c
        recalls.append(official_topk_accuracy(rankings[idx], labels[idx], ks=(k,))[0])
    return np.mean(recalls)


# --- verbatim from epic-kitchens/C1-Action-Recognition utils/scoring.py (the same in C3's evaluator)
def official_scores_dict_to_ranks(scores):
    ranks = []
    for score in scores:
        class_ids = np.array(list(score.keys()))
        score_array = np.array([score[class_id] for class_id in class_ids])
        ranks.append(class_ids[np.argsort(score_array)[::-1]])
    return np.array(ranks)


def official_action_ranks(verb_scores, noun_scores):
    """C1 evaluate.py ``main`` (and C3 ``convert_results`` for a file without ``action``), verbatim
    but for the names: the kept actions go into a dict, which ``scores_dict_to_ranks`` ranks."""
    (verbs, nouns), _scores = official_compute_action_scores(verb_scores, noun_scores, top_n=100)
    action = [
        {verb * 1000 + noun: score for verb, noun, score in zip(segment_verbs, segment_nouns, segment_score)}  # noqa: B905
        for segment_verbs, segment_nouns, segment_score in zip(verbs, nouns, _scores)  # noqa: B905
    ]
    return official_scores_dict_to_ranks(action)


# --- verbatim from epic-kitchens/C3-Action-Anticipation evaluate_anticipation_json_ek100.py (exceptions simplified)
class OfficialValidationError(Exception):
    pass


def official_validate_submission_challenge(submission, supported_challenges):
    if "challenge" not in submission.keys():  # noqa: SIM118
        raise OfficialValidationError("challenge")
    if submission["challenge"] not in supported_challenges:
        raise OfficialValidationError(supported_challenges, submission["challenge"])


def official_validate_supervision_level(submission):
    sls_properties = ["sls_pt", "sls_tl", "sls_td"]
    for property in sls_properties:
        if property not in submission:
            raise OfficialValidationError(property)
    for property in sls_properties:
        if not (0 <= submission[property] <= 5):
            raise OfficialValidationError(submission["sls_pt"], submission["sls_tl"], submission["sls_td"])
# --- end of the official code


def test_action_scores_by_hand():
    verbs = np.array([[1.0, 0.0, -5.0]])
    nouns = np.array([[0.0, 2.0, 0.5]])
    ids, probs = action_scores(verbs, nouns, top=2)
    verb_p = np.exp([1.0, 0.0]) / np.exp([1.0, 0.0]).sum()  # softmax over the top-2 verbs only
    noun_p = np.exp([2.0, 0.5]) / np.exp([2.0, 0.5]).sum()  # nouns 1 and 2
    assert ids.tolist() == [[1, 1001]]  # (verb 0, noun 1), then (verb 1, noun 1): 0.60 > 0.22 > 0.13
    assert probs[0] == pytest.approx([verb_p[0] * noun_p[0], verb_p[1] * noun_p[0]])


def test_action_scores_match_the_official_code():
    rng = np.random.default_rng(0)
    verbs, nouns = rng.normal(size=(50, 97)), rng.normal(size=(50, 300))
    verbs[:3], nouns[:3] = 0.0, 0.0  # all-zero rows (missing media): ties broken as the official code does
    (v, n), official = official_compute_action_scores(verbs, nouns)
    ids, probs = action_scores(verbs, nouns)
    assert np.array_equal(ids, v * 1000 + n) and np.allclose(probs, official)
    ranks = Rankings.from_scores(verbs, nouns, ids)
    assert np.array_equal(ranks.verbs, np.argsort(verbs)[:, ::-1]) and ranks.verbs[0, :3].tolist() == [96, 95, 94]


def test_class_mean_recall_by_hand():
    labels = np.array([0, 0, 0, 1])
    hits = np.array([True, True, True, False])
    assert class_mean_recall(hits, labels) == pytest.approx(0.5)  # (3/3 + 0/1) / 2, not 3/4
    assert class_mean_recall(hits, labels, classes=np.array([0, 7])) == pytest.approx(1.0)
    assert math.isnan(class_mean_recall(hits[:0], labels[:0]))


def _case():
    """Four segments: P01 x2 (seen), P02 x2 (unseen); verb 5 and noun 9 are tail classes."""
    truth = GroundTruth(np.array([0, 0, 5, 50]), np.array([2, 9, 3, 3]), np.array(["P01", "P01", "P02", "P02"]))
    subsets = Subsets(frozenset({5}), frozenset({9}), frozenset({"P02"}))
    verb_scores = np.zeros((4, 97))
    verb_scores[[0, 1, 2, 3], [0, 3, 5, 0]] = 10  # right, wrong, right, wrong (verb 50 ranks past 5th)
    verb_scores[1, 0] = 5  # segment 1: the true verb is second
    noun_scores = np.zeros((4, 300))
    noun_scores[[0, 1, 2, 3], [2, 9, 4, 3]] = 10  # right, right, wrong, right
    return truth, subsets, verb_scores, noun_scores


def test_recognition_metrics_by_hand():
    truth, subsets, verb_scores, noun_scores = _case()
    ranks = Rankings.from_scores(verb_scores, noun_scores, action_scores(verb_scores, noun_scores)[0])
    m = recognition_metrics(ranks, truth, subsets)
    assert m["overall"]["verb_top1"] == 0.5 and m["overall"]["verb_top5"] == 0.75
    assert m["overall"]["noun_top1"] == 0.75
    assert m["overall"]["action_top1"] == 0.25  # only segment 0 has verb and noun right
    assert m["unseen"] == {"verb_top1": 0.5, "noun_top1": 0.5, "action_top1": 0.0}
    # tail verb: segment 2 (right); tail noun: segment 1 (right); tail action: segments 1 and 2 (both wrong)
    assert m["tail"] == {"verb_top1": 1.0, "noun_top1": 1.0, "action_top1": 0.0}


def test_anticipation_metrics_match_the_official_code():
    rng = np.random.default_rng(1)
    n = 400
    truth = GroundTruth(rng.integers(0, 8, n), rng.integers(0, 12, n), rng.choice(["P01", "P02", "P03"], n))
    subsets = Subsets(frozenset({5, 6, 7}), frozenset({10, 11}), frozenset({"P03"}))
    verb_scores, noun_scores = rng.normal(size=(n, 97)), rng.normal(size=(n, 300))
    verb_scores[np.arange(n), truth.verbs] += 2  # better than chance, so recalls are not all 0
    ranks = Rankings.from_scores(verb_scores, noun_scores, action_scores(verb_scores, noun_scores)[0])
    m = anticipation_metrics(ranks, truth, subsets)
    tail_action = np.isin(truth.verbs, [5, 6, 7]) | np.isin(truth.nouns, [10, 11])
    expected = {
        ("overall", "verb"): official_mean_topk_recall(ranks.verbs, truth.verbs),
        ("overall", "action"): official_mean_topk_recall(ranks.actions, truth.actions),
        ("unseen", "noun"): official_mean_topk_recall(ranks.nouns[truth.participants == "P03"],
                                                      truth.nouns[truth.participants == "P03"]),
        ("tail", "action"): official_mean_topk_recall(ranks.actions[tail_action], truth.actions[tail_action]),
    }
    for (group, task), value in expected.items():
        assert m[group][f"{task}_mean_top5_recall"] == pytest.approx(value)
    assert 0.2 < m["overall"]["verb_mean_top5_recall"] <= 1


def test_submission_round_trip_and_checks(tmp_path):
    rng = np.random.default_rng(2)
    ids = ["P01_01_0", "P01_01_1", "P02_03_7"]
    verbs, nouns = rng.normal(size=(3, 97)), rng.normal(size=(3, 300))
    path = tmp_path / "sub.json"
    write_submission(make_submission("anticipation", ids, verbs, nouns), path)
    data = json.loads(path.read_text())
    assert (data["version"], data["challenge"]) == ("0.2", "action_anticipation")
    entry = data["results"]["P02_03_7"]
    assert len(entry["verb"]) == 97 and len(entry["noun"]) == 300 and len(entry["action"]) == 100
    assert all(k.count(",") == 1 for k in entry["action"])
    back = read_submission(path, list(reversed(ids)))  # scores come back in the order asked for
    assert np.allclose(back.verb_scores, verbs[::-1]) and np.allclose(back.noun_scores, nouns[::-1])
    assert np.array_equal(back.action_ids, action_scores(verbs, nouns)[0][::-1])

    recognition = make_submission("recognition", ids, verbs, nouns)
    assert "action" not in recognition["results"]["P01_01_0"]
    broken = {
        "version": {**data, "version": "0.1"},
        "lacks 1 segment": {**data, "results": {k: v for k, v in data["results"].items() if k != "P01_01_1"}},
        "exactly 100": {**data, "results": {**data["results"], "P01_01_0": {
            **entry, "action": dict(list(entry["action"].items())[:99])}}},
        "all or none": {**data, "results": {**data["results"], "P01_01_0": {"verb": entry["verb"],
                                                                            "noun": entry["noun"]}}},
        "sls_pt": {**data, "sls_pt": 9},
    }
    for message, content in broken.items():
        path.write_text(json.dumps(content))
        with pytest.raises(UserError, match=message):
            read_submission(path, ids)


@pytest.fixture()
def real_subset(tmp_path) -> Path:
    """The first 300 real validation segments plus the real tail and unseen files."""
    folder = tmp_path / "ek100"
    folder.mkdir()
    pd.read_csv(EK100 / FILES["validation"], dtype=str).head(300).to_csv(folder / "val300.csv", index=False)
    for key in ("tail_verbs", "tail_nouns", "unseen_validation"):
        shutil.copy(EK100 / FILES[key], folder / FILES[key])
    return folder


def test_score_command_on_real_annotations(cli, real_subset, tmp_path):
    segments = load_segments(real_subset / "val300.csv")
    ids = segments["narration_id"].tolist()
    # Perfect scores: every metric is 1 (empty unseen subset: null).
    verbs = np.eye(97)[segments["verb_class"]] * 10
    nouns = np.eye(300)[segments["noun_class"]] * 10
    write_submission(make_submission("anticipation", ids, verbs, nouns), tmp_path / "perfect.json")
    cli("score", tmp_path / "perfect.json", "--annotations", real_subset / "val300.csv",
        "--report", tmp_path / "p.json")
    perfect = read_report(tmp_path / "p.json").metrics
    assert perfect["task"] == "anticipation" and perfect["segments"] == 300
    assert all(v == 1.0 for v in perfect["overall"].values()) and all(v == 1.0 for v in perfect["tail"].values())
    assert all(v is None for v in perfect["unseen"].values())  # no P18/P32 segment among the first 300

    # With the P18 (unseen) rows, the unseen group is scored.
    full = load_segments(EK100 / FILES["validation"])
    verbs, nouns = np.eye(97)[full["verb_class"]] * 10, np.eye(300)[full["noun_class"]] * 10
    write_submission(make_submission("recognition", full["narration_id"].tolist(), verbs, nouns), tmp_path / "all.json")
    cli("score", tmp_path / "all.json", "--annotations", EK100 / FILES["validation"], "--report", tmp_path / "a.json")
    unseen = read_report(tmp_path / "a.json").metrics["unseen"]
    assert unseen == {"verb_top1": 1.0, "noun_top1": 1.0, "action_top1": 1.0}

    # Random scores, recognition metrics: the report equals the metric functions on the same scores.
    rng = np.random.default_rng(3)
    verbs, nouns = rng.normal(size=(300, 97)), rng.normal(size=(300, 300))
    write_submission(make_submission("recognition", ids, verbs, nouns), tmp_path / "random.json")
    cli("score", tmp_path / "random.json", "--annotations", real_subset / "val300.csv")
    report = read_report(tmp_path / "random-score-recognition.json").metrics
    truth = GroundTruth(segments["verb_class"].to_numpy(), segments["noun_class"].to_numpy(),
                        segments["participant_id"].to_numpy())
    ranks = Rankings.from_scores(verbs, nouns, action_scores(verbs, nouns)[0])
    expected = recognition_metrics(ranks, truth, load_subsets(real_subset))
    assert report["overall"] == pytest.approx(expected["overall"])
    assert report["overall"]["verb_top1"] == pytest.approx(official_topk_accuracy(ranks.verbs, truth.verbs)[0])


def test_score_rejects_malformed_input(cli, real_subset, tmp_path):
    assert "not found" in cli.fails("score", tmp_path / "none.json", "--annotations", real_subset / "val300.csv")
    (tmp_path / "bad.json").write_text("{")
    assert "is not JSON" in cli.fails("score", tmp_path / "bad.json", "--annotations", real_subset / "val300.csv")
    table = pd.read_csv(real_subset / "val300.csv", dtype=str)
    table.loc[5, "verb_class"] = "120"
    table.to_csv(real_subset / "bad.csv", index=False)
    line = cli.fails("score", tmp_path / "bad.json", "--annotations", real_subset / "bad.csv")
    assert "row 7" in line and "verb_class" in line
    (real_subset / "empty.csv").write_text("")
    assert "not a readable CSV" in cli.fails("score", tmp_path / "bad.json", "--annotations", real_subset / "empty.csv")
    ids = load_segments(real_subset / "val300.csv")["narration_id"].tolist()
    verbs, nouns = np.zeros((300, 97)), np.zeros((300, 300))
    submission = make_submission("recognition", ids, verbs, nouns)
    submission["results"][ids[0]] = [1, 2]
    (tmp_path / "odd.json").write_text(json.dumps(submission))
    assert "must be an object" in cli.fails("score", tmp_path / "odd.json", "--annotations", real_subset / "val300.csv")
    submission["results"][ids[0]] = {"verb": {"\u00b2": 1.0}, "noun": {}}
    (tmp_path / "odd.json").write_text(json.dumps(submission))
    assert "keys 0..96" in cli.fails("score", tmp_path / "odd.json", "--annotations", real_subset / "val300.csv")


def test_download_ek100_annotations_from_a_folder_checks_every_file(cli, workdir):
    out = cli("download", "ek100-annotations", "--from", EK100).output
    folder = workdir / "data" / "ek100" / "annotations"
    assert (folder / FILES["validation"]).read_bytes() == (EK100 / FILES["validation"]).read_bytes()
    assert "400" in out and json.loads((workdir / "outputs" / "datasets.json").read_text())["ek100-annotations"]

    # A truncated class file is caught at download time, with the file named.
    broken = workdir / "broken"
    shutil.copytree(EK100, broken)
    lines = (broken / FILES["verbs"]).read_text().splitlines()
    (broken / FILES["verbs"]).chmod(0o644)  # the shared copies are read-only
    (broken / FILES["verbs"]).write_text("\n".join(lines[:50]) + "\n")
    line = cli.fails("download", "ek100-annotations", "--from", broken, "--dest", workdir / "other")
    assert FILES["verbs"] in line and "97" in line
    assert "lacks" in cli.fails("download", "ek100-annotations", "--from", workdir / "outputs")


def _without_actions(submission: dict) -> dict:
    """``submission`` with every segment's ``action`` scores dropped."""
    results = {n: {k: v for k, v in entry.items() if k != "action"} for n, entry in submission["results"].items()}
    return {**submission, "results": results}


def test_tied_actions_rank_as_the_official_evaluators(tmp_path):
    """Without ``action`` scores, the kept actions are ranked as C1 ``evaluate.py`` / C3
    ``convert_results`` do: the 100 best products go into a ``{action_id: score}`` dict and
    ``_scores_dict_to_ranks`` sorts it again (``np.argsort(score_array)[::-1]``), which reverses
    tied actions. All-zero rows, rows with many ties and rows without ties."""
    rng = np.random.default_rng(4)
    verbs = np.concatenate([np.zeros((2, 97)), rng.integers(0, 3, (6, 97)), rng.normal(size=(4, 97))])
    nouns = np.concatenate([np.zeros((2, 300)), rng.integers(0, 3, (6, 300)), rng.normal(size=(4, 300))])
    ids = [f"P01_11_{i}" for i in range(len(verbs))]
    expected = official_action_ranks(verbs, nouns)
    for task in ("recognition", "anticipation"):
        write_submission(_without_actions(make_submission(task, ids, verbs, nouns)), tmp_path / f"{task}.json")
        assert np.array_equal(read_submission(tmp_path / f"{task}.json", ids).action_ids, expected)
    # Integer scores in the file rank as the official float64 arrays (read_array_from_dict) do.
    verbs, nouns = verbs.astype(int), nouns.astype(int)
    data = make_submission("recognition", ids, verbs, nouns)
    data["results"] = {n: {t: {k: int(v) for k, v in e[t].items()} for t in e} for n, e in data["results"].items()}
    (tmp_path / "ints.json").write_text(json.dumps(data))
    ints = official_action_ranks(verbs.astype(float), nouns.astype(float))
    assert np.array_equal(read_submission(tmp_path / "ints.json", ids).action_ids, ints)
    assert expected[0, :3].tolist() == [299, 298, 297]  # all zero: verb 0 with nouns 299, 298, ...


def test_score_all_zero_submission_as_the_official_evaluators(cli, real_subset, tmp_path):
    """All-zero scores on segments labelled (verb 0, nouns 200-204): the products tie, and the
    official re-ranking puts nouns 299-295 first, so action top-5 and mean top-5 recall are 0."""
    table = pd.read_csv(real_subset / "val300.csv", dtype=str).head(5)
    table["verb_class"], table["noun_class"] = "0", [str(n) for n in range(200, 205)]
    table.to_csv(real_subset / "tied.csv", index=False)
    segments = load_segments(real_subset / "tied.csv")
    ids, verbs, nouns = segments["narration_id"].tolist(), np.zeros((5, 97)), np.zeros((5, 300))
    actions = segments["verb_class"].to_numpy() * 1000 + segments["noun_class"].to_numpy()
    official = official_action_ranks(verbs, nouns)
    write_submission(make_submission("recognition", ids, verbs, nouns), tmp_path / "rec.json")
    cli("score", tmp_path / "rec.json", "--annotations", real_subset / "tied.csv", "--report", tmp_path / "r.json")
    overall = read_report(tmp_path / "r.json").metrics["overall"]
    assert overall["action_top5"] == official_topk_accuracy(official, actions)[1] == 0.0
    assert overall["action_top1"] == official_topk_accuracy(official, actions)[0] == 0.0
    write_submission(_without_actions(make_submission("anticipation", ids, verbs, nouns)), tmp_path / "ant.json")
    cli("score", tmp_path / "ant.json", "--annotations", real_subset / "tied.csv", "--report", tmp_path / "a.json")
    recall = read_report(tmp_path / "a.json").metrics["overall"]["action_mean_top5_recall"]
    assert recall == official_mean_topk_recall(official, actions) == 0.0


def test_supervision_levels_as_the_official_validator(tmp_path):
    """``sls_*``: what ``validate_supervision_level`` accepts (any number in [0, 5], 5.0 too) is
    read; what it refuses (or fails on: strings, null) is one error."""
    ids = ["P01_11_0"]
    submission = make_submission("recognition", ids, np.zeros((1, 97)), np.zeros((1, 300)))
    path = tmp_path / "sub.json"
    for value in (5.0, 0, 0.0, 2.5, 5, 3, True, 5.5, -1, 6, -0.1, float("nan"), float("inf"), "5", None, [5]):
        content = {**submission, "sls_tl": value}
        try:
            official_validate_supervision_level(content)
            accepted = True
        except (OfficialValidationError, TypeError):
            accepted = False
        path.write_text(json.dumps(content))
        if accepted:
            read_submission(path, ids)
        else:
            with pytest.raises(UserError, match="sls_tl"):
                read_submission(path, ids)
    path.write_text(json.dumps({**submission, "sls_pt": 5.0, "sls_tl": 4.0, "sls_td": 0.0}))
    assert read_submission(path, ids).challenge == "action_recognition"


def test_score_task_must_match_the_challenge(cli, real_subset, tmp_path):
    """The official anticipation evaluator validates with ``supported_challenges='action_anticipation'``
    and so refuses recognition files; ``--task recognition`` refuses anticipation files by the same rule."""
    segments = load_segments(real_subset / "val300.csv")
    ids, verbs, nouns = segments["narration_id"].tolist(), np.zeros((300, 97)), np.zeros((300, 300))
    for task, other in (("anticipation", "recognition"), ("recognition", "anticipation")):
        submission = make_submission(task, ids, verbs, nouns)
        with pytest.raises(OfficialValidationError):
            official_validate_submission_challenge(submission, f"action_{other}")
        official_validate_submission_challenge(submission, f"action_{task}")
        write_submission(submission, tmp_path / f"{task}.json")
        line = cli.fails("score", tmp_path / f"{task}.json", "--annotations", real_subset / "val300.csv",
                         "--task", other)
        assert f"'action_{task}'" in line and f"{other} evaluator" in line
        cli("score", tmp_path / f"{task}.json", "--annotations", real_subset / "val300.csv", "--task", task)
