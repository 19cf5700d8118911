"""EGTEA Gaze+ from its official ``action_annotation`` files.

Files (``action_annotation.zip`` of the dataset, found under ``--official`` or the root):

* ``train_split<N>.txt`` / ``test_split<N>.txt`` (N = 1, 2, 3: ``--fold``): one action clip per
  line, ``<clip name> <action id> <verb id> <noun id>`` (ids 1-based; a few lines name more
  than one noun), e.g. ``OP01-R01-PastaSalad-1002316-1004005-F024051-F024101 22 1 17``;
* ``action_idx.txt``, ``verb_idx.txt``, ``noun_idx.txt``: ``<name words> <id>`` per line.

A clip name is ``<video>-<start ms>-<end ms>-F<start frame>-F<end frame>``; ``<video>`` is the
session (``<participant>-<recipe id>-<recipe>``, e.g. ``OP01-R01-PastaSalad``). Media, per clip:

* the session video ``<video>.mp4`` anywhere under the root (the dataset's raw videos, 24 fps):
  the action is the segment ``[start ms, end ms)`` of it, so recognition and anticipation both
  work (anticipation reads the seconds before the clip);
* else the trimmed clip ``<clip name>.mp4`` (``cropped_clips/<video>/...``): the whole file is the
  segment, recognition only.

Labels are the action names of ``action_idx.txt`` in its id order (106 actions); the group is
the participant, so a val split carved from train keeps participants apart.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from actcli.data.formats import Annotated, Format, Options, find_list
from actcli.errors import UserError
from actcli.fileio import read_text

CLIP = re.compile(r"^(?P<video>.+)-(?P<start>\d+)-(?P<end>\d+)-F(?P<first>\d+)-F(?P<last>\d+)$")


def parse_clip(name: str) -> tuple[str, float, float]:
    """``OP01-R01-PastaSalad-1002316-1004005-F024051-F024101`` -> ``("OP01-R01-PastaSalad", 1002.316, 1004.005)``."""
    match = CLIP.match(name)
    if match is None:
        raise ValueError(f"clip name {name!r} is not <video>-<start ms>-<end ms>-F<frame>-F<frame>")
    return match["video"], int(match["start"]) / 1000.0, int(match["end"]) / 1000.0


def read_index(path: Path) -> dict[int, str]:
    """``<name words> <id>`` lines -> ``{id: name}``; one error line for a malformed one."""
    names: dict[int, str] = {}
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        name, _, index = line.strip().rpartition(" ")
        if not name or not index.isdigit():
            raise UserError(f"{path} line {number}: expected '<name> <id>', got {line.strip()!r}")
        names[int(index)] = name.strip()
    if not names:
        raise UserError(f"{path} lists no class")
    return names


def read_split(path: Path, actions: dict[int, str]) -> list[tuple[str, str, int, int]]:
    """``(clip name, action name, verb id, noun id)`` per line of a split file (ids 1-based as in the file)."""
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 4 or not all(p.isdigit() for p in parts[1:]):
            raise UserError(f"{path} line {number}: expected '<clip name> <action id> <verb id> <noun id>'")
        action = int(parts[1])
        if action not in actions:
            raise UserError(f"{path} line {number}: action {action} is not in action_idx.txt")
        try:
            parse_clip(parts[0])
        except ValueError as exc:
            raise UserError(f"{path} line {number}: {exc}") from None
        rows.append((parts[0], actions[action], int(parts[2]), int(parts[3])))
    return rows


def read(root: Path, options: Options) -> Annotated:
    if options.fold not in (1, 2, 3):
        raise UserError("--fold picks EGTEA Gaze+'s official split: 1, 2 or 3")
    index_path = find_list(root, options, ("action_idx.txt",), "EGTEA Gaze+'s action_idx.txt")
    folder = index_path.parent
    actions = read_index(index_path)
    classes = [actions[i] for i in sorted(actions)]
    if len(set(classes)) != len(classes):
        raise UserError(f"{index_path}: two actions share a name")
    videos = {p.stem: p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() == ".mp4"}
    rows, missing = [], []
    for split in ("train", "test"):
        path = folder / f"{split}_split{options.fold}.txt"
        if not path.is_file():
            raise UserError(f"{path} not found; it comes with action_idx.txt in action_annotation.zip")
        for clip, action, verb, noun in read_split(path, actions):
            video, start, end = parse_clip(clip)
            row = {"label": action, "group": video.split("-")[0], "split": split, "verb": verb - 1, "noun": noun - 1}
            if video in videos:
                rows.append({"path": videos[video], "start": start, "end": end, **row})
            elif clip in videos:
                rows.append({"path": videos[clip], "start": float("nan"), "end": float("nan"), **row})
            else:
                missing.append(f"{video}.mp4 (or {clip}.mp4)")
    table = pd.DataFrame(rows, columns=["path", "label", "group", "start", "end", "split", "verb", "noun"])
    if table["start"].isna().all():
        table = table.drop(columns=["start", "end"])
    return Annotated(table, classes, sorted(set(missing)))


FORMAT = Format(
    "egtea", "<root>/<session>.mp4 (or cropped_clips/<session>/<clip>.mp4) + action_annotation/*.txt",
    "https://cbs.ic.gatech.edu/fpv/ (videos and action_annotation.zip)",
    "official train/test split 1-3 (--fold), val carved from train by participant", read)
