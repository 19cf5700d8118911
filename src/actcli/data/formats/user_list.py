"""Your own clips, listed in a CSV or JSON-lines file.

Columns (CSV header, or keys of each JSON object): ``path`` and ``label`` required; ``start`` and
``end`` (seconds within the file, for several clips cut from one long video), ``group`` (clips
that must stay in one split, e.g. the same person or scene; default: the file, so clips of one
video never straddle splits) and ``split`` (``train``/``val``/``test``; default: actcli's
group-aware split) optional. Relative paths are resolved against ``--root``. Pass the list with
``--list FILE``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from actcli.data.formats import Annotated, Format, Options
from actcli.errors import UserError
from actcli.fileio import read_text

OPTIONAL = ("start", "end", "group", "split")


def _read_jsonl(path: Path) -> pd.DataFrame:
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} line {number}: not JSON ({exc.msg})") from None
        if not isinstance(entry, dict):
            raise UserError(f"{path} line {number}: expected an object with path and label")
        rows.append({**entry, "_line": number})
    return pd.DataFrame(rows)


def _read_csv(path: Path) -> pd.DataFrame:
    from actcli.data.annotate import check_fields

    check_fields(path)
    table = pd.read_csv(path, dtype={"path": str, "label": str, "group": str, "split": str}, index_col=False,
                        encoding="utf-8-sig")
    return table.assign(_line=range(2, len(table) + 2))


def check_inside(root: Path, table: pd.DataFrame, listing: Path) -> None:
    """Every listed path is relative and stays inside ``root`` once resolved (``..`` and symbolic links
    followed); else one line naming the first that does not, and ``--allow-outside-root``."""
    inside = root.resolve()
    for line, rel in zip(table["_line"], table["path"], strict=True):
        where = Path(rel)
        if where.is_absolute():
            raise UserError(f"{listing} line {line}: {rel} is an absolute path; list paths relative to --root "
                            "(or pass --allow-outside-root)")
        if not (root / where).resolve().is_relative_to(inside):
            raise UserError(f"{listing} line {line}: {rel} leads outside --root {root}; list files inside it "
                            "(or pass --allow-outside-root)")


def read(root: Path, options: Options) -> Annotated:
    path = options.lists
    if path is None or not path.is_file():
        raise UserError("--dataset list needs --list FILE: a CSV or JSON-lines file with path,label "
                        "(and optional start,end,group,split)")
    table = _read_jsonl(path) if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else _read_csv(path)
    for column in ("path", "label"):
        if column not in table.columns or table[column].isna().any():
            line = int(table["_line"][table[column].isna()].iloc[0]) if column in table.columns else 1
            raise UserError(f"{path} line {line}: no {column} (required columns: path, label)")
    table["path"], table["label"] = table["path"].astype(str), table["label"].astype(str)
    for column in ("start", "end"):
        if column in table.columns:
            values = pd.to_numeric(table[column], errors="coerce")
            bad = table[column].notna() & values.isna()
            if bad.any():
                raise UserError(f"{path} line {int(table['_line'][bad].iloc[0])}: {column} must be seconds")
            table[column] = values
    if "start" in table.columns and "end" in table.columns:
        bad = table["end"].notna() & table["start"].notna() & (table["end"] <= table["start"])
        if bad.any():
            raise UserError(f"{path} line {int(table['_line'][bad].iloc[0])}: end must be after start")
    if "split" in table.columns:
        bad = ~table["split"].isin(["train", "val", "test"])
        if bad.any():
            raise UserError(f"{path} line {int(table['_line'][bad].iloc[0])}: split must be train, val or test")
    if not options.allow_outside_root:
        check_inside(root, table, path)
    absent = [(line, p) for line, p in zip(table["_line"], table["path"], strict=True) if not (root / p).is_file()]
    if absent:
        raise UserError(f"{path} line {absent[0][0]}: {root / absent[0][1]} not found ({len(absent)} listed file(s) "
                        "missing); paths are relative to --root")
    groups = table["group"] if "group" in table.columns else table["path"]
    table["group"] = groups.where(groups.notna(), table["path"]).astype(str)  # no group: the file is one
    keep = ["path", "label", "group", *[c for c in ("start", "end", "split") if c in table.columns]]
    return Annotated(table[keep].reset_index(drop=True), sorted(table["label"].unique()))


FORMAT = Format(
    "list", "a CSV or JSON-lines file: path,label[,start,end,group,split], paths relative to --root",
    "your own clips (annotate --dataset list --list FILE --root FOLDER)",
    "the file's split column, else group-aware --split", read)
