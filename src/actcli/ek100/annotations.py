"""EPIC-KITCHENS-100 annotation files: load, check columns and types, convert times to seconds.

Files (from github.com/epic-kitchens/epic-kitchens-100-annotations):

* ``EPIC_100_train.csv`` / ``EPIC_100_validation.csv``: one labelled segment per row, the 15
  columns of :data:`SEGMENT_COLUMNS`; times ``HH:MM:SS.ff``, frames 1-indexed at the frames'
  rate (60 fps for ``PXX_YY`` videos, 50 fps for ``PXX_1YY``);
* ``EPIC_100_test_timestamps.csv``: the same without labels (:data:`TIMESTAMP_COLUMNS`);
* ``EPIC_100_verb_classes.csv`` (97 rows) / ``EPIC_100_noun_classes.csv`` (300 rows);
* ``EPIC_100_video_info.csv``: ``video_id, duration, fps, resolution`` of the original videos;
* ``EPIC_100_tail_verbs.csv`` / ``EPIC_100_tail_nouns.csv``: one class id per row;
* ``EPIC_100_unseen_participant_ids_{validation,test}.csv``: one participant per row.

Every loader raises :class:`UserError` with one line naming the file, the row and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from actcli.errors import UserError

NUM_VERBS, NUM_NOUNS = 97, 300
TIMESTAMP_COLUMNS = ("narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp",
                     "stop_timestamp", "start_frame", "stop_frame")
SEGMENT_COLUMNS = (*TIMESTAMP_COLUMNS, "narration", "verb", "verb_class", "noun", "noun_class", "all_nouns",
                   "all_noun_classes")
FILES = {
    "train": "EPIC_100_train.csv",
    "validation": "EPIC_100_validation.csv",
    "test": "EPIC_100_test_timestamps.csv",
    "verbs": "EPIC_100_verb_classes.csv",
    "nouns": "EPIC_100_noun_classes.csv",
    "video_info": "EPIC_100_video_info.csv",
    "tail_verbs": "EPIC_100_tail_verbs.csv",
    "tail_nouns": "EPIC_100_tail_nouns.csv",
    "unseen_validation": "EPIC_100_unseen_participant_ids_validation.csv",
    "unseen_test": "EPIC_100_unseen_participant_ids_test.csv",
}
_TIME = re.compile(r"^(\d+):([0-5]\d):([0-5]\d(?:\.\d+)?)$")
FIX = "re-download it with `actcli download ek100-annotations`"


def timestamp_seconds(text: str) -> float:
    """``"HH:MM:SS.ff"`` -> seconds; raises ValueError on any other shape."""
    match = _TIME.match(str(text).strip())
    if not match:
        raise ValueError(f"not a HH:MM:SS.ff time: {text!r}")
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def frames_fps(video_id: str) -> int:
    """Rate of the released RGB frames: 50 fps for ``PXX_1YY`` (EK100 extension), else 60."""
    return 50 if re.match(r"^P\d+_1\d\d$", video_id) else 60


def _read(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"{path} not found; {FIX} or pass the folder holding it")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a readable CSV ({str(exc).splitlines()[0]}); {FIX}") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(missing)} (has {', '.join(table.columns[:6])}...); {FIX}")
    return table


def _ints(table: pd.DataFrame, column: str, path: Path, low: int, high: int | None = None) -> pd.Series:
    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna() | (values != values.round()) | (values < low) | ((values >= high) if high else False)
    if bad.any():
        row = int(bad.idxmax())
        limit = f" in [{low}, {high})" if high else f" >= {low}"
        raise UserError(f"{path} row {row + 2}: {column} {table[column][row]!r} is not an integer{limit}; {FIX}")
    return values.astype(int)


def _seconds(table: pd.DataFrame, column: str, path: Path) -> pd.Series:
    out = []
    for row, text in enumerate(table[column]):
        try:
            out.append(timestamp_seconds(text))
        except ValueError:
            raise UserError(f"{path} row {row + 2}: {column} {text!r} is not HH:MM:SS.ff; {FIX}") from None
    return pd.Series(out, index=table.index, dtype=float)


def load_segments(path: Path, labelled: bool = True) -> pd.DataFrame:
    """Segments of a train/validation (``labelled``) or test-timestamps file.

    Returns the file's columns (ids as str, frames and classes as int) plus ``start_s`` and
    ``stop_s`` (float seconds), one row per segment in file order.
    """
    table = _read(path, SEGMENT_COLUMNS if labelled else TIMESTAMP_COLUMNS)
    if table["narration_id"].duplicated().any():
        dup = table["narration_id"][table["narration_id"].duplicated()].iloc[0]
        raise UserError(f"{path}: narration_id {dup!r} appears twice; {FIX}")
    table["start_frame"] = _ints(table, "start_frame", path, 0)
    table["stop_frame"] = _ints(table, "stop_frame", path, 0)
    table["start_s"] = _seconds(table, "start_timestamp", path)
    table["stop_s"] = _seconds(table, "stop_timestamp", path)
    backwards = table["stop_s"] < table["start_s"]
    if backwards.any():
        row = int(backwards.idxmax())
        raise UserError(f"{path} row {row + 2}: stop_timestamp is before start_timestamp; {FIX}")
    if labelled:
        table["verb_class"] = _ints(table, "verb_class", path, 0, NUM_VERBS)
        table["noun_class"] = _ints(table, "noun_class", path, 0, NUM_NOUNS)
    return table


def load_class_names(path: Path, expected: int) -> list[str]:
    """The ``key`` column of a verb/noun class file, in id order (ids must be 0..expected-1)."""
    table = _read(path, ("id", "key"))
    ids = _ints(table, "id", path, 0, expected)
    if len(table) != expected or sorted(ids) != list(range(expected)):
        raise UserError(f"{path} has {len(table)} classes with ids not 0..{expected - 1}; expected {expected}; {FIX}")
    return [table["key"][i] for i in ids.sort_values().index]


def load_video_info(path: Path) -> pd.DataFrame:
    """``video_id`` (index) -> ``duration`` (s), ``fps``, ``width``, ``height`` of the original videos."""
    table = _read(path, ("video_id", "duration", "fps", "resolution"))
    for column in ("duration", "fps"):
        values = pd.to_numeric(table[column], errors="coerce")
        if values.isna().any() or (values <= 0).any():
            row = int((values.isna() | (values <= 0)).idxmax())
            raise UserError(f"{path} row {row + 2}: {column} {table[column][row]!r} is not a positive number; {FIX}")
        table[column] = values
    size = table["resolution"].str.extract(r"^(\d+)x(\d+)$")
    if size.isna().any().any():
        row = int(size.isna().any(axis=1).idxmax())
        raise UserError(f"{path} row {row + 2}: resolution {table['resolution'][row]!r} is not WIDTHxHEIGHT; {FIX}")
    table["width"], table["height"] = size[0].astype(int), size[1].astype(int)
    return table.set_index("video_id")


def load_id_set(path: Path, column: str) -> set[str]:
    """The values of one-column files (tail classes, unseen participants)."""
    return set(_read(path, (column,))[column].str.strip())


@dataclass(frozen=True)
class Subsets:
    """Which segments count as tail and unseen: tail verb / noun class ids, unseen participants."""

    tail_verbs: frozenset[int]
    tail_nouns: frozenset[int]
    unseen_participants: frozenset[str]


def load_subsets(folder: Path, split: str = "validation") -> Subsets:
    """Tail classes and the unseen participants of ``split`` (validation or test) from ``folder``."""
    verbs = load_id_set(folder / FILES["tail_verbs"], "verb")
    nouns = load_id_set(folder / FILES["tail_nouns"], "noun")
    unseen = load_id_set(folder / FILES[f"unseen_{split}"], "participant_id")
    for name, ids, high in (("tail_verbs", verbs, NUM_VERBS), ("tail_nouns", nouns, NUM_NOUNS)):
        bad = [i for i in ids if not i.isdigit() or int(i) >= high]
        if bad:
            raise UserError(f"{folder / FILES[name]}: {bad[0]!r} is not a class id below {high}; {FIX}")
    return Subsets(frozenset(int(i) for i in verbs), frozenset(int(i) for i in nouns), frozenset(unseen))
