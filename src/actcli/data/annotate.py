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
from dataclasses import dataclass
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


def _split_score(per_split: np.ndarray, fractions: np.ndarray) -> float:
    """How far ``per_split`` (splits x classes clip counts) is from the target fractions.

    Score = worst overall deviation + mean per-class deviation + a large penalty for each
    (class, split) left empty.
    """
    class_totals = per_split.sum(axis=0)
    overall = per_split.sum(axis=1) / max(1, per_split.sum())
    class_fracs = per_split / np.maximum(class_totals, 1)
    empty = ((per_split == 0) & (fractions[:, None] > 0) & (class_totals > 0)).sum()
    return (
        np.abs(overall - fractions).max()
        + np.abs(class_fracs - fractions[:, None]).mean()
        + 10.0 * empty
    )


@dataclass(frozen=True)
class GroupTable:
    """A table's groups as sparse class counts: group ``g`` holds ``counts[ptr[g]:ptr[g+1]]`` clips of
    classes ``classes[ptr[g]:ptr[g+1]]``. Memory is proportional to the (group, class) pairs, not
    groups x classes."""

    names: np.ndarray  # group names, [G]
    ptr: np.ndarray  # [G + 1]
    classes: np.ndarray  # class codes, [pairs]
    counts: np.ndarray  # clips, [pairs]
    sizes: np.ndarray  # clips per group, [G]
    num_classes: int

    @classmethod
    def of(cls, table: pd.DataFrame) -> GroupTable:
        group_codes, names = pd.factorize(table["group"], sort=True)
        class_codes, labels = pd.factorize(table["label"], sort=True)
        pairs = pd.DataFrame({"g": group_codes, "c": class_codes}).value_counts().sort_index()
        g = pairs.index.get_level_values("g").to_numpy()
        ptr = np.searchsorted(g, np.arange(len(names) + 1))
        sizes = np.bincount(group_codes, minlength=len(names))
        return cls(np.asarray(names), ptr, pairs.index.get_level_values("c").to_numpy(), pairs.to_numpy(), sizes,
                   len(labels))


def _deal_groups(groups: GroupTable, target: np.ndarray, order: np.ndarray, jitter: np.ndarray) -> np.ndarray:
    """Assign groups, in ``order``, each to the split it brings closest to its targets; returns ``[G]`` split ids.

    The split chosen for group ``g`` minimises the increase of the squared per-class error
    ``sum_c (count[s, c] + n_gc - target[s, c])^2`` (which, for a one-clip group, picks the split its
    class lacks most), with the overall split sizes as a tie-breaker and ``jitter`` deciding exact
    ties. Splits with a zero target never get a group. Cost: one step per (group, class) pair.
    """
    class_totals = np.bincount(groups.classes, weights=groups.counts, minlength=groups.num_classes)
    wanted = target[:, None] * class_totals[None, :]  # [S, K]
    have = np.zeros_like(wanted)
    overall_wanted, overall_have = target * groups.sizes.sum(), np.zeros(len(target))
    closed = np.where(target > 0, 0.0, np.inf)
    assignment = np.empty(len(groups.sizes), dtype=int)
    ptr, classes, counts, sizes = groups.ptr, groups.classes, groups.counts, groups.sizes
    # Seed every open split with one group first, so small datasets get a val and a test split too.
    open_splits = np.flatnonzero(target > 0)
    seeds = open_splits if len(order) >= len(open_splits) else open_splits[:0]
    for rank, g in enumerate(order):
        lo, hi = ptr[g], ptr[g + 1]
        cls, n = classes[lo:hi], counts[lo:hi]
        if rank < len(seeds):
            split = int(seeds[rank])
        else:
            deficit = wanted[:, cls] - have[:, cls]  # [S, k]
            cost = (n * (n - 2 * deficit)).sum(axis=1)
            cost = cost + 1e-3 * sizes[g] * (sizes[g] - 2 * (overall_wanted - overall_have)) / max(1, len(cls))
            split = int(np.argmin(cost + jitter[g] + closed))
        assignment[g] = split
        have[split, cls] += n
        overall_have[split] += sizes[g]
    return assignment


