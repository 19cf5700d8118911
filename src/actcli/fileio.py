"""Atomic file writes: a reader (or a crash) never sees a half-written file.

Every file actcli produces goes through :func:`atomic_write`: the content is written to a
temporary file in the same folder, flushed to disk, then renamed over the target.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from actcli.errors import UserError

# A failed write that the user fixes with space or permissions: disk full, quota, file size limit,
# read-only file system, no permission, a path component that is a file (EEXIST from mkdir), a name too long.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                errno.EISDIR, errno.ENAMETOOLONG, errno.EEXIST}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it to ``target`` on success.

    On any exception the temporary file is removed and ``target`` is left untouched. A write
    that fails for lack of space or permission (any ``OSError``) becomes a :class:`UserError`
    naming the file and saying that the previous version is kept; other errors pass unchanged.
    """
    target = Path(target)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:  # e.g. a network error while streaming a download into the file
            raise
        kept = f"the previous {target.name} is kept" if target.exists() else "nothing was written"
        raise UserError(f"cannot write {target}: {exc.strerror or exc}; {kept}. Free disk space or set "
                        "paths.outputs (ACTCLI_PATHS__OUTPUTS) to a writable folder") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def atomic_write(target: Path, write: Callable[[IO[Any]], None], mode: str = "w") -> None:
    """Call ``write(handle)`` on a temporary file opened with ``mode``, then rename it."""
    with atomic_path(target) as tmp, open(tmp, mode, encoding=None if "b" in mode else "utf-8") as fh:
        write(fh)


def write_text(target: Path, text: str) -> None:
    """Atomically write a text file."""
    atomic_write(target, lambda fh: fh.write(text))


def write_json(target: Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    write_text(target, json.dumps(data, indent=2, default=str) + "\n")


def write_torch(target: Path, obj: Any) -> None:
    """Atomically ``torch.save`` ``obj``. It is serialised in memory first: torch's zip writer
    reports a full disk as a bare ``RuntimeError``, a plain file write as the ``OSError`` it is."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(target) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def read_text(path: Path) -> str:
    """A text file's content as UTF-8, a leading byte-order mark dropped (editors on Windows write one);
    text that is not UTF-8 is a :class:`UserError` naming the file and the byte."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
