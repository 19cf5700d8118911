"""Known datasets and where their videos live on this machine.

``actcli download`` records each dataset's root in ``<outputs>/datasets.json``; later
commands look it up there, so nobody pastes a path into code or a config file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from actcli.errors import UserError
from actcli.fileio import write_json
from actcli.locks import FolderLock

REGISTRY_FILE = "datasets.json"


@dataclass(frozen=True)
class DatasetInfo:
    """A supported dataset.

    ``kaggle`` is the kagglehub handle (None: manual download only); ``flip_safe`` says
    whether a horizontal flip keeps the label (False when left/right is the class);
    ``format`` names its reader, a module of :mod:`actcli.data.formats`; ``class_folders`` says whether
    its paths are relative to the folder of class folders (found under the root) or to the root.
    """

    name: str
    kaggle: str | None
    flip_safe: bool
    homepage: str
    format: str = "folder"
    class_folders: bool = True


def _kinetics(version: int) -> DatasetInfo:
    return DatasetInfo(f"kinetics{version}", None, True, "https://github.com/cvdfoundation/kinetics-dataset",
                       "kinetics", class_folders=False)


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo(
            "ucf50", "vineethakkinapalli/ucf50-action-recognition-dataset", True,
            "https://www.crcv.ucf.edu/data/UCF50.php",
        ),
        DatasetInfo("ucf101", None, True, "https://www.crcv.ucf.edu/data/UCF101.php", "ucf101"),
        DatasetInfo(
            "hmdb51", None, True,
            "https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/", "hmdb51",
        ),
        _kinetics(400),
        _kinetics(600),
        _kinetics(700),
        DatasetInfo("ssv2", None, False, "https://developer.qualcomm.com/software/ai-datasets/something-something",
                    "ssv2", class_folders=False),
        DatasetInfo("folder", None, True, "your own: <root>/<Class>/<clip>.<ext>"),
        DatasetInfo("list", None, True, "your own: a CSV or JSON-lines list (--list FILE)", "user_list",
                    class_folders=False),
        DatasetInfo("synthetic", None, False, "built in: `actcli download synthetic`"),
        DatasetInfo("synthetic-sequences", None, False, "built in: `actcli download synthetic-sequences` (actions in a "
                    "grammar, for anticipation)", "synthetic_sequences", class_folders=False),
        DatasetInfo("egtea", None, True, "https://cbs.ic.gatech.edu/fpv/ (EGTEA Gaze+)", "egtea", class_folders=False),
        DatasetInfo("ek100", None, True, "https://epic-kitchens.github.io (RGB frames or videos; see docs/ek100.md)",
                    "ek100", class_folders=False),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    """The entry for ``name``; an unknown name lists the known ones."""
    if name not in DATASETS:
        raise UserError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def _registry(outputs: Path) -> dict[str, str]:
    path = outputs / REGISTRY_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path} is not valid JSON; delete it and run `actcli download` again") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise UserError(f"{path} is not a datasets registry (expected an object of dataset name -> folder, found "
                        f"{type(data).__name__ if not isinstance(data, dict) else 'other values'}); delete it and run "
                        "`actcli download` or `actcli annotate --root DIR` again")
    return {str(k): str(v) for k, v in data.items()}


def remember_root(outputs: Path, dataset: str, root: Path) -> None:
    """Record ``root`` (made absolute) as where ``dataset`` lives. The registry is locked and re-read
    before writing, so commands running at once keep each other's entries."""
    with FolderLock(outputs, "outputs folder", wait=30.0):
        entries = _registry(outputs)
        entries[dataset] = str(root.resolve())
        write_json(outputs / REGISTRY_FILE, dict(sorted(entries.items())))


def known_root(outputs: Path, dataset: str) -> Path | None:
    """The remembered root of ``dataset``, None if `download` or `annotate --root` never recorded one."""
    known = _registry(outputs).get(dataset)
    return Path(known) if known else None


def resolve_root(outputs: Path, dataset: str, given: Path | None) -> Path:
    """``given`` if set, else the remembered root of ``dataset``; a clear error if neither."""
    if given is not None:
        return given
    known = _registry(outputs).get(dataset)
    if known is None:
        raise UserError(
            f"no root known for dataset {dataset!r}; run `actcli download {dataset}` "
            "or pass --root DIR"
        )
    return Path(known)
