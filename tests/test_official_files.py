"""Official split files under the names and encodings people actually have, read by annotate.

The trees hold empty files with the publishers' names (annotate reads names only); the list
files are written as distributed: Kinetics' ``kinetics-400_train.csv`` and 2017 ``kinetics_train.csv``,
SSv2's ``something-something-v2-*.json``, UCF101's ``HandstandPushups`` folder beside
``v_HandStandPushups_*`` names, HMDB51's meta-tagged clip names, and UTF-8 byte-order marks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from actcli.data.formats import Options, get_format
from actcli.data.formats.hmdb51 import source_video

BOM = "\ufeff"


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def _splits(workdir: Path, dataset: str) -> dict[str, pd.DataFrame]:
    folder = workdir / "annotations" / dataset
    return {s: pd.read_csv(folder / f"{s}.csv") for s in ("train", "val", "test")}


# Real HMDB51 names: one source video (Pirates_5, April_09) gives clips with different meta tags.
HMDB = {
    "climb": ["April_09_climb_f_cm_np1_ba_med_0.avi", "April_09_climb_u_nm_np1_fr_goo_1.avi",
              "Pirates_5_climb_f_nm_np2_le_bad_0.avi", "Pirates_5_climb_h_cm_np1_ri_med_4.avi"],
    "climb_stairs": ["April_09_climb_stairs_f_cm_np1_ba_med_0.avi", "Hitch_climb_stairs_u_nm_np1_fr_goo_2.avi",
                     "Pirates_5_climb_stairs_f_nm_np1_le_med_1.avi", "Hitch_climb_stairs_f_cm_np1_ba_bad_3.avi"],
    "drink": ["Pirates_5_drink_u_nm_np2_le_med_2.avi", "Pirates_5_drink_u_nm_np1_ri_med_3.avi",
              "Hitch_drink_h_nm_np1_fr_goo_0.avi", "April_09_drink_u_cm_np1_fr_goo_5.avi"],
}


def test_hmdb51_source_video_is_the_name_before_class_and_tags():
    assert source_video("Pirates_5_drink_u_nm_np2_le_med_2.avi", "drink") == "Pirates_5"
    assert source_video("Pirates_5_drink_u_nm_np1_ri_med_3.avi", "drink") == "Pirates_5"
    assert source_video("April_09_climb_stairs_f_cm_np1_ba_med_0.avi", "climb_stairs") == "April_09"
    assert source_video("20060723sfjffbartsinger_wave_f_cm_np1_ba_med_0.avi", "wave") == "20060723sfjffbartsinger"
    assert source_video("no_tags_here_3.avi") == "no_tags_here"


def test_hmdb51_val_shares_no_source_video_with_train_and_ids_follow_sorted_names(cli, workdir):
    root, lists = workdir / "hmdb51_org", workdir / "splits"
    for label, names in HMDB.items():
        for name in names:
            _touch(root / label / name)
        tags = [1, 1, 1, 2]  # three train clips, one test clip per class
        _touch(lists / f"{label}_test_split1.txt")
        (lists / f"{label}_test_split1.txt").write_text(
            BOM + "".join(f"{n} {t}\n" for n, t in zip(names, tags, strict=True)))
    cli("annotate", "--dataset", "hmdb51", "--root", root, "--official", lists, "--split", "50", "50", "0")
    splits = _splits(workdir, "hmdb51")
    assert not set(splits["train"]["group"]) & set(splits["val"]["group"])
    assert set(splits["train"]["group"]) | set(splits["val"]["group"]) <= {"April_09", "Pirates_5", "Hitch"}
    labels = pd.read_csv(workdir / "annotations" / "hmdb51" / "labels.csv")
    assert labels["name"].tolist() == sorted(HMDB)  # climb, climb_stairs, drink (file names sort otherwise)


@pytest.mark.parametrize("names", [("kinetics-400_train.csv", "kinetics-400_val.csv"),
                                   ("kinetics_train.csv", "kinetics_val.csv"), ("train.csv", "validate.csv")])
def test_kinetics_csvs_under_their_distributed_names_with_a_bom(cli, workdir, names):
    root = workdir / "kinetics"
    header = "label,youtube_id,time_start,time_end,split\n"
    train, test = [header], [header]
    for c, label in enumerate(("abseiling", "air drumming")):
        for k in range(4):
            youtube_id = f"id{c}{k}xxxxxxx"
            _touch(root / "videos" / label / f"{youtube_id}_{10 * k:06d}_{10 * k + 10:06d}.mp4")
            (test if k == 3 else train).append(f'"{label}",{youtube_id},{10 * k},{10 * k + 10},train\n')
    (root / names[0]).write_text(BOM + "".join(train))
    (root / names[1]).write_text(BOM + "".join(test))
    # A Kinetics-600 file beside it must not be taken for the 400's.
    (root / "kinetics-600_train.csv").write_text(header + '"yoga",zzzzzzzzzzz,0,10,train\n')
    cli("annotate", "--dataset", "kinetics400", "--root", root)
    splits = _splits(workdir, "kinetics400")
    assert len(splits["test"]) == 2 and len(splits["train"]) + len(splits["val"]) == 6
    assert pd.read_csv(workdir / "annotations" / "kinetics400" / "labels.csv")["name"].tolist() == [
        "abseiling", "air drumming"]


def test_something_something_v2_prefixed_json_names_with_a_bom(cli, workdir):
    root = workdir / "20bn-something-something-v2"
    labels = {"Pushing something from left to right": "0", "Lifting something up": "1"}
    entries: dict[str, list] = {"train": [], "validation": []}
    for c, template in enumerate(labels):
        for k in range(4):
            video_id = str(100 + 10 * c + k)
            _touch(root / f"{video_id}.webm")
            entries["validation" if k == 3 else "train"].append(
                {"id": video_id, "template": template.replace("something", "[something]"), "placeholders": ["x"]})
    lists = workdir / "labels"
    lists.mkdir()
    (lists / "something-something-v2-labels.json").write_text(BOM + json.dumps(labels))
    for name, items in entries.items():
        (lists / f"something-something-v2-{name}.json").write_text(BOM + json.dumps(items))
    cli("annotate", "--dataset", "ssv2", "--root", root, "--official", lists)
    splits = _splits(workdir, "ssv2")
    assert len(splits["test"]) == 2 and len(splits["train"]) + len(splits["val"]) == 6


def test_ucf101_class_folder_in_another_letter_case_is_matched_with_a_warning(cli, workdir):
    root, lists = workdir / "UCF-101", workdir / "ucfTrainTestlist"
    classes = ["HandstandPushups", "JumpRope"]
    for name in classes:
        folder = "HandStandPushups" if name == "HandstandPushups" else name  # this copy's folder differs in case
        stem = "HandStandPushups" if name == "HandstandPushups" else name  # as in the real file names
        for g in range(1, 5):
            _touch(root / folder / f"v_{stem}_g{g:02d}_c01.avi")
    lists.mkdir()
    (lists / "classInd.txt").write_text(BOM + "1 HandstandPushups\r\n2 JumpRope\r\n")
    train = [f"HandstandPushups/v_HandStandPushups_g{g:02d}_c01.avi 1" for g in (1, 2, 3)] + [
        f"JumpRope/v_JumpRope_g{g:02d}_c01.avi 2" for g in (1, 2, 3)]
    (lists / "trainlist01.txt").write_text(BOM + "\r\n".join(train) + "\r\n")
    (lists / "testlist01.txt").write_text(
        "HandstandPushups/v_HandStandPushups_g04_c01.avi\nJumpRope/v_JumpRope_g04_c01.avi\n")
    out = " ".join(cli("annotate", "--dataset", "ucf101", "--root", root, "--official", lists).output.split())
    assert "'HandstandPushups', found as 'HandStandPushups'" in out
    splits = _splits(workdir, "ucf101")
    assert (splits["test"]["label"] == "HandstandPushups").sum() == 1
    assert ((splits["train"]["label"] == "HandstandPushups").sum() + (splits["val"]["label"] == "HandstandPushups")
            .sum()) == 3


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_user_list_with_a_bom(workdir, kind):
    root = workdir / "clips"
    rows = [{"path": f"{label}_{k}.mp4", "label": label} for label in ("a", "b") for k in range(3)]
    for row in rows:
        _touch(root / row["path"])
    listing = workdir / f"list.{kind}"
    if kind == "csv":
        listing.write_text(BOM + pd.DataFrame(rows).to_csv(index=False))
    else:
        listing.write_text(BOM + "".join(json.dumps(r) + "\n" for r in rows))
    read = get_format("user_list").read(root, Options(lists=listing))
    assert read.classes == ["a", "b"] and len(read.table) == 6


def test_annotation_csvs_and_config_with_a_bom(cli, annotated, workdir):
    folder = workdir / "annotations" / "synthetic"
    for name in ("labels.csv", "train.csv", "val.csv", "test.csv"):
        (folder / name).write_text(BOM + (folder / name).read_text())
    config = workdir / "actcli.toml"
    config.write_text(BOM + '[train]\nepochs = 1\n[data]\nframes = 4\nstride = 2\ncrop = 32\nworkers = 0\n')
    cli("train", "--config", config, "--dataset", "synthetic", "--model", "r3d_tiny", "--batch-size", "6",
        "--experiment", "bom")
    assert next((workdir / "outputs" / "runs" / "bom").glob("*/checkpoints/best.pt")).is_file()
