"""Something-Something v2 from its JSON label files.

``labels.json`` maps each template (placeholders without brackets, ``"Putting something on a
surface"``) to its class id; ``train.json`` and ``validation.json`` list ``{"id", "label",
"template", "placeholders"}`` with ``[something]`` in the template. The label archive names them
``something-something-v2-labels.json``, ``-train.json`` and ``-validation.json``; both namings are
read. Videos are ``<id>.webm`` under the root. Splits: train (a val carved from it), validation as
test (test labels are not public). Horizontal flips are off by default: "left" and "right" are in
the class names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from actcli.data.formats import Annotated, Format, Options, find_list
from actcli.errors import UserError
from actcli.fileio import read_text

PREFIX = "something-something-v2-"


def template_class(template: str) -> str:
    """``"Putting [something] on a surface"`` -> ``"Putting something on a surface"`` (labels.json's key)."""
    return template.replace("[", "").replace("]", "")


def _load_json(path: Path):
    try:
        return json.loads(read_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); download it again") from None


def read(root: Path, options: Options) -> Annotated:
    labels_path = find_list(root, options, ("labels.json", f"{PREFIX}labels.json"),
                            "Something-Something v2's labels.json")
    prefix = PREFIX if labels_path.name.startswith(PREFIX) else ""
    labels = _load_json(labels_path)
    if not isinstance(labels, dict):
        raise UserError(f"{labels_path}: expected an object of template -> id")
    classes = [name for name, _ in sorted(labels.items(), key=lambda item: int(item[1]))]
    videos = {p.stem: p.relative_to(root).as_posix() for p in root.rglob("*.webm")}
    rows, missing = [], []
    for split, name in (("train", "train.json"), ("test", "validation.json")):
        path = labels_path.parent / f"{prefix}{name}"
        if not path.is_file():
            raise UserError(f"{path} not found; it comes with labels.json in the dataset's label archive")
        for number, entry in enumerate(_load_json(path), 1):
            if not isinstance(entry, dict) or "id" not in entry or "template" not in entry:
                raise UserError(f"{path} entry {number}: expected an object with id and template")
            label = template_class(entry["template"])
            if label not in labels:
                raise UserError(f"{path} entry {number}: template {entry['template']!r} is not in labels.json")
            video_id = str(entry["id"])
            if video_id not in videos:
                missing.append(f"{video_id}.webm")
                continue
            rows.append({"path": videos[video_id], "label": label, "group": video_id, "split": split})
    return Annotated(pd.DataFrame(rows, columns=["path", "label", "group", "split"]), classes, missing)


FORMAT = Format(
    "ssv2", "<root>/<id>.webm + labels.json, train.json, validation.json",
    "https://developer.qualcomm.com/software/ai-datasets/something-something (videos and labels)",
    "train (val carved from it), validation as test", read)
