"""Split logic on the real UCF50 file list, and annotation-table checks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from actcli.data.annotate import (
    clip_split,
    group_folds,
    group_of,
    group_split,
    load_classes,
    load_table,
    scan_folder_tree,
    shared_groups,
)
from actcli.errors import UserError

REPO = Path(__file__).resolve().parents[1]
UCF50_LIST = REPO / "annotations" / "ucf50" / "annotations.csv"


@pytest.fixture(scope="module")
def ucf50_table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Scan a tree of empty files laid out like the real UCF50 download (6,681 clips)."""
    root = tmp_path_factory.mktemp("ucf50") / "UCF50"  # a wrapper folder, as in the archive
    for rel in pd.read_csv(UCF50_LIST)["path"]:
        path = root / "UCF50" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return scan_folder_tree(root)


def test_group_of_reads_ucf_names():
    assert group_of("v_Basketball_g07_c03.avi") == "g07"
    assert group_of("v_Billards_g25_c01.avi") == "g25"
    assert group_of("clip.mp4") is None


def test_scan_reads_the_real_ucf50_list(ucf50_table):
    assert len(ucf50_table) == 6681
    assert ucf50_table["label"].nunique() == 50
    classes = sorted(ucf50_table["label"].unique())
    assert ucf50_table.groupby("label")["label_id"].first().tolist() == list(range(50))
    assert classes[0] == "BaseballPitch"
    assert ucf50_table["path"].iloc[0] == "BaseballPitch/v_BaseballPitch_g01_c01.avi"


def test_group_split_on_ucf50_has_no_shared_group_and_every_class(ucf50_table):
    split = group_split(ucf50_table, (70, 15, 15))
    assert shared_groups(ucf50_table, split) == 0
    shares = split.value_counts(normalize=True)
    for name, target in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
        assert abs(shares[name] - target) <= 0.02, (name, shares[name])
        assert ucf50_table[split == name]["label"].nunique() == 50
    assert split.equals(group_split(ucf50_table, (70, 15, 15)))  # deterministic


def test_clip_split_leaks_groups(ucf50_table):
    split = clip_split(ucf50_table, (70, 15, 15))
    keys = list(zip(ucf50_table["label"], ucf50_table["group"], strict=True))
    train_groups = {key for key, name in zip(keys, split, strict=True) if name == "train"}
    test_keys = [key for key, name in zip(keys, split, strict=True) if name == "test"]
    leaked = sum(key in train_groups for key in test_keys) / len(test_keys)
    assert leaked > 0.9  # the prototype's problem, reproduced


def test_leave_one_group_out_folds(ucf50_table):
    folds = group_folds(ucf50_table, 25)
    assert len(folds) == 25
    test_groups = [set(ucf50_table[f == "test"]["group"]) for f in folds]
    assert set().union(*test_groups) == set(ucf50_table["group"])
    assert all(shared_groups(ucf50_table, f) == 0 for f in folds)
    with pytest.raises(UserError):
        group_folds(ucf50_table, 1000)


def test_shipped_annotations_match_a_fresh_scan(ucf50_table):
    shipped = {name: pd.read_csv(REPO / "annotations" / "ucf50" / f"{name}.csv") for name in ("train", "val", "test")}
    split = group_split(ucf50_table, (70, 15, 15))
    for name, table in shipped.items():
        assert sorted(table["path"]) == sorted(ucf50_table[split == name]["path"])
    assert load_classes(REPO / "annotations" / "ucf50" / "labels.csv") == sorted(ucf50_table["label"].unique())


def test_load_table_errors_name_file_and_fix(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("video,label\na.avi,X\n")
    with pytest.raises(UserError, match="lacks column"):
        load_table(path)
    path.write_text("path,label\na.avi,X\nb.avi,\n")
    with pytest.raises(UserError, match="line 3"):
        load_table(path)
    with pytest.raises(UserError, match="not found"):
        load_table(tmp_path / "nope.csv")
