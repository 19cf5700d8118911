"""Scan a folder-per-class dataset and write group-aware, class-stratified splits.

An annotation table has one row per clip with the columns of :data:`COLUMNS`:
``path`` (POSIX, relative to the dataset root), ``label`` (class name), ``label_id``
(index in the sorted class list, so ids are the same on every machine) and ``group``.

UCF-style names carry the group: ``v_<Class>_g07_c03.avi`` is group ``g07``. The group is
the unit of splitting: all clips of ``g07`` (every class) land in the same split, so no
actor or scene is seen in training and again in testing. The prototype split clips at
random; 99% of its UCF50 test clips had a training clip from the same group.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from actcli.errors import UserError

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv",
                    ".ts", ".mts", ".m2ts")  # what FFmpeg (PyAV, torchcodec) reads
COLUMNS = ["path", "label", "label_id", "group"]
SPLITS = ("train", "val", "test")
_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)


def group_of(file_name: str) -> str | None:
    """The UCF group of a clip name (``v_X_g07_c03.avi`` -> ``g07``), or None."""
    match = _GROUP.search(file_name)
    return f"g{int(match.group(1)):02d}" if match else None


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def find_class_root(root: Path) -> Path:
    """The folder whose sub-folders are the classes.

    Archives often wrap the dataset in one extra folder (``UCF50/BaseballPitch/...``);
    single wrapper folders are descended into.
    """
    if not root.is_dir():
        raise UserError(f"dataset root {root} not found; run `actcli download` or pass --root DIR")
    current = root
    for _ in range(3):
        subdirs = [d for d in current.iterdir() if d.is_dir() and not d.name.startswith(".")]
        if any(_is_video(f) for d in subdirs for f in d.iterdir()):
            return current
        if len(subdirs) != 1:
            break
        current = subdirs[0]
    raise UserError(
        f"no class folders with videos under {root}; expected {root}/<Class>/<clip>.avi"
    )


def scan_folder_tree(root: Path) -> pd.DataFrame:
    """One row per video in ``root/<Class>/``, with path, label, label_id and group.

    Paths are relative to the folder holding the class folders (see :func:`find_class_root`).
    Only names are read (fast). Clips without a UCF group get their own file name as group.

    Raises:
        UserError: missing root, no class folders, or a class folder without videos.
    """
    class_root = find_class_root(root)
    rows = []
    for class_dir in sorted(d for d in class_root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        videos = sorted(f for f in class_dir.iterdir() if _is_video(f))
        if not videos:
            raise UserError(
                f"class folder {class_dir} has no videos ({', '.join(VIDEO_EXTENSIONS)}); "
                "add videos or remove the folder"
            )
        for video in videos:
            rows.append(
                {
                    "path": video.relative_to(class_root).as_posix(),
                    "label": class_dir.name,
                    "group": group_of(video.name) or video.stem,
                }
            )
    table = pd.DataFrame(rows, columns=["path", "label", "group"])
    return with_label_ids(table, sorted(table["label"].unique()))


def with_label_ids(table: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """Add ``label_id`` = index of ``label`` in ``classes``; column order :data:`COLUMNS` first."""
    index = {name: i for i, name in enumerate(classes)}
    out = table.copy()
    out["label_id"] = out["label"].map(index).astype(int)
    rest = [c for c in out.columns if c not in COLUMNS]
    return out[COLUMNS + rest]


def _split_score(sizes: pd.DataFrame, assignment: np.ndarray, fractions: np.ndarray) -> float:
    """How far an assignment of groups to splits is from the target fractions.

    ``sizes`` is groups x classes clip counts. Score = worst overall deviation + mean per-class
    deviation + a large penalty for each (class, split) left empty.
    """
    per_split = np.stack([sizes.values[assignment == s].sum(axis=0) for s in range(len(fractions))])
    class_totals = per_split.sum(axis=0)
    overall = per_split.sum(axis=1) / per_split.sum()
    class_fracs = per_split / np.maximum(class_totals, 1)
    empty = ((per_split == 0) & (fractions[:, None] > 0) & (class_totals > 0)).sum()
    return (
        np.abs(overall - fractions).max()
        + np.abs(class_fracs - fractions[:, None]).mean()
        + 10.0 * empty
    )


def group_split(
    table: pd.DataFrame, fractions: Sequence[float], seed: int = 0, tries: int = 300
) -> pd.Series:
    """Assign each clip to train/val/test so that no group is in two splits.

    Each split first gets one group; the rest are dealt greedily (each to the split furthest
    below its target). Of ``tries`` seeded random orders, the one whose result is closest
    to ``fractions`` overall and per class wins. Deterministic for a given seed.

    Args:
        table: annotation rows with ``label`` and ``group``.
        fractions: target share of clips per split, e.g. ``(0.7, 0.15, 0.15)``.
    Returns:
        The split name of each row (index aligned with ``table``).
    """
    target = np.asarray(fractions, dtype=float) / float(sum(fractions))
    sizes = table.groupby(["group", "label"]).size().unstack(fill_value=0)
    totals = sizes.sum(axis=1).values
    rng = np.random.default_rng(seed)
    seeds = np.flatnonzero(target > 0) if len(sizes) >= (target > 0).sum() else np.array([], int)
    best, best_score = None, np.inf
    for _ in range(tries):
        order = rng.permutation(len(sizes))
        counts = np.zeros(len(target))
        assignment = np.empty(len(sizes), dtype=int)
        for rank, g in enumerate(order):
            # Seed every split with one group first, so small datasets get a test split too.
            split = int(seeds[rank]) if rank < len(seeds) else int(np.argmax(target * totals.sum() - counts))
            assignment[g] = split
            counts[split] += totals[g]
        score = _split_score(sizes, assignment, target)
        if score < best_score:
            best, best_score = assignment.copy(), score
    by_group = dict(zip(sizes.index, (SPLITS[s] for s in best), strict=True))
    return table["group"].map(by_group)


def clip_split(table: pd.DataFrame, fractions: Sequence[float], seed: int = 0) -> pd.Series:
    """The prototype's split: clips shuffled within each class, groups ignored (leaky)."""
    target = np.cumsum(np.asarray(fractions, dtype=float) / float(sum(fractions)))
    rng = np.random.default_rng(seed)
    split = pd.Series(index=table.index, dtype=object)
    for _, rows in table.groupby("label"):
        shuffled = rows.index.values[rng.permutation(len(rows))]
        cuts = np.round(target * len(rows)).astype(int)
        for name, lo, hi in zip(SPLITS, np.r_[0, cuts[:-1]], cuts, strict=True):
            split.loc[shuffled[lo:hi]] = name
    return split


