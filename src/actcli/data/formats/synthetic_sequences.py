"""The built-in synthetic anticipation dataset (``actcli download synthetic-sequences``).

Layout: ``<root>/videos/seq_gNN_vMMM.avi`` and ``<root>/segments.csv``, the segment list in the
format of ``--dataset list`` (``path,label,start,end,group``); see
:mod:`actcli.data.synthetic_sequences` for the grammar that orders the actions. Splits: actcli's
group-aware split over the scene groups, so whole videos (and scenes) stay in one split.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from actcli.data.formats import Annotated, Format, Options
from actcli.data.formats.user_list import read as read_list
from actcli.data.synthetic_sequences import SEGMENTS
from actcli.errors import UserError


def read(root: Path, options: Options) -> Annotated:
    listing = options.lists or root / SEGMENTS
    if not listing.is_file():
        raise UserError(f"{listing} not found; generate the dataset with `actcli download synthetic-sequences "
                        f"--dest {root}`")
    return read_list(root, replace(options, lists=listing))


FORMAT = Format(
    "synthetic_sequences", "<root>/videos/seq_gNN_vMMM.avi + segments.csv (path,label,start,end,group)",
    "built in: `actcli download synthetic-sequences`", "group-aware --split (scene groups)", read)
