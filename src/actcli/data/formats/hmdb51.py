"""HMDB51 with its official three splits.

Layout: ``<root>/<class>/<clip>.avi`` (as in ``hmdb51_org.rar``, one rar per class unpacked)
and the split files ``<class>_test_split<N>.txt`` (from ``test_train_splits.rar``), in
``--official FOLDER`` or anywhere under the root. Each line is ``<clip>.avi <tag>``: 1 = train,
2 = test, 0 = unused in that split. Clips cut from the same source video share everything
before the trailing ``_<n>``, which is their group.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from actcli.data.annotate import find_class_root, scan_folder_tree
from actcli.data.formats import Annotated, Format, Options, find_list
from actcli.errors import UserError

TAGS = {"1": "train", "2": "test"}
_SPLIT_FILE = re.compile(r"^(?P<label>.+)_test_split(?P<fold>[123])\.txt$")


def source_video(clip_name: str) -> str:
    """The group of an HMDB51 clip: its name without the trailing ``_<n>`` (clips of one source video)."""
    return re.sub(r"_\d+$", "", Path(clip_name).stem)


def read(root: Path, options: Options) -> Annotated:
    if options.fold == 0:  # actcli's own split of the class folders, grouped by source video
        table = scan_folder_tree(root)
        table["group"] = table["path"].map(source_video)
        return Annotated(table[["path", "label", "group"]], sorted(table["label"].unique()))
    if options.fold not in (1, 2, 3):
        raise UserError(f"HMDB51 has official splits 1, 2 and 3 (0: actcli's own split); got --fold {options.fold}")
    class_root = find_class_root(root)
    first = find_list(root, options, (f"*_test_split{options.fold}.txt",), "HMDB51's split files")
    files = sorted(first.parent.glob(f"*_test_split{options.fold}.txt"))
    rows, missing, classes = [], [], []
    for split_file in files:
        label = _SPLIT_FILE.match(split_file.name).group("label")
        classes.append(label)
        for number, line in enumerate(split_file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise UserError(f"{split_file} line {number}: expected '<clip>.avi 0|1|2', got {line!r}")
            if parts[1] == "0":
                continue
            rel = f"{label}/{parts[0]}"
            if not (class_root / rel).is_file():
                missing.append(rel)
                continue
            rows.append({"path": rel, "label": label, "group": source_video(parts[0]), "split": TAGS[parts[1]]})
    return Annotated(pd.DataFrame(rows, columns=["path", "label", "group", "split"]), classes, missing)


FORMAT = Format(
    "hmdb51", "<root>/<class>/<clip>.avi + <class>_test_split<N>.txt (1 train, 2 test, 0 unused)",
    "https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/ (hmdb51_org.rar, "
    "test_train_splits.rar)", "official splits 1-3 (--fold); val carved from train by source video", read)
