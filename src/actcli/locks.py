"""One writer at a time: an exclusive lock on a folder (a run folder, an annotations folder, the outputs).

:class:`FolderLock` holds ``<folder>/.actcli.lock`` with ``fcntl.flock`` and writes the owner's pid,
host and start time into it, so a second writer is refused with one line saying who holds it.
The kernel releases the lock when the owner exits, however it exits (``kill -9`` included), so a
lock left by a dead process is never in the way: the file's old content is only a record. Where
the file system cannot lock (some network mounts), the recorded owner is checked instead: a pid
alive on this host holds it, any other record is stale and taken over.

A killed owner's forked children (data loader workers) share its open lock file, so the lock outlives
it until they notice and exit (PyTorch's workers check on their parent every 5 s): while the recorded
owner on this host is dead, :meth:`FolderLock.acquire` waits up to :data:`ORPHAN_WAIT` seconds for
them instead of refusing at once.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType

from actcli.errors import UserError

LOCK_NAME = ".actcli.lock"
ORPHAN_WAIT = 20.0
"""Seconds to wait for a lock whose recorded owner is dead (held by its exiting children)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FolderLock:
    """``with FolderLock(folder, "run"):`` -- exclusive, refused with a :class:`UserError` when held.

    ``wait`` seconds > 0 waits for the lock that long first (short critical sections such as the
    datasets registry), else a held lock is refused at once.
    """

    def __init__(self, folder: Path, what: str, wait: float = 0.0) -> None:
        self.folder, self.what, self.wait = Path(folder), what, wait
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def owner(self) -> dict:
        """The recorded holder ``{"pid", "host", "since", "command"}`` (empty if none or unreadable)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _refuse(self) -> UserError:
        owner = self.owner()
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner["since"])) if "since" in owner else "?"
        return UserError(f"{self.what} {self.folder} is in use by pid {owner.get('pid', '?')} on "
                         f"{owner.get('host', '?')} since {since} ({owner.get('command', 'another actcli command')}); "
                         "wait for it to finish or stop it, then try again")

    def _owner_dead(self) -> bool:
        """Whether the recorded owner is a process of this host that no longer runs."""
        owner = self.owner()
        return owner.get("host") == socket.gethostname() and isinstance(owner.get("pid"), int) \
            and not _alive(owner["pid"])

    def acquire(self) -> FolderLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        deadline, orphaned = time.monotonic() + self.wait, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline and self._owner_dead() and not orphaned:
                    orphaned, deadline = True, time.monotonic() + ORPHAN_WAIT
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise self._refuse() from None
                time.sleep(0.02)
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                owner = self.owner()  # no locking here: trust the record unless its owner is gone
                if owner.get("host") == socket.gethostname() and owner.get("pid") not in (None, os.getpid()) \
                        and _alive(int(owner["pid"])):
                    os.close(fd)
                    raise self._refuse() from None
                break
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                  "command": " ".join(["actcli", *sys.argv[1:3]])}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # no owner any more
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()
