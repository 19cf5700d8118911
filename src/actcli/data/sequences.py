"""Feature sequences of segments for sequence models: what is read, at which times, with which labels.

A :class:`SegmentRows` holds a split's segments the same way for every dataset: the feature key of
the video (its path without suffix, or EK100's video id), the action (``segment_start``,
``segment_stop``), the observed window of the annotated task, the labels (one class id, or EK100's
verb and noun) and, per video, every segment of the split (its timeline, for the labels of past
and next actions).

:class:`SequenceDataset` reads ``T`` steps per sample from one or several
:class:`~actcli.data.features.FeatureStore` (streams):

* **anticipation** (``window="anticipation"``): the steps are ``alpha`` seconds apart and end just
  before ``segment_start - tau_a``: ``t_k = stop - eps - (T - 1 - k) alpha`` with ``stop =
  segment_start - tau_a`` (RULSTM's sampling, times before the video read its first row). A store
  maps a time to row ``floor(t x fps)``, whose features end at or before ``t`` (``actcli extract``),
  so no input of a sample holds anything at or after ``segment_start - tau_a``. ``tau_a`` may differ
  from the annotated one (``test --tau-a 2,1.5,1,0.5``): windows that no longer lie inside the video
  are counted (:meth:`SegmentRows.observable`);
* **segment** (``window="segment"``, early prediction and recognition): step ``k`` is read just
  before the end of the ``k``-th of ``T`` equal parts of the segment, so it has seen the first
  ``(k + 1) / T`` of it and nothing later.

A sample is ``{"clip": float [T, D] (or {stream: [T, D]}), "label": [[target, step_1 .. step_T] per
head], "index": i}``; a step label is the target (``same``), the action at the time of the next step
(``next``, AVT), or ``-1`` (not supervised). Missing features skip the sample (counted by the loader).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from actcli.data.datasets import feature_key
from actcli.data.features import FeatureStore
from actcli.data.video import DecodeError
from actcli.errors import UserError

EPS = 1e-6


@dataclass
class SegmentRows:
    """One split's segments (module docstring); arrays are aligned with :attr:`ids`."""

    ids: list[str]
    keys: list[str]
    segment_start: np.ndarray
    segment_stop: np.ndarray
    window_start: np.ndarray
    window_stop: np.ndarray
    labels: np.ndarray  # int [N, H]
    groups: list[str] = field(default_factory=list)
    timeline: dict[str, list[tuple[float, float, tuple[int, ...]]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, keep: np.ndarray) -> SegmentRows:
        index = np.flatnonzero(keep)
        return SegmentRows([self.ids[i] for i in index], [self.keys[i] for i in index], self.segment_start[index],
                           self.segment_stop[index], self.window_start[index], self.window_stop[index],
                           self.labels[index], [self.groups[i] for i in index] if self.groups else [], self.timeline)

    def observable(self, tau_a: float, tau_o: float, before_start: str) -> np.ndarray:
        """``bool [N]``: the window ``tau_a`` before each action ends after 0 s (and, with ``drop``, starts at or
        after 0 s)."""
        stop = self.segment_start - tau_a
        keep = stop > 0
        if before_start == "drop":
            keep &= stop - tau_o >= 0
        return keep

    def label_at(self, key: str, t: float) -> tuple[int, ...] | None:
        """The labels of the segment of video ``key`` under way at time ``t`` (the latest started), or None."""
        best = None
        for start, stop, labels in self.timeline.get(key, ()):
            if start <= t < stop and (best is None or start >= best[0]):
                best = (start, labels)
        return best[1] if best else None

    def last_observed(self, index: int, tau_a: float) -> tuple[int, ...] | None:
        """The labels of the action under way just before ``segment_start - tau_a`` (the last observed)."""
        return self.label_at(self.keys[index], float(self.segment_start[index] - tau_a - EPS))


def _timeline(keys: list[str], starts: np.ndarray, stops: np.ndarray, labels: np.ndarray) -> dict:
    out: dict[str, list[tuple[float, float, tuple[int, ...]]]] = {}
    for key, a, b, lab in zip(keys, starts, stops, labels, strict=True):
        out.setdefault(key, []).append((float(a), float(b), tuple(int(v) for v in lab)))
    return out


def generic_rows(table: pd.DataFrame) -> SegmentRows:
    """Rows of a split CSV written by ``annotate`` (``path, label_id, start, end[, segment_start, segment_end]``)."""
    if "start" not in table.columns or table["start"].isna().any():
        raise UserError("sequence models read timestamped segments: annotate a dataset with start/end times "
                        "(synthetic-sequences, egtea, ek100, a list with start,end)")
    seg_start = table["segment_start"] if "segment_start" in table.columns else table["start"]
    seg_stop = table["segment_end"] if "segment_end" in table.columns else table["end"]
    keys = [feature_key(p) for p in table["path"]]
    labels = table["label_id"].astype(int).to_numpy()[:, None]
    starts, stops = seg_start.to_numpy(float), seg_stop.to_numpy(float)
    return SegmentRows([str(i) for i in range(len(table))], keys, starts, stops, table["start"].to_numpy(float),
                       table["end"].to_numpy(float), labels, table["group"].astype(str).tolist(),
                       _timeline(keys, starts, stops, labels))


def ek100_rows(table: pd.DataFrame) -> SegmentRows:
    """Rows of an EK100 split file (``actcli.ek100.splits``), every segment (observable or not)."""
    keys = table["video_id"].astype(str).tolist()
    labels = table[["verb_class", "noun_class"]].astype(int).to_numpy()
    seg_start = table.get("segment_start_s", table["start_s"]).to_numpy(float)
    seg_stop = table.get("segment_stop_s", table["stop_s"]).to_numpy(float)
    return SegmentRows(table["narration_id"].astype(str).tolist(), keys, seg_start, seg_stop,
                       table["start_s"].to_numpy(float), table["stop_s"].to_numpy(float), labels,
                       table["participant_id"].astype(str).tolist(), _timeline(keys, seg_start, seg_stop, labels))


class SequenceDataset(Dataset):
    """Feature sequences of :class:`SegmentRows` (module docstring).

    Args:
        rows: the segments. stores: ``{stream: FeatureStore}`` (one stream: samples hold a tensor).
        steps: ``T``. alpha: seconds between anticipation steps. tau_a: the anticipation time.
        window: ``anticipation`` or ``segment``. step_labels: ``same``, ``next`` or ``none``.
        supervised_steps: with ``same``, only the last this many steps carry the label (RULSTM's S_ant).
    """

    def __init__(self, rows: SegmentRows, stores: dict[str, FeatureStore], steps: int, alpha: float = 0.25,
                 tau_a: float = 1.0, window: str = "anticipation", step_labels: str = "none",
                 supervised_steps: int | None = None) -> None:
        if steps < 1:
            raise UserError(f"a sequence needs at least one step (got {steps}); raise --tau-o or lower alpha")
        self.rows, self.stores, self.steps, self.alpha, self.tau_a = rows, stores, steps, alpha, tau_a
        self.window, self.step_labels, self.supervised_steps = window, step_labels, supervised_steps

    def __len__(self) -> int:
        return len(self.rows)

    def times(self, index: int) -> list[float]:
        """The ``T`` times (seconds) read for sample ``index``, oldest first."""
        if self.window == "anticipation":
            stop = float(self.rows.segment_start[index]) - self.tau_a
            return [max(0.0, stop - EPS - (self.steps - 1 - k) * self.alpha) for k in range(self.steps)]
        start, stop = float(self.rows.segment_start[index]), float(self.rows.segment_stop[index])
        length = max(stop - start, 0.0)
        return [max(start, start + (k + 1) * length / self.steps - EPS) for k in range(self.steps)]

    def labels(self, index: int, times: list[float]) -> list[list[int]]:
        target = [int(v) for v in self.rows.labels[index]]
        heads = len(target)
        per_step: list[list[int]] = []
        first_supervised = 0 if self.supervised_steps is None else self.steps - self.supervised_steps
        for k, t in enumerate(times):
            if self.step_labels == "same" and k >= first_supervised:
                per_step.append(target)
            elif self.step_labels == "next":  # the action under way one step later (a label, never an input)
                found = self.rows.label_at(self.rows.keys[index], t + self.alpha)
                per_step.append(list(found) if found is not None else [-1] * heads)
            else:
                per_step.append([-1] * heads)
        return [[target[h], *(step[h] for step in per_step)] for h in range(heads)]

    def read(self, index: int, times: list[float]):
        key = self.rows.keys[index]
        inputs = {name: store.read(key, times) for name, store in self.stores.items()}
        return next(iter(inputs.values())) if len(inputs) == 1 else inputs

    def __getitem__(self, index: int) -> dict:
        times = self.times(index)
        try:
            clip = self.read(index, times)
        except DecodeError as exc:
            return {"skipped": f"{self.rows.ids[index]}: {exc}"}
        return {"clip": clip, "label": self.labels(index, times), "index": index}


def steps_for(window: str, tau_o: float, alpha: float, steps: int | None) -> int:
    """``T``: given, else ``round(tau_o / alpha)`` for anticipation (RULSTM: 0.25 s steps over the window) and 8
    for segments (RULSTM's S_ant samples per action)."""
    if steps is not None:
        return steps
    if window == "anticipation":
        count = int(round(tau_o / alpha))
        if count < 1:
            raise UserError(f"tau_o {tau_o:g} s is shorter than one {alpha:g} s step: no observable step; raise "
                            "--tau-o (annotate) or lower alpha (--model-config alpha=...)")
        return count
    return 8


def check_rate(store: FeatureStore, fps: float, where: str) -> None:
    """A store written by ``actcli extract`` at another rate than ``fps`` is one error line."""
    stored = store.meta.get("fps")
    if stored is not None and not math.isclose(float(stored), fps, rel_tol=1e-6):
        raise UserError(f"{where}: the features in {store.path} are at {float(stored):g} rows/s, not {fps:g}; pass "
                        f"--features-fps {float(stored):g} (training) or features extracted at {fps:g} (--fps)")


def stream_paths(value: Path | str | None) -> dict[str, Path]:
    """``--features PATH`` (stream ``rgb``) or ``--features rgb=PATH,flow=PATH,obj=PATH`` (several streams)."""
    if value is None:
        return {}
    text = str(value)
    if "=" not in text or Path(text).exists():
        return {"rgb": Path(text)}
    out: dict[str, Path] = {}
    for part in text.split(","):
        name, sep, path = part.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise UserError(f"--features takes PATH or name=PATH,name=PATH (e.g. rgb=a_lmdb,flow=b_lmdb), not {text!r}")
        out[name.strip()] = Path(path.strip())
    return out

