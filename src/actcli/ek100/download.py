"""``actcli download ek100-annotations``: the official CSVs, fetched or copied, then checked.

Online, every file of :data:`actcli.ek100.annotations.FILES` is fetched from the public
annotations repository; offline, ``--from FOLDER`` copies them from a local checkout or
download. Each file is written atomically, then every file is loaded with its checking
loader, so a truncated or malformed file is reported at once, not mid-training.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from actcli.ek100.annotations import (
    FILES,
    NUM_NOUNS,
    NUM_VERBS,
    load_class_names,
    load_id_set,
    load_segments,
    load_subsets,
    load_video_info,
)
from actcli.errors import UserError
from actcli.fileio import atomic_path
from actcli.net import DownloadError, download

BASE_URL = "https://raw.githubusercontent.com/epic-kitchens/epic-kitchens-100-annotations/master"
REQUIRED = ("validation", "verbs", "nouns")  # enough to score; the rest are checked when present


def fetch(dest: Path, progress: Callable[[str], None] | None = None, timeout: float = 60.0,
          base_url: str = BASE_URL) -> list[Path]:
    """Download every annotation file into ``dest``, each verified against its Content-Length
    (the publisher gives no checksums); no network or a cut download -> one UserError naming --from."""
    written = []
    for name in FILES.values():
        url = f"{base_url}/{name}"
        if progress:
            progress(name)
        try:
            written.append(download(url, dest / name, timeout=timeout))
        except DownloadError as exc:
            raise UserError(f"{exc}; download the annotation files yourself and run "
                            "`actcli download ek100-annotations --from FOLDER`") from None
    return written


def copy_local(source: Path, dest: Path) -> list[Path]:
    """Copy the known annotation files found in ``source`` (a folder) into ``dest``."""
    if not source.is_dir():
        raise UserError(f"{source} is not a folder; pass the folder holding the EPIC_100_*.csv files")
    missing = [FILES[key] for key in REQUIRED if not (source / FILES[key]).is_file()]
    if missing:
        raise UserError(f"{source} lacks {', '.join(missing)}; pass the folder holding the EPIC_100_*.csv files")
    written = []
    for name in FILES.values():
        if (source / name).is_file() and (source / name).resolve() != (dest / name).resolve():
            with atomic_path(dest / name) as tmp:
                shutil.copyfile(source / name, tmp)
        if (dest / name).is_file():
            written.append(dest / name)
    return written


def check_folder(folder: Path) -> dict[str, int]:
    """Load every annotation file present in ``folder`` with its checks; rows per file."""
    rows: dict[str, int] = {}
    for key, name in FILES.items():
        path = folder / name
        if not path.is_file():
            continue
        if key in ("train", "validation", "test"):
            rows[name] = len(load_segments(path, labelled=key != "test"))
        elif key in ("verbs", "nouns"):
            rows[name] = len(load_class_names(path, NUM_VERBS if key == "verbs" else NUM_NOUNS))
        elif key == "video_info":
            rows[name] = len(load_video_info(path))
        else:
            column = {"tail_verbs": "verb", "tail_nouns": "noun"}.get(key, "participant_id")
            rows[name] = len(load_id_set(path, column))
    if (folder / FILES["tail_verbs"]).is_file() and (folder / FILES["unseen_validation"]).is_file():
        load_subsets(folder)  # class ids in range
    return rows
