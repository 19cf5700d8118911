"""UCF101 with its official three splits.

Layout: ``<root>/<Class>/v_<Class>_gNN_cNN.avi`` (as in ``UCF101.rar``) and the split lists
``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt`` (from ``UCF101TrainTestSplits-RecognitionTask.zip``),
in ``--official FOLDER`` or anywhere under the root. ``classInd.txt`` lines are ``1 ApplyEyeMakeup``;
train lines ``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1``; test lines the path alone.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from actcli.data.annotate import find_class_root, group_of
from actcli.data.formats import Annotated, Format, ListedFiles, Options, find_list
from actcli.errors import UserError
from actcli.fileio import read_text


def read_class_index(path: Path) -> list[str]:
    """``classInd.txt`` -> class names in id order (ids are 1-based in the file)."""
    entries = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise UserError(f"{path} line {number}: expected '<id> <ClassName>', got {line!r}")
        entries.append((int(parts[0]), parts[1]))
    ids = sorted(i for i, _ in entries)
    if ids != list(range(1, len(entries) + 1)):
        raise UserError(f"{path}: class ids must be 1..{len(entries)}, each once")
    return [name for _, name in sorted(entries)]


def read_list(path: Path) -> list[str]:
    """Video paths (``Class/v_Class_gNN_cNN.avi``) of a train or test list; labels in the file are ignored
    (the class folder is the label)."""
    return [line.split()[0].replace("\\", "/") for line in read_text(path).splitlines()
            if line.strip()]


def read(root: Path, options: Options) -> Annotated:
    if options.fold == 0:  # actcli's own group-aware split of the class folders (UCF groups, _gNN_)
        from actcli.data.formats import folder

        return folder.read(root, options)
    if options.fold not in (1, 2, 3):
        raise UserError(f"UCF101 has official folds 1, 2 and 3 (0: actcli's own split); got --fold {options.fold}")
    class_root = find_class_root(root)
    index = find_list(root, options, ("classInd.txt",), "UCF101's class index")
    classes, folder = read_class_index(index), index.parent
    files = ListedFiles(class_root)
    rows, missing = [], []
    for split, name in (("train", f"trainlist0{options.fold}.txt"), ("test", f"testlist0{options.fold}.txt")):
        listed = folder / name
        if not listed.is_file():
            raise UserError(f"{listed} not found; the official split lists come in UCF101TrainTestSplits-"
                            "RecognitionTask.zip")
        for rel in read_list(listed):
            label = rel.split("/")[0]
            if label not in classes:
                raise UserError(f"{listed}: class {label!r} of {rel} is not in classInd.txt")
            found = files.find(rel)
            if found is None:
                missing.append(rel)
                continue
            rows.append({"path": found, "label": label, "group": group_of(rel) or rel, "split": split})
    return Annotated(pd.DataFrame(rows, columns=["path", "label", "group", "split"]), classes, missing, files.warnings)


FORMAT = Format(
    "ucf101", "<root>/<Class>/v_<Class>_gNN_cNN.avi + classInd.txt, trainlist0N.txt, testlist0N.txt",
    "https://www.crcv.ucf.edu/data/UCF101.php (UCF101.rar and the RecognitionTask split zip)",
    "official folds 1-3 (--fold); val carved from train by group", read)
