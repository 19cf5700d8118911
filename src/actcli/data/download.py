"""Getting a dataset onto disk: kagglehub, a manually downloaded zip, or an existing folder.

Zip archives are extracted safely: every member must land inside the destination (no
absolute paths, no ``..``, no symbolic links), and extraction happens in a temporary
folder renamed into place at the end, so a failure leaves nothing half-extracted.
"""

from __future__ import annotations

import shutil
import stat
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from actcli.data.annotate import find_class_root
from actcli.errors import UserError
from actcli.net import redact


def kaggle_secrets() -> list[str]:
    """The Kaggle API key and token values set in the environment or ``~/.kaggle/kaggle.json``."""
    import contextlib
    import json
    import os

    values = [os.environ.get(name, "") for name in ("KAGGLE_KEY", "KAGGLE_API_TOKEN")]
    config = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle")) / "kaggle.json"
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no or unreadable config: nothing to hide
        values.append(str(json.loads(config.read_text()).get("key", "")))
    return [v for v in values if v]


def kaggle_download(handle: str) -> Path:
    """Download (or reuse kagglehub's cache of) a Kaggle dataset; returns its folder.

    Any failure (offline, no credentials, unknown handle) becomes one :class:`UserError`
    line suggesting ``--from``; kagglehub raises many exception types, hence the broad catch.
    """
    import kagglehub  # imported here: it is slow to import and only needed for downloads

    try:
        return Path(kagglehub.dataset_download(handle))
    except Exception as exc:  # noqa: BLE001 - network boundary, see docstring
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = redact(reason, kaggle_secrets())  # credentials never reach logs or reports
        raise UserError(
            f"cannot download {handle} from Kaggle ({type(exc).__name__}: {reason[:200]}); "
            "check the network and Kaggle credentials, or download the zip by hand and pass "
            "--from FILE.zip"
        ) from None


def _check_member(info: zipfile.ZipInfo, archive: Path) -> None:
    name = PurePosixPath(info.filename)
    mode = info.external_attr >> 16
    if name.is_absolute() or ".." in name.parts or info.filename.startswith(("/", "\\")) or (
        len(name.parts) and ":" in name.parts[0]
    ):
        raise UserError(f"{archive} member {info.filename!r} would escape the destination; refusing it")
    if stat.S_ISLNK(mode):
        raise UserError(f"{archive} member {info.filename!r} is a symbolic link; refusing it")


def extract_zip(archive: Path, dest: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Extract ``archive`` into ``dest`` (which must not exist yet) and return ``dest``.

    Args:
        progress: called with (members done, members total) after each member.
    Raises:
        UserError: unreadable zip, an unsafe member, or ``dest`` already present.
    """
    if dest.exists():
        raise UserError(f"{dest} already exists; pass another --dest or delete it")
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                _check_member(info, archive)
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
            try:
                for done, info in enumerate(members, 1):
                    zf.extract(info, tmp)
                    if progress is not None:
                        progress(done, len(members))
                tmp.rename(dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise UserError(f"{archive} is not a readable zip archive ({exc}); download it again") from None
    return dest


def from_local(source: Path, dest: Path, progress: Callable[[int, int], None] | None = None) -> Path:
    """Use a manually downloaded zip (extracted to ``dest``) or an existing folder in place.

    Returns the folder holding the class folders.
    """
    if not source.exists():
        raise UserError(f"{source} not found; pass a downloaded .zip file or a dataset folder to --from")
    if source.is_dir():
        return find_class_root(source)
    if not zipfile.is_zipfile(source):
        raise UserError(f"{source} is neither a folder nor a zip archive; pass one of those to --from")
    return find_class_root(extract_zip(source, dest, progress))
