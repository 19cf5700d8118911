"""Anticipation windows: what a model may observe before an action starts.

For a segment starting at ``t_start``, the observed window is
``[t_start - tau_a - tau_o, t_start - tau_a)`` (EK100: anticipation time ``tau_a`` = 1 s).
A window that begins before the video does is clipped to start at 0 (``clip``) or the
segment is dropped (``drop``); a window that ends at or before 0 can only be dropped.
Dropped segments stay in the tables with ``observable = False``: nothing of them is read or
trained on, but submissions still name them (with zero scores), as the official evaluator
requires every segment.
"""

from __future__ import annotations

import pandas as pd

BEFORE_START = ("clip", "drop")


def observed_windows(table: pd.DataFrame, tau_a: float, tau_o: float, before_start: str = "clip") -> tuple[
        pd.DataFrame, int, int]:
    """``table`` (with ``start_s``) plus ``obs_start_s``/``obs_stop_s`` and ``observable`` columns.

    Returns every row (dropped ones with ``observable = False``), how many windows were
    clipped and how many segments were dropped.
    """
    if before_start not in BEFORE_START:
        raise ValueError(f"before_start must be one of {BEFORE_START}")
    stop = table["start_s"] - tau_a
    start = stop - tau_o
    empty = stop <= 0
    early = (start < 0) & ~empty
    keep = ~empty & ~(early if before_start == "drop" else False)
    out = table.assign(obs_start_s=start.clip(lower=0.0), obs_stop_s=stop, observable=keep).reset_index(drop=True)
    clipped = int(early.sum()) if before_start == "clip" else 0
    return out, clipped, int((~keep).sum())
