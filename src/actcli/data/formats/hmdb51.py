"""HMDB51 with its official three splits.

Layout: ``<root>/<class>/<clip>.avi`` (as in ``hmdb51_org.rar``, one rar per class unpacked)
and the split files ``<class>_test_split<N>.txt`` (from ``test_train_splits.rar``), in
``--official FOLDER`` or anywhere under the root. Each line is ``<clip>.avi <tag>``: 1 = train,
2 = test, 0 = unused in that split.

Clip names are ``<source video>_<class>_<tags>_<n>.avi``, the tags being HMDB51's meta labels
(visible body part, camera motion, number of people, viewpoint, quality:
``u_nm_np1_fr_goo``). Clips cut from one source video carry different tags
(``..._u_nm_np2_le_med_2`` beside ``..._u_nm_np1_ri_med_3``), so the group is the source video:
the name before ``_<class>_<tags>_<n>``. Class ids follow the sorted class names, as for every
dataset.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from actcli.data.annotate import find_class_root, scan_folder_tree
from actcli.data.formats import Annotated, Format, ListedFiles, Options, find_list
from actcli.errors import UserError
from actcli.fileio import read_text

TAGS = {"1": "train", "2": "test"}
_SPLIT_FILE = re.compile(r"^(?P<label>.+)_test_split(?P<fold>[123])\.txt$")
# <body part>_<camera motion>_<people>_<viewpoint>_<quality>_<n>, e.g. _u_nm_np1_fr_goo_0
_META = re.compile(r"_[a-z]+_(?:cm|nm)_np\d+_[a-z]+_(?:goo|med|bad)_\d+$", re.IGNORECASE)


def source_video(clip_name: str, label: str | None = None) -> str:
    """The group of an HMDB51 clip, the source video it was cut from: the name before
    ``_<class>_<tags>_<n>`` (``April_09_brush_hair_u_nm_np1_ba_goo_0.avi`` -> ``April_09``). A name
    without HMDB51's tags loses only its trailing ``_<n>``."""
    stem = Path(clip_name).stem
    meta = _META.search(stem)
    if meta is None:
        return re.sub(r"_\d+$", "", stem)
    head = stem[:meta.start()]
    if label and head.lower().endswith(f"_{label.lower()}"):
        return head[: -len(label) - 1]
    return head


def read(root: Path, options: Options) -> Annotated:
    if options.fold == 0:  # actcli's own split of the class folders, grouped by source video
        table = scan_folder_tree(root)
        table["group"] = [source_video(Path(p).name, label) for p, label in zip(table["path"], table["label"],
                                                                                strict=True)]
        return Annotated(table[["path", "label", "group"]], sorted(table["label"].unique()))
    if options.fold not in (1, 2, 3):
        raise UserError(f"HMDB51 has official splits 1, 2 and 3 (0: actcli's own split); got --fold {options.fold}")
    class_root = find_class_root(root)
    first = find_list(root, options, (f"*_test_split{options.fold}.txt",), "HMDB51's split files")
    files = sorted(first.parent.glob(f"*_test_split{options.fold}.txt"))
    rows, missing, classes = [], [], []
    listed = ListedFiles(class_root)
    for split_file in files:
        label = _SPLIT_FILE.match(split_file.name).group("label")
        classes.append(label)
        for number, line in enumerate(read_text(split_file).splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise UserError(f"{split_file} line {number}: expected '<clip>.avi 0|1|2', got {line!r}")
            if parts[1] == "0":
                continue
            rel = listed.find(f"{label}/{parts[0]}")
            if rel is None:
                missing.append(f"{label}/{parts[0]}")
                continue
            rows.append({"path": rel, "label": label, "group": source_video(parts[0], label), "split": TAGS[parts[1]]})
    return Annotated(pd.DataFrame(rows, columns=["path", "label", "group", "split"]), sorted(classes), missing,
                     listed.warnings)


FORMAT = Format(
    "hmdb51", "<root>/<class>/<clip>.avi + <class>_test_split<N>.txt (1 train, 2 test, 0 unused)",
    "https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/ (hmdb51_org.rar, "
    "test_train_splits.rar)", "official splits 1-3 (--fold); val carved from train by source video", read)
