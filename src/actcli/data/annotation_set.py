"""The files ``annotate`` writes form one set: all of them from one run, or an error before training.

Each file is written atomically, but a set is not: a ``kill -9`` after ``train.csv`` was replaced
and before ``val.csv`` would leave a new train beside an old val. :func:`writing_set` wraps one
annotate: it locks the folder (one annotate at a time), removes temporary files left by earlier
kills, marks the set ``writing`` in ``manifest.json``, and when everything is written records the
SHA-256 of every file of the set (``complete``). :func:`check_set` (called by ``train``, ``test``
and the rest before reading) refuses a set marked ``writing`` (an annotate was interrupted or
failed, e.g. on a full disk) or one missing a file it wrote. A file whose digest changed since was
edited by hand (an interrupted annotate leaves ``writing``): it is read as it is, with a warning,
so the table's own checks name any bad line. A folder without a manifest (made by hand or by an
older version) is read as it is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from actcli.errors import UserError
from actcli.fileio import write_json
from actcli.locks import FolderLock

MANIFEST = "manifest.json"
SET_SUFFIXES = (".csv", ".json")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _members(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SET_SUFFIXES and p.name != MANIFEST
                  and not p.name.startswith("."))


def remove_stale_temporaries(folder: Path) -> int:
    """Delete atomic-write temporary files (``.<name>.<random>.tmp``) that killed writers left; how many."""
    stale = list(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


@contextmanager
def writing_set(folder: Path) -> Iterator[None]:
    """Write a set of annotation files in ``folder`` as one unit (module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    with FolderLock(folder, "annotations folder"):
        remove_stale_temporaries(folder)
        write_json(folder / MANIFEST, {"state": "writing"})
        yield
        write_json(folder / MANIFEST, {"state": "complete", "files": {p.name: _sha256(p) for p in _members(folder)}})


def check_set(folder: Path) -> list[str]:
    """A :class:`UserError` line when the set in ``folder`` is incomplete; the names of its files edited since
    ``annotate`` wrote it (read as they are)."""
    path = folder / MANIFEST
    if not path.is_file():
        return []
    try:
        manifest = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("state") not in ("writing", "complete"):
        raise UserError(f"{path} is unreadable; re-run `actcli annotate` to write the annotations again")
    if manifest["state"] == "writing":
        raise UserError(f"the annotations in {folder} are incomplete: an `actcli annotate` was interrupted or failed "
                        "while writing them (its files may mix two runs); re-run `actcli annotate`")
    edited = []
    for name, digest in dict(manifest.get("files", {})).items():
        member = folder / name
        if not member.is_file():
            raise UserError(f"{member} is missing from the annotations annotate wrote; re-run `actcli annotate`")
        if _sha256(member) != digest:
            edited.append(name)
    return edited
