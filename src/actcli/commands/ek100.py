"""EK100 commands: ``annotate --dataset ek100``, ``test`` on EK100 (submission + scores), ``score``."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from actcli import console as ui
from actcli.data.annotation_set import writing_set
from actcli.data.registry import resolve_root
from actcli.ek100.annotations import FILES, Subsets, load_id_set, load_segments, load_subsets
from actcli.ek100.dataset import HEADS, load_split
from actcli.ek100.metrics import GroundTruth, Rankings, anticipation_metrics, recognition_metrics
from actcli.ek100.splits import TaskSpec, read_task, write_ek100_splits
from actcli.ek100.submission import CHALLENGES, Supervision, make_submission, read_submission, write_submission
from actcli.engine.distributed import is_main, predict_dataset
from actcli.models.checkpoint import clip_of, convention_of
from actcli.pipeline import DataSource, ek100_dataset, inputs_of
from actcli.report import AnnotateMetrics, ScoreMetrics, make_report, write_report
from actcli.runs import run_dir_of
from actcli.settings import Settings


def annotate_ek100(settings: Settings, official: Path | None, spec: TaskSpec, participants: list[str] | None,
                   max_segments: int | None, out: Path | None) -> Path:
    """Write actcli's EK100 split files (see :mod:`actcli.ek100.splits`); returns their folder."""
    official = official or resolve_root(settings.paths.outputs, "ek100-annotations", None)
    folder = out or settings.data.annotations_dir or settings.paths.annotations / "ek100"
    with writing_set(folder):
        counts = write_ek100_splits(official, folder, spec, participants, max_segments, ui.warn)
        _write_ek100_report(official, folder, spec, counts)
    ui.console.print(f"annotations written to {folder}")
    return folder


def _write_ek100_report(official: Path, folder: Path, spec: TaskSpec, counts: dict[str, dict[str, int]]) -> None:
    """Print the EK100 split table and write ``report-annotate.json``."""
    rows = [[name, c["segments"], c["windows_clipped"], c["segments_dropped"]] for name, c in counts.items()]
    ui.console.print(ui.table(f"EK100 {spec.task}" + (f" (tau_a {spec.tau_a:g} s, tau_o {spec.tau_o:g} s, early "
                                                     f"windows: {spec.before_start})" if spec.task == "anticipation"
                                                     else ""),
                              ["split", "segments", "windows clipped", "segments dropped"], rows))
    labelled = {k: v for k, v in counts.items() if k in ("train", "val", "test")}
    metrics = AnnotateMetrics(clips=sum(c["segments"] for c in labelled.values()), classes=97 + 300,
                              groups=0, split_sizes={k: c["segments"] for k, c in labelled.items()}, shared_groups=0)
    write_report(make_report("annotate", torch.device("cpu"), {"official": str(official), **spec.__dict__},
                             metrics, {"folder": folder}), folder / "report-annotate.json")


def _subsets(folder: Path, unseen: Path | None) -> Subsets:
    """Tail classes from ``folder``; unseen participants from ``unseen`` or the validation file there."""
    subsets = load_subsets(folder, "validation")
    if unseen is None:
        return subsets
    return Subsets(subsets.tail_verbs, subsets.tail_nouns, frozenset(load_id_set(unseen, "participant_id")))


def _nan_to_none(group: dict[str, float]) -> dict[str, float | None]:
    return {k: None if math.isnan(v) else v for k, v in group.items()}


def score(predictions: Path, annotations: Path, task: str | None, subsets_dir: Path | None, unseen: Path | None,
          report_file: Path | None) -> Path:
    """Score ``predictions`` (submission JSON) on the labelled segments of ``annotations``; returns the report."""
    truth_table = load_segments(annotations, labelled=True)
    folder = subsets_dir or annotations.parent
    path = report_file or predictions.with_name(f"{predictions.stem}-score-{task or 'auto'}.json")
    return score_table(predictions, truth_table, task, _subsets(folder, unseen), path,
                       {"annotations": str(annotations), "tail_classes": [str(folder / FILES["tail_verbs"]),
                                                                          str(folder / FILES["tail_nouns"])]})


