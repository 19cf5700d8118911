"""EPIC-KITCHENS-100 as a format: the official CSVs, segments with verb and noun ids.

EK100 writes its own split files (:mod:`actcli.ek100.splits`: the official narration ids, verb
and noun classes, the 397 outputs of two heads) instead of the one-label table the other formats
give, so its :class:`~actcli.data.formats.Format` carries an ``annotate`` step that ``actcli
annotate`` calls in place of the generic one. The task (recognition or anticipation, ``tau_a``,
``tau_o``, windows before the video) is the same :class:`~actcli.data.segments.TaskSpec` as
for every other dataset.
"""

from __future__ import annotations

from pathlib import Path

from actcli.data.formats import Annotated, Format, Options
from actcli.errors import UserError


def read(root: Path, options: Options) -> Annotated:
    raise UserError("EK100 is annotated from its official CSVs: run `actcli annotate --dataset ek100`")


def annotate(settings, options: Options, task, out: Path | None) -> Path:
    """``actcli annotate --dataset ek100``: the split files of :mod:`actcli.ek100.splits`."""
    from actcli.commands.ek100 import annotate_ek100

    participants = list(options.participants) if options.participants else None
    return annotate_ek100(settings, options.lists, task, participants, options.max_segments, out)


FORMAT = Format(
    "ek100", "<root>/<P01>/rgb_frames|videos|flow_frames/... + EPIC_100_*.csv",
    "https://epic-kitchens.github.io (RGB frames or videos; see docs/ek100.md)",
    "official train/validation/test (+ challenge); recognition or anticipation", read, annotate)
