"""``actcli download`` and ``actcli annotate``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from actcli import console as ui
from actcli.data.annotate import (
    COLUMNS,
    SPLITS,
    clip_split,
    find_class_root,
    group_folds,
    group_split,
    shared_groups,
    with_label_ids,
)
from actcli.data.annotation_set import writing_set
from actcli.data.download import from_local, kaggle_download
from actcli.data.formats import Options, get_format
from actcli.data.registry import dataset_info, remember_root, resolve_root
from actcli.data.segments import TaskSpec, task_rows, write_task
from actcli.data.synthetic import SyntheticSpec, generate, plan
from actcli.data.video import DecodeError, probe
from actcli.errors import UserError
from actcli.fileio import write_json, write_text
from actcli.pipeline import annotations_dir
from actcli.report import AnnotateMetrics, make_report, write_report
from actcli.settings import Settings

MANIFEST = "synthetic.json"


def check_seed(seed: int) -> None:
    """Seeds are 0 to 2^32 - 1 (NumPy's range); else one error line."""
    if not 0 <= seed <= 2**32 - 1:
        raise UserError(f"--seed must be between 0 and 2^32 - 1 (4294967295), got {seed}")


def download_synthetic(settings: Settings, dest: Path | None, spec: SyntheticSpec) -> Path:
    """Generate the synthetic dataset (skipping files already there) and remember its root."""
    check_seed(spec.seed)
    dest = dest or settings.paths.data / "synthetic"
    manifest = dest / MANIFEST
    wanted = {"generator": 1, **asdict(spec)}
    if manifest.is_file() and json.loads(manifest.read_text(encoding="utf-8")) != wanted:
        raise UserError(
            f"{dest} holds a synthetic dataset made with other options; pass another --dest "
            "or delete the folder"
        )
    try:
        total = len(plan(spec))
    except ValueError as exc:
        raise UserError(f"{exc} (--classes)") from None
    with ui.progress() as bars:
        task = bars.add_task("writing videos", total=total)
        generate(dest, spec, lambda n: bars.advance(task, n))
    write_json(manifest, wanted)
    remember_root(settings.paths.outputs, "synthetic", dest)
    ui.console.print(f"{total} videos in {dest} ({spec.classes} classes, {spec.groups} groups)")
    return dest


def download_synthetic_sequences(settings: Settings, dest: Path | None, spec) -> Path:
    """Generate the synthetic anticipation dataset (:mod:`actcli.data.synthetic_sequences`) and remember its root."""
    from actcli.data.synthetic_sequences import GRAMMAR, generate, plan

    check_seed(spec.seed)
    dest = dest or settings.paths.data / "synthetic-sequences"
    try:
        total = len(plan(spec))
        with ui.progress() as bars:
            task = bars.add_task("writing videos", total=total)
            generate(dest, spec, lambda n: bars.advance(task, n))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    remember_root(settings.paths.outputs, "synthetic-sequences", dest)
    grammar = json.loads((dest / GRAMMAR).read_text(encoding="utf-8"))["bayes_optimal_next_action"]
    ui.console.print(f"{total} videos of {spec.actions} actions in {dest} ({spec.groups} groups); the grammar's best "
                     f"possible next-action top-1 {grammar['top1']:.3f}, top-5 {grammar['top5']:.3f} "
                     f"({dest / GRAMMAR})")
    return dest


def download_ek100_annotations(settings: Settings, source: Path | None, dest: Path | None) -> Path:
    """Fetch (or copy with ``--from``) the official EK100 annotation CSVs, check them, remember the folder."""
    from actcli.ek100.download import check_folder, copy_local, fetch

    dest = dest or settings.paths.data / "ek100" / "annotations"
    if source is not None:
        copy_local(source, dest)
    else:
        with ui.console.status("downloading EK100 annotations") as status:
            fetch(dest, lambda name: status.update(f"downloading {name}"))
    rows = check_folder(dest)
    ui.console.print(ui.table("EK100 annotations", ["file", "rows"], [[k, v] for k, v in rows.items()]))
    remember_root(settings.paths.outputs, "ek100-annotations", dest)
    ui.console.print(f"EK100 annotations are in {dest}; later commands find them there")
    return dest


def download_dataset(settings: Settings, name: str, source: Path | None, dest: Path | None) -> Path:
    """Fetch a real dataset with kagglehub, or take a local zip/folder, and remember its root."""
    info = dataset_info(name)
    if source is not None:
        dest = dest or settings.paths.data / name
        with ui.progress() as bars:
            task = bars.add_task("extracting", total=None)
            root = from_local(source, dest, lambda done, total: bars.update(task, completed=done, total=total))
    elif info.kaggle is None:
        raise UserError(
            f"{name} has no automatic download; get it from {info.homepage} and run "
            f"`actcli download {name} --from FILE.zip|DIR`"
        )
    else:
        ui.console.print(f"downloading {info.kaggle} with kagglehub (cached after the first time)")
        root = find_class_root(kaggle_download(info.kaggle))
    remember_root(settings.paths.outputs, name, root)
    ui.console.print(f"{name} is at {root}; later commands find it there")
    return root


def probe_table(table: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Add frames, fps, duration (seconds) and readable columns by opening every video."""
    out = table.copy()
    frames, fps, readable = [], [], []
    with ui.progress() as bars:
        task = bars.add_task("probing videos", total=len(out))
        for rel in out["path"]:
            try:
                info = probe(root / rel)
                frames.append(info.frames)
                fps.append(round(info.fps, 3))
                readable.append(True)
            except DecodeError:
                frames.append(0)
                fps.append(0.0)
                readable.append(False)
            bars.advance(task)
    out["frames"], out["fps"], out["readable"] = frames, fps, readable
    out["duration"] = [round(f / r, 3) if r else 0.0 for f, r in zip(frames, fps, strict=True)]
    return out


def windows_past_end(table: pd.DataFrame) -> pd.Series:
    """Rows of a probed table whose ``start`` (seconds) is at or after their video's ``duration``."""
    if "start" not in table.columns:
        return pd.Series(False, index=table.index)
    return table["readable"] & table["start"].notna() & (table["duration"] > 0) & (table["start"] >= table["duration"])


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    write_text(path, table.to_csv(index=False, lineterminator="\n"))


def write_split_files(folder: Path, table: pd.DataFrame, split: pd.Series, classes: Sequence[str]) -> None:
    """``labels.csv`` and one CSV per split (rows of ``table`` whose split matches; clip times kept)."""
    _write_csv(folder / "labels.csv", pd.DataFrame({"id": range(len(classes)), "name": list(classes)}))
    columns = COLUMNS + [c for c in ("start", "end", "segment_start", "segment_end") if c in table.columns]
    for name in SPLITS:
        _write_csv(folder / f"{name}.csv", table[split == name][columns])


def official_split(table: pd.DataFrame, fractions: Sequence[float], seed: int) -> pd.Series:
    """The ``split`` column of a format's table; without official val clips, a val is carved out of
    train by group in the ratio of the first two ``--split`` shares."""
    split = table["split"].astype(str).copy()
    if (split == "val").any() or fractions[1] == 0 or not (split == "train").any():
        return split
    train = table[split == "train"]
    split.loc[train.index] = group_split(train, (fractions[0], fractions[1], 0), seed)
    return split


def annotate(
    settings: Settings,
    fractions: Sequence[float],
    by: str,
    folds: int | None,
    probe_videos: bool,
    out: Path | None,
    seed: int,
    options: Options | None = None,
    task: TaskSpec | None = None,
) -> Path:
    """Read the dataset in its format (:mod:`actcli.data.formats`) and write annotations.csv,
    labels.csv, the split CSVs and ``task.json``: the official split where the dataset has one, else
    group-aware; ``task`` (:mod:`actcli.data.segments`) decides what of each segment the split files show."""
    check_seed(seed)
    if len(fractions) != 3 or not all(math.isfinite(f) and f >= 0 for f in fractions) or sum(fractions) <= 0:
        raise UserError(f"--split takes three finite non-negative shares with a positive sum, e.g. --split 70 15 15 "
                        f"(got {' '.join(f'{f:g}' for f in fractions)})")
    task = task or TaskSpec()
    task.check()
    info = dataset_info(settings.data.dataset)
    fmt = get_format(info.format)
    if fmt.annotate is not None:  # a format that writes its own split files (EK100)
        return fmt.annotate(settings, options or Options(dataset=info.name), task, out)
    root = resolve_root(settings.paths.outputs, info.name, settings.data.root)
    read = fmt.read(root, options or Options(dataset=info.name))
    for warning in read.warnings:
        ui.warn(warning)
    if read.missing:
        ui.warn(f"{len(read.missing)} listed video(s) missing (first: {read.missing[0]}): left out")
    if read.table.empty:
        raise UserError(f"no listed video found under {root}; check --root")
    if settings.data.root is not None:  # train and test find the videos without --root from now on
        remember_root(settings.paths.outputs, info.name, settings.data.root)
    root = find_class_root(root) if info.class_folders else root
    if info.class_folders:
        hidden = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name.startswith("."))
        if hidden:
            ui.warn(f"{len(hidden)} folder(s) skipped as hidden (names starting with '.', the Unix rule): "
                    f"{', '.join(hidden[:5])}{', ...' if len(hidden) > 5 else ''}; rename one to use it as a class")
    folder = out or annotations_dir(settings)
    table = with_label_ids(read.table, read.classes)
    past_end = 0
    if probe_videos:
        table = probe_table(table, root)
        bad = table[~table["readable"]]
        for rel in bad["path"]:
            ui.warn(f"unreadable video {root / rel}: left out of the splits")
        outside = windows_past_end(table)
        past_end = int(outside.sum())
        if past_end:
            first = table[outside].iloc[0]
            ui.warn(f"{past_end} clip(s) start after the end of their video (first: {first['path']} at "
                    f"{first['start']:g} s, the video lasts {first['duration']:g} s): left out of the splits")
        usable = table[table["readable"] & ~outside]
    else:
        usable = table
    classes = read.classes
    if "split" in usable.columns:
        split = official_split(usable, fractions, seed)
    elif by == "clip":
        ui.warn("--by clip splits clips at random: clips of one group (same actor and scene) "
                "land in train and test, which inflates test accuracy")
        split = clip_split(usable, fractions, seed)
    else:
        split = group_split(usable, fractions, seed)
    full_split = split.reindex(table.index).fillna("excluded")
    fold_splits = group_folds(usable, folds, seed) if folds and "split" not in usable.columns else []
    if fold_splits and task.task != "recognition":
        raise UserError("--folds writes recognition splits; drop --folds for --task anticipation")
    usable, split, task_counts = task_rows(usable, split, task, f"{info.name} ({root})")
    _warn_dropped(task, task_counts)
    with writing_set(folder):
        _write_csv(folder / "annotations.csv", table.drop(columns=["split"], errors="ignore").assign(split=full_split))
        write_split_files(folder, usable, split, classes)
        for k, fold in enumerate(fold_splits, 1):
            with writing_set(folder / "folds" / f"fold{k:02d}"):
                write_split_files(folder / "folds" / f"fold{k:02d}", usable, fold, classes)
        write_task(folder, task, task_counts)
        _write_annotate_report(settings, folder, table, usable, split, classes, read, probe_videos, past_end)
    ui.console.print(f"annotations written to {folder}" + (f" ({folds} folds in {folder / 'folds'})" if folds else ""))
    return folder


def _warn_dropped(task: TaskSpec, counts: dict[str, dict[str, int]]) -> None:
    """Say how many anticipation windows were clipped or dropped (they are also in task.json)."""
    if task.task != "anticipation":
        return
    dropped = {k: c["segments_dropped"] for k, c in counts.items() if c["segments_dropped"]}
    clipped = sum(c["windows_clipped"] for c in counts.values())
    if dropped:
        ui.warn(f"{sum(dropped.values())} segment(s) have no observable window before their video "
                f"(tau_a {task.tau_a:g} s, tau_o {task.tau_o:g} s, --before-start {task.before_start}): left out and "
                f"counted in task.json ({', '.join(f'{k} {v}' for k, v in dropped.items())})")
    if clipped:
        ui.warn(f"{clipped} anticipation window(s) begin before their video: clipped to start at 0 s")


def _write_annotate_report(settings: Settings, folder: Path, table: pd.DataFrame, usable: pd.DataFrame,
                           split: pd.Series, classes: Sequence[str], read, probe_videos: bool, past_end: int) -> None:
    """Print the split summary and write ``report-annotate.json``."""
    metrics = AnnotateMetrics(
        clips=len(table), classes=len(classes), groups=int(usable["group"].nunique()),
        split_sizes={s: int((split == s).sum()) for s in SPLITS},
        shared_groups=shared_groups(usable, split),
        unreadable=int((~table["readable"]).sum()) if probe_videos else None,
        windows_past_end=past_end if probe_videos else None,
        missing=len(read.missing), missing_files=read.missing[:100],
    )
    _print_split_summary(usable, split, metrics)
    report = make_report("annotate", torch.device("cpu"), settings.model_dump(mode="json"), metrics,
                         {"annotations": folder})
    write_report(report, folder / "report-annotate.json")


def _print_split_summary(table: pd.DataFrame, split: pd.Series, metrics: AnnotateMetrics) -> None:
    rows = []
    for name in SPLITS:
        part = table[split == name]
        share = 100.0 * len(part) / max(1, len(table))
        rows.append([name, len(part), f"{share:.1f}%", part["label"].nunique(), part["group"].nunique()])
    ui.console.print(ui.table("splits", ["split", "clips", "share", "classes", "groups"], rows))
    ui.console.print(f"groups shared between splits: {metrics.shared_groups}")


def list_datasets(settings: Settings) -> None:
    """Print the table of :data:`actcli.data.registry.DATASETS` with their formats and local state."""
    from actcli.data.registry import DATASETS, known_root

    rows = []
    for info in DATASETS.values():
        fmt = get_format(info.format)
        layout, splits = fmt.layout, fmt.splits
        root = known_root(settings.paths.outputs, info.name) or settings.paths.data / info.name
        annotated = (settings.paths.annotations / info.name / "labels.csv").is_file()
        state = ("found" if root.exists() else "not found") + (", annotated" if annotated else "")
        rows.append([info.name, layout, info.homepage + (f" (kaggle: {info.kaggle})" if info.kaggle else ""), splits,
                     f"{state}: {root}"])
    ui.console.print(ui.table("datasets", ["dataset", "layout", "get it", "splits", "here"], rows))
    ui.console.print("download with `actcli download <dataset>` (ucf50, synthetic, ek100-annotations) or by hand, "
                     "then `actcli annotate --dataset <dataset> --root DIR`; details in docs/datasets.md")
