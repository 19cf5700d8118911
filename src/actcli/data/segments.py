"""One table of timestamped actions for every dataset, and the tasks as views over it.

A **segment** is one action: a video (``path`` relative to the root, or EK100's video id), its
``start`` and ``end`` in seconds, its label (a class name; EK100: verb and noun ids), its
``group`` (participant, scene, source video: never in two splits). EPIC-KITCHENS-100, EGTEA
Gaze+ (its ``action_annotation`` split files), the synthetic sequences and a user's own
CSV/JSON-lines list with ``start``/``end`` columns all produce such rows; a class folder is one
row per file with the whole video as its segment (no times).

A **task** decides what a model may see of a segment and what it predicts (:class:`TaskSpec`):

* ``recognition``: the segment itself, its label;
* ``anticipation``: the observed window ``[start - tau_a - tau_o, start - tau_a)`` before the
  action, its label. No frame or feature at or after ``start - tau_a`` is read. A window that
  begins before the video is clipped to start at 0 s (``before_start="clip"``) or its segment
  dropped (``"drop"``); a window that ends at or before 0 s is always dropped. Dropped segments
  are counted per split in ``task.json`` and in every report, never silently left out.

Split files of a timed task keep the window in ``start``/``end`` (what datasets read) and the
action in ``segment_start``/``segment_end`` (what sequence models need to move the window for
another ``tau_a``, and to find the labels of past actions).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from actcli.errors import UserError

TASKS = ("recognition", "anticipation")
BEFORE_START = ("clip", "drop")
TASK_FILE = "task.json"


@dataclass(frozen=True)
class TaskSpec:
    """What the split files were made for; stored as ``task.json`` beside them."""

    task: str = "recognition"
    tau_a: float = 1.0
    tau_o: float = 2.0
    before_start: str = "clip"

    def check(self) -> None:
        """One :class:`UserError` line for a task or times that leave nothing to observe."""
        if self.task not in TASKS:
            raise UserError(f"--task must be one of {', '.join(TASKS)}")
        if self.before_start not in BEFORE_START:
            raise UserError(f"--before-start must be one of {', '.join(BEFORE_START)}")
        if not (np.isfinite(self.tau_a) and np.isfinite(self.tau_o)) or self.tau_a < 0 or self.tau_o <= 0:
            raise UserError(f"--tau-a must be >= 0 and --tau-o > 0 seconds (got tau_a {self.tau_a:g}, tau_o "
                            f"{self.tau_o:g}): a window of {self.tau_o:g} s leaves no observable frame")


def anticipation_window(starts: pd.Series | np.ndarray, tau_a: float, tau_o: float,
                        before_start: str = "clip") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Observed windows for actions starting at ``starts`` (seconds): ``(window start, window stop,
    observable, clipped)`` arrays; see the module docstring for the rules."""
    stop = np.asarray(starts, dtype=float) - tau_a
    start = stop - tau_o
    empty = stop <= 0
    early = (start < 0) & ~empty
    observable = ~empty & ~(early if before_start == "drop" else np.zeros_like(early))
    clipped = early & observable
    return np.maximum(start, 0.0), stop, observable, clipped


def timed(table: pd.DataFrame) -> bool:
    """Whether every row of a format's table has a ``start`` and an ``end`` (seconds)."""
    return {"start", "end"} <= set(table.columns) and bool(table["start"].notna().all()
                                                           and table["end"].notna().all())


def task_rows(table: pd.DataFrame, split: pd.Series, spec: TaskSpec, what: str) -> tuple[
        pd.DataFrame, pd.Series, dict[str, dict[str, int]]]:
    """The rows of a format's table (``path, label, group, start, end``) as ``spec`` sees them.

    Recognition returns the rows unchanged (plus ``segment_start``/``segment_end`` when timed).
    Anticipation needs timed rows (else one error line naming ``what``) and returns the observable
    rows with the window in ``start``/``end``, their split, and per split ``segments``,
    ``windows_clipped`` and ``segments_dropped``.
    """
    spec.check()
    counts = {name: {"segments": int((split == name).sum()), "windows_clipped": 0, "segments_dropped": 0}
              for name in ("train", "val", "test")}
    if spec.task == "recognition":
        if timed(table):
            table = table.assign(segment_start=table["start"], segment_end=table["end"])
        return table, split, counts
    if not timed(table):
        have = ", ".join(c for c in ("start", "end") if c in table.columns) or "no start/end columns"
        raise UserError(f"--task anticipation needs timestamped actions, and {what} gives {have} for every row "
                        "(a list needs start and end, in seconds, on every line); annotate --task recognition, or "
                        "add the times")
    window_start, window_stop, observable, clipped = anticipation_window(table["start"], spec.tau_a, spec.tau_o,
                                                                         spec.before_start)
    out = table.assign(segment_start=table["start"], segment_end=table["end"], start=window_start.round(6),
                       end=window_stop.round(6))
    for name in counts:
        mine = (split == name).to_numpy()
        counts[name]["windows_clipped"] = int((clipped & mine).sum())
        counts[name]["segments_dropped"] = int((~observable & mine).sum())
    if not observable.any():
        raise UserError(f"no segment of {what} has an observable window with tau_a {spec.tau_a:g} s and tau_o "
                        f"{spec.tau_o:g} s (every window ends at or before 0 s, or begins before its video with "
                        "--before-start drop): lower --tau-a / --tau-o")
    keep = pd.Series(observable, index=table.index)
    return out[keep], split[keep], counts


def write_task(folder: Path, spec: TaskSpec, counts: dict[str, dict[str, int]]) -> Path:
    """``task.json``: the task, ``tau_a``, ``tau_o``, ``before_start`` and the per-split counts."""
    from actcli.fileio import write_json

    path = folder / TASK_FILE
    write_json(path, {**asdict(spec), "splits": counts})
    return path


def read_task(folder: Path) -> tuple[TaskSpec, dict[str, dict[str, int]]]:
    """``task.json`` of an annotations folder; a folder without one was annotated for recognition."""
    path = folder / TASK_FILE
    if not path.is_file():
        return TaskSpec(), {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        spec = TaskSpec(data["task"], float(data["tau_a"]), float(data["tau_o"]), data.get("before_start", "clip"))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is malformed ({exc}); re-run `actcli annotate`") from None
    return spec, dict(data.get("splits", {}))


def dropped_total(counts: dict[str, dict[str, int]], split: str) -> int:
    """Segments of ``split`` whose window lies before the video (0 when unknown)."""
    return int(counts.get(split, {}).get("segments_dropped", 0))
