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
    """As many folds as groups is leave-one-group-out: fold k trains on every group but one and tests on it
    (UCF50's list has groups g01-g30: a few classes have more than the documented 25)."""
    groups = ucf50_table["group"].nunique()
    folds = group_folds(ucf50_table, groups)
    test_groups = [set(ucf50_table[f == "test"]["group"]) for f in folds]
    assert all(len(g) == 1 for g in test_groups) and set().union(*test_groups) == set(ucf50_table["group"])
    for fold in folds:
        assert ucf50_table[fold == "train"]["group"].nunique() == groups - 1 and set(fold) == {"train", "test"}
        assert shared_groups(ucf50_table, fold) == 0
    for fold in group_folds(ucf50_table, 25):  # 25 folds: every group not tested trains (it used to leave one out)
        tested = set(ucf50_table[fold == "test"]["group"])
        assert ucf50_table[fold == "train"]["group"].nunique() == groups - len(tested)
    with pytest.raises(UserError):
        group_folds(ucf50_table, 1000)
    with pytest.raises(UserError, match="between 2"):
        group_folds(ucf50_table, 1)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_every_accepted_fold_count_trains_and_tests(ucf50_table, k):
    folds = group_folds(ucf50_table, k)
    test_groups = [set(ucf50_table[f == "test"]["group"]) for f in folds]
    assert sum(len(g) for g in test_groups) == ucf50_table["group"].nunique()
    assert set().union(*test_groups) == set(ucf50_table["group"])
    for fold in folds:
        assert (fold == "train").sum() > 0 and (fold == "test").sum() > 0
        assert abs((fold == "test").mean() - 1 / k) < 0.05  # folds of about equal size
        assert ucf50_table[fold == "test"]["label"].nunique() == 50  # every class in every fold


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_clip_groups_are_stratified_within_one_clip(seed):
    """Each clip its own group (class folders without UCF names, user lists, the val carved from Kinetics):
    every class gets its share of every split to within one clip; a 10-clip class keeps 7 in train."""
    rows = [(f"class{c}", f"clip{c}_{i}") for c in range(10) for i in range(20)]
    rows += [("small", f"small_{i}") for i in range(10)]
    table = pd.DataFrame(rows, columns=["label", "group"])
    split = group_split(table, (70, 15, 15), seed)
    counts = pd.crosstab(table["label"], split)
    totals = counts.sum(axis=1)
    for name, share in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
        assert (abs(counts[name] - share * totals) <= 1).all(), counts
    assert counts.loc["small", "train"] == 7
    assert abs((split == "train").mean() - 0.70) < 0.01


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


def test_a_fold_trains_on_every_other_group_without_validation(cli, annotated, workdir):
    """annotate --folds 3 on 3 groups: fold k trains on 2 groups, has no val split (best = last epoch), tests on 1."""
    from conftest import TRAIN_FLAGS

    from actcli.report import read_report

    cli("annotate", "--dataset", "synthetic", "--folds", "3")
    fold = workdir / "annotations" / "synthetic" / "folds" / "fold01"
    train, val, test = (pd.read_csv(fold / f"{s}.csv") for s in ("train", "val", "test"))
    assert val.empty and train["group"].nunique() == 2 and test["group"].nunique() == 1
    for extra in ([], ["--freeze", "backbone", "--no-augment"]):  # full training, and the cached-feature path
        out = cli("train", "--dataset", "synthetic", "--annotations", fold, "--epochs", "2", "--experiment", "fold",
                  *TRAIN_FLAGS, *extra).output
        assert "no validation split" in out
    runs = sorted((workdir / "outputs" / "runs" / "fold").iterdir())
    metrics = read_report(runs[-1] / "report-train.json").metrics
    assert metrics["best_epoch"] == 2 and metrics["best_val_accuracy"] is None
    assert all(r["val_accuracy"] is None for r in metrics["history"])
    cli("test", "--weights", runs[0] / "checkpoints" / "best.pt", "--annotations", fold, "--report", workdir / "t.json")
    assert read_report(workdir / "t.json").metrics["clips"] == len(test)
