"""actcli's EK100 split files, written by ``actcli annotate --dataset ek100`` from the official CSVs.

``annotations/ek100/`` receives:

* ``train.csv`` (official train file), ``val.csv`` and ``test.csv`` (both the official
  validation file: labelled, so ``actcli test`` can score locally), ``challenge.csv`` (the
  official test timestamps, unlabelled, for leaderboard submissions). Columns: the official
  ids, ``start_s``/``stop_s`` = the seconds a model may see (the segment for recognition, the
  observed window for anticipation), ``verb_class``, ``noun_class`` (-1 when unlabelled);
* ``labels.csv``: the 97 verbs then the 300 nouns as ``verb:<key>`` / ``noun:<key>``, the
  output order of an EK100 model (two heads, one after the other);
* ``task.json``: the task, ``tau_a``, ``tau_o`` and what happened to early windows.

Without ``EPIC_100_train.csv`` (e.g. only the validation file at hand) the validation
segments are split by participant into train/val/test instead, with a warning.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from actcli.data.segments import TaskSpec  # noqa: F401 (the task of every dataset; re-exported)
from actcli.ek100.annotations import FILES, NUM_NOUNS, NUM_VERBS, load_class_names, load_segments
from actcli.ek100.windows import observed_windows
from actcli.errors import UserError
from actcli.fileio import write_text

SPLIT_COLUMNS = ["narration_id", "participant_id", "video_id", "start_s", "stop_s", "verb_class", "noun_class",
                 "segment_start_s", "segment_stop_s", "observable"]
TASKS = ("recognition", "anticipation")


def ek100_class_names(official: Path) -> list[str]:
    """``verb:<key>`` x 97 then ``noun:<key>`` x 300."""
    verbs = load_class_names(official / FILES["verbs"], NUM_VERBS)
    nouns = load_class_names(official / FILES["nouns"], NUM_NOUNS)
    return [f"verb:{v}" for v in verbs] + [f"noun:{n}" for n in nouns]


def _select(table: pd.DataFrame, participants: list[str] | None, max_segments: int | None) -> pd.DataFrame:
    if participants:
        table = table[table["participant_id"].isin(participants)]
    return table.groupby("participant_id", sort=False).head(max_segments) if max_segments else table


def _windows(table: pd.DataFrame, spec: TaskSpec) -> tuple[pd.DataFrame, int, int]:
    table = table.assign(segment_start_s=table["start_s"], segment_stop_s=table["stop_s"], observable=True)
    if spec.task == "recognition":
        return table, 0, 0
    kept, clipped, dropped = observed_windows(table, spec.tau_a, spec.tau_o, spec.before_start)
    return kept.assign(start_s=kept["obs_start_s"], stop_s=kept["obs_stop_s"]), clipped, dropped


def held_out_val(train: pd.DataFrame, warn) -> dict[str, pd.DataFrame]:
    """``train`` and ``val`` from the official train segments: every 10th video (sorted ids) is held out
    for choosing checkpoints, so the official validation file stays an untouched test split. With a
    single video there is nothing to hold out: val is then that video too, with a warning."""
    videos = sorted(train["video_id"].unique())
    if len(videos) < 2:
        warn(f"the selected train segments come from one video ({videos[0] if videos else 'none'}): val repeats "
             "train; select more (--participants, --max-segments) for a held-out val")
        return {"train": train, "val": train}
    held = set(videos[::10])
    return {"train": train[~train["video_id"].isin(held)], "val": train[train["video_id"].isin(held)]}


def write_ek100_splits(official: Path, folder: Path, spec: TaskSpec, participants: list[str] | None = None,
                       max_segments: int | None = None, warn=print) -> dict[str, dict[str, int]]:
    """Write the split files (module docstring); per split: segments, windows clipped, segments dropped."""
    if spec.task not in TASKS:
        raise UserError(f"--task must be one of {', '.join(TASKS)}")
    if spec.tau_a < 0 or spec.tau_o <= 0:
        raise UserError("--tau-a must be >= 0 and --tau-o > 0 (seconds)")
    validation = _select(load_segments(official / FILES["validation"]), participants, max_segments)
    if (official / FILES["train"]).is_file():
        train = _select(load_segments(official / FILES["train"]), participants, max_segments)
        splits = {**held_out_val(train, warn), "test": validation}
    else:
        warn(f"{official / FILES['train']} not found: splitting the validation segments by participant "
             "into train/val/test (for small runs; no participant is in two splits)")
        people = sorted(validation["participant_id"].unique())
        if len(people) < 3:
            raise UserError(f"only {len(people)} participant(s) selected; the validation-only split needs 3 "
                            "(add some with --participants)")
        val_people, test_people = {people[-2]}, {people[-1]}
        splits = {"train": validation[~validation["participant_id"].isin(val_people | test_people)],
                  "val": validation[validation["participant_id"].isin(val_people)],
                  "test": validation[validation["participant_id"].isin(test_people)]}
    if (official / FILES["test"]).is_file():
        challenge = load_segments(official / FILES["test"], labelled=False).assign(verb_class=-1, noun_class=-1)
        splits["challenge"] = _select(challenge, participants, max_segments)
    counts: dict[str, dict[str, int]] = {}
    for name, table in splits.items():
        rows, clipped, dropped = _windows(table, spec)
        if not rows["observable"].any():
            raise UserError(f"no {name} segment left (participants {participants}, --max-segments {max_segments})")
        write_text(folder / f"{name}.csv", rows[SPLIT_COLUMNS].to_csv(index=False, lineterminator="\n"))
        counts[name] = {"segments": len(rows), "windows_clipped": clipped, "segments_dropped": dropped}
    names = ek100_class_names(official)
    write_text(folder / "labels.csv", pd.DataFrame({"id": range(len(names)), "name": names}).to_csv(
        index=False, lineterminator="\n"))
    write_text(folder / "task.json", json.dumps({**asdict(spec), "splits": counts}, indent=2) + "\n")
    return counts


def read_task(folder: Path) -> TaskSpec:
    """The ``task.json`` next to the split files."""
    path = folder / "task.json"
    if not path.is_file():
        raise UserError(f"{path} not found; run `actcli annotate --dataset ek100` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        return TaskSpec(data["task"], float(data["tau_a"]), float(data["tau_o"]), data["before_start"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is malformed ({exc}); re-run `actcli annotate --dataset ek100`") from None
