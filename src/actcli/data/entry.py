"""Cache entries that can be checked: the payload file plus a small sidecar with its size and digest.

A cache entry can be truncated by a kill, zeroed by a failing disk or overwritten by another
program; the next run must notice instead of training on it (or crashing). :func:`write_entry`
writes the payload atomically, then ``<entry>.sum`` holding ``{"size": bytes, "blake2b": hex}``;
:func:`entry_ok` says whether a payload matches its sidecar (a payload without one, from a kill
between the two writes or an older version, does not). BLAKE2b reads at about 1 GB/s here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from actcli.fileio import atomic_path, write_text

SIDECAR = ".sum"


def sidecar(entry: Path) -> Path:
    return entry.with_name(entry.name + SIDECAR)


def digest_of(data: bytes | memoryview) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_entry(entry: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to ``entry`` atomically, then its sidecar."""
    with atomic_path(entry) as tmp:
        tmp.write_bytes(data)
    write_text(sidecar(entry), json.dumps({"size": len(data), "blake2b": digest_of(data)}))


def _recorded(entry: Path) -> dict | None:
    try:
        data = json.loads(sidecar(entry).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and {"size", "blake2b"} <= set(data) else None


def entry_ok(entry: Path, data: bytes | None = None) -> bool:
    """Whether ``entry`` exists and its size and digest match its sidecar (``data``: its bytes, if already read)."""
    recorded = _recorded(entry)
    if recorded is None or not entry.is_file():
        return False
    if entry.stat().st_size != recorded["size"]:
        return False
    return (digest_of(data) if data is not None else file_digest(entry)) == recorded["blake2b"]


def drop_entry(entry: Path) -> None:
    """Remove a bad entry and its sidecar (either may be missing)."""
    entry.unlink(missing_ok=True)
    sidecar(entry).unlink(missing_ok=True)