def group_split(
    table: pd.DataFrame, fractions: Sequence[float], seed: int = 0, tries: int | None = None
) -> pd.Series:
    """Assign each clip to train/val/test so that no group is in two splits, stratified by class.

    Groups are dealt largest first (random order among equal sizes), each to the split whose
    per-class counts it brings closest to the targets (:func:`_deal_groups`). When every group is
    one clip (class folders without UCF names, user lists, the val carved from Kinetics or SSv2),
    every class lands within one clip of its share in every split. With real groups (UCF's
    ``gNN``: every class in every group) the best of ``tries`` seeded orders by overall and
    per-class deviation wins (default: 300 orders up to 1,000 groups, 1 beyond, so time and memory
    grow linearly with the rows: Kinetics-400's 246k clips split in seconds). Deterministic for
    a given seed.

    Args:
        table: annotation rows with ``label`` and ``group``.
        fractions: target share of clips per split, e.g. ``(0.7, 0.15, 0.15)``.
    Returns:
        The split name of each row (index aligned with ``table``).
    """
    target = np.asarray(fractions, dtype=float) / float(sum(fractions))
    groups = GroupTable.of(table)
    count = len(groups.sizes)
    if tries is None:
        tries = 300 if count <= 1000 else 1
    rng = np.random.default_rng(seed)
    best, best_score = None, np.inf
    for _ in range(max(1, tries)):
        shuffled = rng.permutation(count)
        order = shuffled[np.argsort(-groups.sizes[shuffled], kind="stable")]  # largest first, ties at random
        assignment = _deal_groups(groups, target, order, rng.random((count, len(target))) * 1e-6)
        if tries == 1:
            best = assignment
            break
        per_split = np.zeros((len(target), groups.num_classes))
        np.add.at(per_split, (np.repeat(assignment, np.diff(groups.ptr)), groups.classes), groups.counts)
        score = _split_score(per_split, target)
        if score < best_score:
            best, best_score = assignment, score
    names = np.asarray(SPLITS)[best]
    by_group = pd.Series(names, index=groups.names)
    return pd.Series(by_group.reindex(table["group"]).to_numpy(), index=table.index)


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


def group_folds(table: pd.DataFrame, folds: int, seed: int = 0) -> list[pd.Series]:
    """Group k-fold: the groups are dealt into ``folds`` folds of about equal size, stratified by class
    (:func:`_deal_groups` with equal shares, every fold seeded with one group); fold ``k`` tests on
    the groups of fold ``k`` and trains on all the others. There is no validation split (val.csv is
    empty): training keeps the last epoch as best.

    With as many folds as groups (``--folds 25`` on UCF50) each fold holds one group: UCF's
    leave-one-group-out protocol, training on 24 groups and testing on the 25th.

    Returns:
        For each fold, the split (``train``/``test``) of every row, index aligned with ``table``.
    """
    groups = GroupTable.of(table)
    count = len(groups.sizes)
    if not 2 <= folds <= count:
        raise UserError(f"--folds must be between 2 and the number of groups ({count})")
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(count)
    order = shuffled[np.argsort(-groups.sizes[shuffled], kind="stable")]
    fold_of = _deal_groups(groups, np.full(folds, 1.0 / folds), order, rng.random((count, folds)) * 1e-6)
    group_fold = pd.Series(fold_of, index=groups.names).reindex(table["group"]).to_numpy()
    return [pd.Series(np.where(group_fold == k, "test", "train"), index=table.index) for k in range(folds)]


def shared_groups(table: pd.DataFrame, split: pd.Series) -> int:
    """Number of groups that appear in more than one split (0 for a leak-free split)."""
    return int((table.assign(split=split).groupby("group")["split"].nunique() > 1).sum())


def check_fields(path: Path) -> None:
    """Every row of the CSV at ``path`` has as many fields as its header; else a UserError naming the line.

    (pandas would silently take an extra first field as the row's index.)
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
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


def load_table(path: Path, required: Sequence[str] = ("path", "label"), allow_empty: bool = False) -> pd.DataFrame:
    """Read an annotation CSV, checking its columns; errors name the file and the fix. A file with a
    header and no rows is an error unless ``allow_empty`` (a fold's val.csv)."""
    if not path.is_file():
        raise UserError(f"annotation file {path} not found; run `actcli annotate` first")
    check_fields(path)
    try:
        table = pd.read_csv(path, dtype={"path": str, "label": str, "group": str}, index_col=False,
                            encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"annotation file {path} is not a valid CSV: {exc}") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise UserError(
            f"annotation file {path} lacks column(s) {', '.join(missing)}; "
            f"expected {', '.join(required)} (re-run `actcli annotate`)"
        )
    if table.empty and not allow_empty:
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