def score_table(predictions: Path, truth_table, task: str | None, subsets: Subsets, path: Path,
                config: dict) -> Path:
    """Score a submission file on ``truth_table`` (narration_id, participant_id, verb_class, noun_class)."""
    ids = truth_table["narration_id"].tolist()
    with ui.console.status(f"reading {predictions}"):
        submitted = read_submission(predictions, ids, CHALLENGES[task] if task else None)
    task = task or next(t for t, c in CHALLENGES.items() if c == submitted.challenge)
    if path.name.endswith("-score-auto.json"):
        path = path.with_name(path.name.replace("-auto.json", f"-{task}.json"))
    truth = GroundTruth(truth_table["verb_class"].to_numpy(), truth_table["noun_class"].to_numpy(),
                        truth_table["participant_id"].to_numpy())
    ranks = Rankings.from_scores(submitted.verb_scores, submitted.noun_scores, submitted.action_ids)
    compute = recognition_metrics if task == "recognition" else anticipation_metrics
    groups = {group: _nan_to_none(values) for group, values in compute(ranks, truth, subsets).items()}
    metrics = ScoreMetrics(task=task, challenge=submitted.challenge, segments=len(ids), **groups)
    config = {"predictions": str(predictions), **config, "unseen_participants": sorted(subsets.unseen_participants)}
    write_report(make_report("score", torch.device("cpu"), config, metrics), path)
    rows = [[name, *(f"{100 * v:.2f}" if v is not None else "-" for v in (groups[g].get(name) for g in groups))]
            for name in groups["overall"]]
    ui.console.print(ui.table(f"EK100 {task}: {len(ids)} segments (x 100)", ["metric", *groups], rows))
    ui.console.print(f"report: {path}")
    return path


def test_ek100(settings: Settings, model: torch.nn.Module, checkpoint: dict, weights: Path, source: DataSource,
               device: torch.device) -> Path:
    """Predict a split, write the challenge submission JSON and, for labelled splits, score it.

    Segments whose media is missing (with ``--skip-missing``) or unreadable get all-zero scores,
    so the submission still names every segment (as the official baselines do).
    """
    split = settings.test.split
    spec = clip_of(checkpoint)
    task = read_task(source.annotations_dir).task
    inputs = inputs_of(settings, checkpoint.get("modalities", ["rgb"]), convention_of(checkpoint))
    dataset = ek100_dataset(settings, source, split, spec, training=False, inputs=inputs)
    with ui.progress() as bars:
        out = predict_dataset(model, dataset, settings.test.batch_size, settings.data.workers, device, bars,
                              f"predicting EK100 {split}")
    if not is_main():
        return Path()  # rank 0 writes the submission
    table = load_split(source.annotations_dir, split)
    scores = torch.zeros(len(table), sum(HEADS))
    position = {n: i for i, n in enumerate(table["narration_id"])}
    for row, logits in zip(out.indices.tolist(), out.logits, strict=True):
        scores[position[dataset.table["narration_id"][row]]] = logits
    for skipped in out.skipped:
        ui.warn(f"unreadable: {skipped} (zero scores)")
    verbs, nouns = scores[:, :HEADS[0]].numpy(), scores[:, HEADS[0]:].numpy()
    folder = run_dir_of(weights) or settings.paths.outputs / "reports"
    submission = folder / f"submission-{task}-{split}.json"
    levels = Supervision(*settings.test.sls)
    write_submission(make_submission(task, table["narration_id"].tolist(), verbs, nouns, levels), submission)
    ui.console.print(f"{task} submission for {len(table)} segments: {submission}")
    if (table["verb_class"] < 0).any():
        return submission  # the challenge split: no labels to score against
    official = resolve_root(settings.paths.outputs, "ek100-annotations", None)
    return score_table(submission, table, task, load_subsets(official), folder / f"report-score-{split}.json",
                       {"weights": str(weights), "split": split, "missing_videos": dataset.missing_videos,
                        "unreadable": len(out.skipped)})
