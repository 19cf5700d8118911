"""Each dataset format: a tiny tree in its exact layout (official split/label files, tiny real
videos), then annotate, train one epoch and test through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import TRAIN_FLAGS

from actcli.data.synthetic import SyntheticSpec, render_clip, write_video
from actcli.report import read_report

SMALL = SyntheticSpec(frames=12, width=48, height=40)
MOTIONS = ("MoveLeft", "MoveRight", "MoveUp")


def _video(path: Path, motion: str, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, render_clip(motion, seed % 5 + 1, seed, SMALL))


def _run(cli, workdir: Path, dataset: str, root: Path, *annotate: str) -> dict:
    out = cli("annotate", "--dataset", dataset, "--root", root, *annotate).output
    cli("train", "--dataset", dataset, "--root", root, "--epochs", "1", "--experiment", dataset, *TRAIN_FLAGS)
    cli("test", "--experiment", dataset, "--report", workdir / f"{dataset}.json")
    folder = workdir / "annotations" / dataset
    splits = {s: pd.read_csv(folder / f"{s}.csv") for s in ("train", "val", "test")}
    return {"output": " ".join(out.split()), "splits": splits, "labels": pd.read_csv(folder / "labels.csv"),
            "test": read_report(workdir / f"{dataset}.json").metrics}


def _no_shared_groups(splits: dict[str, pd.DataFrame]) -> bool:
    groups = [set(t["group"]) for t in splits.values()]
    return not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])


def test_ucf101_official_folds(cli, workdir):
    root = workdir / "UCF-101"
    lists = workdir / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{i} {m}\n" for i, m in enumerate(MOTIONS, 1)))
    for fold in (1, 2, 3):
        train, test = [], []
        for i, motion in enumerate(MOTIONS, 1):
            for g in range(1, 6):
                rel = f"{motion}/v_{motion}_g{g:02d}_c01.avi"
                _video(root / rel, motion, g)
                (test if g == fold else train).append(f"{rel} {i}" if g != fold else rel)
        (lists / f"trainlist0{fold}.txt").write_text("\n".join(x for x in train) + "\n")
        (lists / f"testlist0{fold}.txt").write_text("\n".join(x for x in test) + "\n")
    result = _run(cli, workdir, "ucf101", root, "--official", lists, "--fold", "2")
    splits = result["splits"]
    assert set(splits["test"]["group"]) == {"g02"} and len(splits["test"]) == 3  # fold 2 tests on group 2
    assert len(splits["train"]) + len(splits["val"]) == 12 and len(splits["val"]) > 0 and _no_shared_groups(splits)
    assert result["labels"]["name"].tolist() == list(MOTIONS) and result["test"]["clips"] == 3
    assert "fold" in cli.fails("annotate", "--dataset", "ucf101", "--root", root, "--official", lists, "--fold", "4")
    cli("annotate", "--dataset", "ucf101", "--fold", "0")  # actcli's own group-aware split; the root is remembered
    own = {s: pd.read_csv(workdir / "annotations" / "ucf101" / f"{s}.csv") for s in ("train", "val", "test")}
    assert sum(len(t) for t in own.values()) == 15 and _no_shared_groups(own) and set(own["test"]["group"]) != {"g02"}


def test_hmdb51_official_splits(cli, workdir):
    root, lists = workdir / "hmdb51_org", workdir / "testTrainMulti_7030_splits"
    lists.mkdir()
    for motion in MOTIONS:
        label = motion.lower()
        lines = []
        for clip in range(6):
            name = f"Movie{clip // 2}_{label}_f_cm_np1_fr_med_{clip % 2}.avi"  # two clips per source movie
            _video(root / label / name, motion, clip)
            lines.append(f"{name} {(1, 1, 2, 0, 1, 2)[clip]}")
        for fold in (1, 2, 3):
            (lists / f"{label}_test_split{fold}.txt").write_text("\n".join(lines) + "\n")
    result = _run(cli, workdir, "hmdb51", root, "--official", lists, "--fold", "1")
    splits = result["splits"]
    assert len(splits["test"]) == 6 and len(splits["train"]) + len(splits["val"]) == 9  # tag 0 unused
    assert sorted(result["labels"]["name"]) == sorted(m.lower() for m in MOTIONS) and result["test"]["clips"] == 6
    cli("annotate", "--dataset", "hmdb51", "--fold", "0")  # actcli's own split: clips of one source video together
    own = pd.concat([pd.read_csv(workdir / "annotations" / "hmdb51" / f"{s}.csv").assign(split=s)
                     for s in ("train", "val", "test")])
    # the source video is the name before _<class>_<tags>_<n>: Movie0..2, shared by the three classes' clips
    assert len(own) == 18 and (own.groupby("group")["split"].nunique() == 1).all() and own["group"].nunique() == 3


@pytest.mark.parametrize("flat", [False, True])
def test_kinetics_csv_and_downloader_names_with_missing_videos(cli, workdir, flat):
    root, lists = workdir / "k400", workdir / "k400" / "annotations"
    lists.mkdir(parents=True)
    rows = {"train": [], "validate": []}
    for i, motion in enumerate(MOTIONS):
        for clip in range(5):
            youtube_id = f"yt{motion[:6]}{clip:03d}"
            split = "validate" if clip == 4 else "train"
            rows[split].append((motion.lower(), youtube_id, 10 * clip, 10 * clip + 10, split))
            if clip == 3 and i == 0:
                continue  # deleted from YouTube: never downloaded
            name = f"{youtube_id}_{10 * clip:06d}_{10 * clip + 10:06d}.mp4"
            _video(root / "videos" / (name if flat else f"{motion.lower()}/{name}"), motion, clip)
    for split, entries in rows.items():
        pd.DataFrame(entries, columns=["label", "youtube_id", "time_start", "time_end", "split"]).to_csv(
            lists / f"{split}.csv", index=False)
    result = _run(cli, workdir, "kinetics400", root)
    assert "1 listed video(s) missing" in result["output"]
    splits = result["splits"]
    assert len(splits["test"]) == 3 and len(splits["train"]) + len(splits["val"]) == 11 and _no_shared_groups(splits)
    report = json.loads((workdir / "annotations" / "kinetics400" / "report-annotate.json").read_text())
    assert report["metrics"]["missing"] == 1


def test_something_something_v2_json_templates(cli, workdir):
    root = workdir / "20bn-something-something-v2"
    labels = {"Pushing something from left to right": "0", "Pushing something from right to left": "1",
              "Lifting something up": "2"}
    motions = dict(zip(labels, ("MoveRight", "MoveLeft", "MoveUp"), strict=True))
    entries = {"train.json": [], "validation.json": []}
    for c, template in enumerate(labels):
        bracketed = template.replace("something", "[something]")
        for k in range(5):
            video_id = str(1000 + 10 * c + k)
            _video(root / f"{video_id}.webm", motions[template], k)
            entries["validation.json" if k == 4 else "train.json"].append(
                {"id": video_id, "label": bracketed.replace("[something]", "a cup"), "template": bracketed,
                 "placeholders": ["a cup"]})
    labels_dir = workdir / "ssv2-labels"
    labels_dir.mkdir()
    (labels_dir / "labels.json").write_text(json.dumps(labels))
    for name, items in entries.items():
        (labels_dir / name).write_text(json.dumps(items))
    result = _run(cli, workdir, "ssv2", root, "--official", labels_dir)
    assert result["labels"]["name"].tolist() == list(labels)  # id order, brackets removed
    assert len(result["splits"]["test"]) == 3 and result["test"]["clips"] == 3


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_your_own_list_with_clip_times_and_groups(cli, workdir, kind):
    root = workdir / "my clips"
    rows = []
    for motion in MOTIONS:
        for take in range(4):
            rel = f"takes/{motion}_{take}.mp4"
            _video(root / rel, motion, take)
            rows.append({"path": rel, "label": motion, "start": 0.04, "end": 0.44, "group": f"person{take}"})
    listing = workdir / f"clips.{kind}"
    if kind == "csv":
        pd.DataFrame(rows).to_csv(listing, index=False)
    else:
        listing.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = _run(cli, workdir, "list", root, "--list", listing, "--split", "50", "25", "25")
    splits = result["splits"]
    assert _no_shared_groups(splits) and sum(len(t) for t in splits.values()) == 12
    assert {"start", "end"} <= set(splits["train"].columns) and result["test"]["clips"] == len(splits["test"])
    line = cli.fails("train", "--dataset", "list", "--freeze", "backbone", "--no-augment", *TRAIN_FLAGS)
    assert "start/end" in line  # one cached feature per file cannot serve clips cut from it
    listing.write_text(listing.read_text().replace("takes/MoveUp_3.mp4", "takes/gone.mp4"))
    line = cli.fails("annotate", "--dataset", "list", "--root", root, "--list", listing)
    assert "gone.mp4" in line and "line" in line


def test_folder_tree_with_any_video_extension(cli, workdir):
    root = workdir / "mine"
    for motion in MOTIONS:
        for k, ext in enumerate((".mp4", ".mkv", ".webm", ".mov", ".avi")):
            _video(root / motion / f"{motion}_{k}{ext}", motion, k)
    result = _run(cli, workdir, "folder", root)
    assert sum(len(t) for t in result["splits"].values()) == 15
    assert {Path(p).suffix for t in result["splits"].values() for p in t["path"]} == {
        ".mp4", ".mkv", ".webm", ".mov", ".avi"}


def test_datasets_command_lists_every_format(cli, workdir, tiny_dataset):
    shutil.copytree(tiny_dataset, workdir / "data" / "synthetic")
    out = cli("datasets").output
    for name in ("ucf50", "ucf101", "hmdb51", "kinetics400", "kinetics600", "kinetics700", "ssv2", "list", "folder",
                 "synthetic", "ek100"):
        assert name in out
    assert "found" in out


def test_list_rows_past_the_end_of_their_video_are_left_out_or_skipped(cli, workdir):
    """A row at 30-40 s on a 0.48 s file: annotate --probe leaves it out and counts it; without --probe
    train and test skip it and count it (it used to be read as the last frame, silently)."""
    root = workdir / "clips"
    rows = []
    for motion in MOTIONS:
        for take in range(3):
            rel = f"{motion}_{take}.mp4"
            _video(root / rel, motion, take)
            rows.append({"path": rel, "label": motion, "start": 0.0, "end": 0.4,
                         "split": ["train", "val", "test"][take]})
    rows[2] = {**rows[2], "start": 30.0, "end": 40.0}  # MoveLeft's test clip
    rows[1] = {**rows[1], "start": 30.0, "end": 40.0}  # MoveLeft's val clip
    listing = workdir / "clips.csv"
    pd.DataFrame(rows).to_csv(listing, index=False)
    out = cli("annotate", "--dataset", "list", "--root", root, "--list", listing, "--probe").output
    assert "2 clip(s) start after the end of their video" in " ".join(out.split())
    report = read_report(workdir / "annotations" / "list" / "report-annotate.json").metrics
    assert report["windows_past_end"] == 2 and report["split_sizes"] == {"train": 3, "val": 2, "test": 2}
    cli("annotate", "--dataset", "list", "--root", root, "--list", listing)  # not probed: rows kept
    cli("train", "--dataset", "list", "--epochs", "1", "--experiment", "late", *TRAIN_FLAGS)
    train = next((workdir / "outputs" / "runs" / "late").glob("*/report-train.json"))
    assert read_report(train).metrics["skipped_clips"] == 1
    assert "starts after the end" in " ".join(read_report(train).metrics["skipped_files"])
    out = cli("test", "--experiment", "late", "--report", workdir / "late.json").output
    tested = read_report(workdir / "late.json").metrics
    assert tested["clips"] == 2 and tested["skipped_clips"] == 1 and "starts after the end" in " ".join(out.split())