def group_folds(table: pd.DataFrame, folds: int) -> list[pd.Series]:
    """Group k-fold: fold k tests on every ``folds``-th group, validates on the next fold.

    With as many folds as groups (``--folds 25`` on UCF50) this is UCF's
    leave-one-group-out protocol.
    """
    groups = sorted(table["group"].unique())
    if not 2 <= folds <= len(groups):
        raise UserError(f"--folds must be between 2 and the number of groups ({len(groups)})")
    fold_of = {g: i % folds for i, g in enumerate(groups)}
    result = []
    for k in range(folds):
        def name(group: str, k: int = k) -> str:
            fold = fold_of[group]
            return "test" if fold == k else "val" if fold == (k + 1) % folds else "train"

        result.append(table["group"].map(name))
    return result


def shared_groups(table: pd.DataFrame, split: pd.Series) -> int:
    """Number of groups that appear in more than one split (0 for a leak-free split)."""
    return int((table.assign(split=split).groupby("group")["split"].nunique() > 1).sum())


def check_fields(path: Path) -> None:
    """Every row of the CSV at ``path`` has as many fields as its header; else a UserError naming the line.

    (pandas would silently take an extra first field as the row's index.)
    """
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            for row in reader:
                if row and len(row) != len(header):
                    raise UserError(f"annotation file {path} line {reader.line_num}: {len(row)} field(s) where the "
                                    f"header has {len(header)} ({','.join(header)}); fix or re-create the file")
    except UnicodeDecodeError as exc:
        raise UserError(f"annotation file {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise UserError(f"annotation file {path} is not a valid CSV: {exc}") from None


def load_table(path: Path, required: Sequence[str] = ("path", "label")) -> pd.DataFrame:
    """Read an annotation CSV, checking its columns; errors name the file and the fix."""
    if not path.is_file():
        raise UserError(f"annotation file {path} not found; run `actcli annotate` first")
    check_fields(path)
    try:
        table = pd.read_csv(path, dtype={"path": str, "label": str, "group": str}, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"annotation file {path} is not a valid CSV: {exc}") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise UserError(
            f"annotation file {path} lacks column(s) {', '.join(missing)}; "
            f"expected {', '.join(required)} (re-run `actcli annotate`)"
        )
    if table.empty:
        raise UserError(f"annotation file {path} has no rows; re-run `actcli annotate`")
    blank = table[list(required)].isna().any(axis=1)
    if blank.any():
        line = int(np.flatnonzero(blank.values)[0]) + 2  # header is line 1
        raise UserError(f"annotation file {path} line {line}: empty {', '.join(required)} field")
    return table


def load_classes(path: Path) -> list[str]:
    """Class names in id order from ``labels.csv`` (columns ``id,name``)."""
    table = load_table(path, required=("id", "name"))
    if sorted(table["id"].tolist()) != list(range(len(table))):
        raise UserError(f"{path}: ids must be 0..{len(table) - 1}, each once")
    names = table.sort_values("id")["name"].astype(str).tolist()
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"{path}: duplicate class name {duplicates[0]!r}")
    return names
