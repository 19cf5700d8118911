"""Folder-per-class trees: ``<root>/<Class>/<clip>.<any video extension>`` (UCF50, the built-in
synthetic dataset, or your own). UCF-style names (``v_X_g07_c03.avi``) give the group; other
clips are their own group. actcli makes the group-aware split (``--split``)."""

from __future__ import annotations

from pathlib import Path

from actcli.data.annotate import scan_folder_tree
from actcli.data.formats import Annotated, Format, Options


def read(root: Path, options: Options) -> Annotated:
    table = scan_folder_tree(root)
    return Annotated(table[["path", "label", "group"]], sorted(table["label"].unique()))


FORMAT = Format("folder", "<root>/<Class>/<clip>.avi|mp4|mkv|webm|...", "your own, or any class-folder tree",
                "group-aware --split (and --folds)", read)
