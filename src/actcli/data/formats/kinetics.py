"""Kinetics-400/600/700 from the official CSV annotations, mapped to the files downloaders save.

The CSVs (columns ``label,youtube_id,time_start,time_end,split``) come under the names of each
release: ``train.csv`` / ``validate.csv`` (the DeepMind and CVDF archives), ``kinetics-400_train.csv``
/ ``kinetics-400_val.csv`` (and 600/700, as the ActivityNet crawler and most mirrors have them),
``kinetics_train.csv`` / ``kinetics_val.csv`` (the 2017 Kinetics-400 release); the videos are trimmed clips named
``<youtube_id>_<time_start:06d>_<time_end:06d>.mp4`` (any video extension), in class folders
or flat, as the common downloaders save them. Kinetics always has videos missing (deleted from
YouTube): they are counted and listed, not fatal. Splits: ``train`` is train (a val carved from
it by YouTube video), ``validate`` is test (its test labels are not public).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from actcli.data.annotate import VIDEO_EXTENSIONS
from actcli.data.formats import Annotated, Format, Options, find_list
from actcli.errors import UserError

COLUMNS = ("label", "youtube_id", "time_start", "time_end")
TRAIN_NAMES = ("train.csv", "kinetics-{v}_train.csv", "kinetics{v}_train.csv", "kinetics_train.csv")
TEST_NAMES = ("validate.csv", "val.csv", "validation.csv", "kinetics-{v}_val.csv", "kinetics-{v}_validate.csv",
              "kinetics{v}_val.csv", "kinetics_val.csv")


def split_file_names(names: tuple[str, ...], dataset: str) -> tuple[str, ...]:
    """The file names to look for, for ``kinetics400``/``600``/``700`` (``{v}`` filled in)."""
    version = dataset.removeprefix("kinetics") or "400"
    return tuple(dict.fromkeys(n.format(v=version) for n in names))


def clip_stem(youtube_id: str, start: float, end: float) -> str:
    """The downloaders' file name without extension: ``<id>_<start:06d>_<end:06d>``."""
    return f"{youtube_id}_{int(start):06d}_{int(end):06d}"


def load_csv(path: Path) -> pd.DataFrame:
    """An official Kinetics CSV, columns and types checked."""
    from actcli.data.annotate import check_fields

    check_fields(path)
    table = pd.read_csv(path, dtype={"label": str, "youtube_id": str}, index_col=False, encoding="utf-8-sig")
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{path} lacks column(s) {', '.join(missing)}; expected label,youtube_id,time_start,time_end")
    for column in ("time_start", "time_end"):
        bad = pd.to_numeric(table[column], errors="coerce").isna()
        if bad.any():
            line = int(bad.values.argmax()) + 2
            raise UserError(f"{path} line {line}: {column} is not a number ({table[column].iloc[line - 2]!r})")
    return table


def index_videos(root: Path) -> dict[str, str]:
    """File stem -> path relative to ``root`` for every video under it (class folders or flat)."""
    return {p.stem: p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.suffix.lower() in VIDEO_EXTENSIONS and not p.name.startswith(".")}


def read(root: Path, options: Options) -> Annotated:
    found = index_videos(root)
    rows, missing, labels = [], [], set()
    files = {"train": split_file_names(TRAIN_NAMES, options.dataset),
             "test": split_file_names(TEST_NAMES, options.dataset)}
    first = find_list(root, options, files["train"], "Kinetics' train.csv")
    for split, names in files.items():
        path = next((first.parent / n for n in names if (first.parent / n).is_file()), None)
        if path is None:
            raise UserError(f"none of {', '.join(names)} in {first.parent}; pass the folder of the official CSVs "
                            "with --official")
        for row in load_csv(path).itertuples(index=False):
            stem = clip_stem(row.youtube_id, row.time_start, row.time_end)
            labels.add(row.label)
            if stem not in found:
                missing.append(stem)
                continue
            rows.append({"path": found[stem], "label": row.label, "group": row.youtube_id, "split": split})
    return Annotated(pd.DataFrame(rows, columns=["path", "label", "group", "split"]), sorted(labels), missing)


FORMAT = Format(
    "kinetics", "<root>/[<label>/]<youtube_id>_<start:06d>_<end:06d>.mp4 + train.csv, validate.csv",
    "https://github.com/cvdfoundation/kinetics-dataset (CSVs and videos)",
    "train (val carved by YouTube id), validate as test; missing videos counted", read)
