"""Malformed tables and settings give one error line naming the file, line and field; unusual but
valid paths (spaces, non-ASCII) just work."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from conftest import TRAIN_FLAGS

from actcli.data.registry import remember_root
from actcli.report import read_report

TRAIN = ["train", "--dataset", "synthetic", "--epochs", "1", *TRAIN_FLAGS]


@pytest.mark.parametrize(("content", "expected"), [
    ("path,label,group\nGrow/a.avi,Grow,g01,extra\n", ["line 2", "4 field(s)", "header has 3"]),
    ("path,label,group\nGrow/a.avi,Grow,g01\nGrow/b.avi,Grow\n", ["line 3", "2 field(s)"]),
    ("path,label,group\n,Grow,g01\n", ["line 2", "empty path, label field"]),
    (b"path,label,group\nGrow/a.avi,Gr\xffow,g01\n", ["not UTF-8"]),
    ("", ["not a valid CSV"]),
])
def test_malformed_split_csv_names_file_line_and_field(cli, annotated, workdir, content, expected):
    train_csv = workdir / "annotations" / "synthetic" / "train.csv"
    if isinstance(content, bytes):
        train_csv.write_bytes(content)
    else:
        train_csv.write_text(content)
    line = cli.fails(*TRAIN)
    assert "train.csv" in line and all(e in line for e in expected), line
    assert not (workdir / "outputs" / "runs").exists()  # nothing half-written


@pytest.mark.parametrize(("labels", "expected"), [
    ("id,name\n0,Grow\n1,Grow\n2,MoveDown\n", "duplicate class name 'Grow'"),
    ("id,name\n0,Grow\n5,MoveDown\n2,MoveLeft\n", "ids must be 0..2"),
])
def test_bad_labels_file(cli, annotated, workdir, labels, expected):
    (workdir / "annotations" / "synthetic" / "labels.csv").write_text(labels)
    line = cli.fails(*TRAIN)
    assert "labels.csv" in line and expected in line


def test_split_label_unknown_to_labels_csv(cli, annotated, workdir):
    train_csv = workdir / "annotations" / "synthetic" / "train.csv"
    table = pd.read_csv(train_csv)
    table.loc[0, "label"] = "Juggling"
    table.to_csv(train_csv, index=False)
    line = cli.fails(*TRAIN)
    assert "train.csv" in line and "'Juggling'" in line and "labels.csv" in line


def test_malformed_toml_and_environment(cli, workdir, monkeypatch):
    config = workdir / "settings.toml"
    config.write_text("[train]\nepochs = 3\nlr = \n")
    line = cli.fails("config", "show", "--config", config)
    assert "settings.toml" in line and "line 3" in line
    config.write_text("[train]\nepochs = 'three'\n")
    line = cli.fails("config", "show", "--config", config)
    assert "train.epochs" in line and "settings.toml" in line
    monkeypatch.setenv("ACTCLI_DATA__WORKERS", "-2")
    line = cli.fails("config", "show")
    assert "data.workers" in line and "ACTCLI_DATA__WORKERS" in line


def test_paths_with_spaces_and_non_ascii_characters(cli, tiny_dataset, workdir):
    root = workdir / "my vidéos" / "données ñ"
    shutil.copytree(tiny_dataset, root)
    (root / "MoveUp").rename(root / "Move up ü")
    remember_root(workdir / "outputs", "synthetic", root)
    cli("annotate", "--dataset", "synthetic")
    labels = pd.read_csv(workdir / "annotations" / "synthetic" / "labels.csv")
    assert "Move up ü" in labels["name"].tolist()
    cli("train", "--dataset", "synthetic", "--epochs", "1", "--experiment", "unicode ñ", *TRAIN_FLAGS)
    cli("test", "--experiment", "unicode ñ", "--report", workdir / "rapport é.json")
    assert read_report(workdir / "rapport é.json").metrics["clips"] > 0


def test_outputs_path_that_is_a_file(cli, annotated, workdir, monkeypatch):
    (workdir / "not-a-folder").write_text("a file where the outputs folder should be")
    monkeypatch.setenv("ACTCLI_PATHS__OUTPUTS", str(workdir / "not-a-folder"))
    line = cli.fails("train", "--dataset", "synthetic", "--root", annotated, "--epochs", "1", *TRAIN_FLAGS)
    assert "not-a-folder" in line and "paths.outputs" in line
