"""Dataset formats: each turns one dataset's own layout and official files into actcli's table.

Every format is one module with a :class:`Format` object; ``annotate`` calls its ``read`` and
writes the usual ``labels.csv`` and ``train/val/test.csv``, so training and testing never see
the difference. Adding a dataset is one module here defining ``FORMAT`` (found by
:func:`get_format` from its name), its line in :data:`actcli.data.registry.DATASETS`, and a test
that builds a tiny tree in its layout.

A format's table has one row per clip: ``path`` (relative to the root), ``label``, ``group``
(clips of one group never straddle splits), optionally ``start``/``end`` (seconds within the
file) and ``split`` (``train``/``val``/``test`` from the official files; a ``val`` the official
files lack is carved out of ``train`` by group).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Options:
    """What ``annotate`` passes to a format: the official split (``fold``), where the official
    list files are (``lists``: a folder, or the list file itself; None: look inside the root) and
    the dataset's name (``kinetics400`` prefers ``kinetics-400_train.csv`` beside a 600's)."""

    fold: int = 1
    lists: Path | None = None
    dataset: str = ""
    allow_outside_root: bool = False  # list paths may be absolute or lead outside the root
    participants: tuple[str, ...] | None = None  # ek100: only these participants
    max_segments: int | None = None  # ek100: at most N segments per participant and official file


@dataclass
class Annotated:
    """A dataset read from disk: the clip table, the classes in id order, listed videos not found, and
    warnings for the user (e.g. class folders matched with another letter case)."""

    table: pd.DataFrame
    classes: list[str]
    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Format:
    """One supported layout: how it looks, where it comes from, which splits, and its reader."""

    name: str
    layout: str
    source: str
    splits: str
    read: Callable[[Path, Options], Annotated]
    annotate: Callable[..., Path] | None = None  # a format that writes its own split files (EK100: verb + noun ids)


def find_list(root: Path, options: Options, names: tuple[str, ...], what: str) -> Path:
    """The first of ``names`` in ``options.lists`` (a folder, searched recursively), else anywhere under
    ``root`` or in a folder beside it (``data/UCF-101`` + ``data/ucfTrainTestlist``); a UserError naming
    ``what`` and ``--official`` if none exists."""
    from actcli.errors import UserError

    if options.lists is not None and options.lists.is_file():
        return options.lists
    if not root.is_dir():
        raise UserError(f"dataset root {root} not found; pass the folder holding the videos with --root")
    if options.lists is not None:
        searches = [options.lists.rglob(n) for n in names] if options.lists.is_dir() else []
    else:
        searches = [found for n in names for found in (root.rglob(n), root.parent.glob(f"*/{n}"))]
    for found in searches:
        hits = sorted(found)
        if hits:
            return hits[0]
    where = options.lists or root
    raise UserError(f"{what} ({names[0]}) not found under {where}; pass the folder holding the official files "
                    "with --official")


def get_format(name: str) -> Format:
    """The reader of format ``name``: the ``FORMAT`` of module ``actcli.data.formats.<name>``."""
    import importlib

    return importlib.import_module(f"actcli.data.formats.{name}").FORMAT


class ListedFiles:
    """Finds the files an official list names under ``root``, matching letter case loosely.

    UCF101's list says ``HandstandPushups/v_HandStandPushups_g01_c01.avi``; copies of the dataset
    differ in the folder's case. An exact path is used as is; otherwise the one file whose path
    matches without regard to case is used, and :attr:`warnings` says which folder was matched.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lower: dict[str, str] | None = None
        self._matched: dict[str, str] = {}

    def find(self, relative: str) -> str | None:
        """``relative`` as it is on disk (POSIX, relative to the root), or None if no file matches."""
        if (self.root / relative).is_file():
            return relative
        if self._lower is None:  # built on the first miss only: one walk of the tree
            self._lower = {p.relative_to(self.root).as_posix().lower(): p.relative_to(self.root).as_posix()
                           for p in self.root.rglob("*") if p.is_file()}
        found = self._lower.get(relative.lower())
        if found is not None:
            listed, actual = relative.rsplit("/", 1)[0], found.rsplit("/", 1)[0]
            if listed != actual:
                self._matched.setdefault(listed, actual)
        return found

    @property
    def warnings(self) -> list[str]:
        return [f"the list names folder {listed!r}, found as {actual!r} (letter case differs): used"
                for listed, actual in sorted(self._matched.items())]
