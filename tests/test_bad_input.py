"""Every bad input ends with one clear error line, exit status 1 and nothing half-written."""

from __future__ import annotations

import shutil

import pandas as pd
import torch
from conftest import TRAIN_FLAGS, no_temp_files

from actcli.report import read_report


def test_missing_dataset_root(cli, workdir):
    line = cli.fails("annotate", "--dataset", "synthetic", "--root", "nowhere")
    assert "nowhere" in line and "--root" in line


def test_unknown_dataset_root_not_downloaded(cli, workdir):
    line = cli.fails("annotate", "--dataset", "hmdb51")
    assert "actcli download hmdb51" in line


def test_empty_class_folder(cli, dataset_copy):
    (dataset_copy / "Empty").mkdir()
    line = cli.fails("annotate", "--dataset", "synthetic")
    assert "Empty" in line and "no videos" in line


def test_csv_with_missing_columns(cli, annotated, workdir):
    train_csv = workdir / "annotations" / "synthetic" / "train.csv"
    pd.read_csv(train_csv).drop(columns=["label"]).to_csv(train_csv, index=False)
    line = cli.fails("train", "--dataset", "synthetic", "--epochs", "1", *TRAIN_FLAGS)
    assert "train.csv" in line and "label" in line
    assert not (workdir / "outputs" / "runs").exists()


def test_annotations_naming_missing_videos(cli, annotated):
    shutil.rmtree(annotated / "MoveUp")
    line = cli.fails("train", "--dataset", "synthetic", "--epochs", "1", *TRAIN_FLAGS)
    assert "missing" in line and "MoveUp" in line


def test_unknown_model_lists_known_ones(cli, annotated):
    line = cli.fails("train", "--dataset", "synthetic", "--model", "x3d_xxl", *TRAIN_FLAGS)
    assert "x3d_xs" in line and "x3d_l" in line


def test_corrupt_video_is_skipped_in_training_and_counted(cli, annotated, workdir):
    train = pd.read_csv(workdir / "annotations" / "synthetic" / "train.csv")
    broken = annotated / train["path"].iloc[0]
    broken.write_bytes(b"this is not a video")
    cli("train", "--dataset", "synthetic", "--epochs", "1", "--experiment", "corrupt", *TRAIN_FLAGS)
    (run,) = (workdir / "outputs" / "runs" / "corrupt").iterdir()
    metrics = read_report(run / "report-train.json").metrics
    assert metrics["skipped_clips"] == 1 and metrics["skipped_files"][0].endswith(train["path"].iloc[0])


def test_corrupt_video_in_predict(cli, annotated, workdir):
    bad = workdir / "bad.avi"
    bad.write_bytes(b"\x00" * 100)
    line = cli.fails("predict", bad, "--weights", "none.pt")
    assert "bad.avi" in line and "not a readable video" in line


def test_weights_for_another_class_count(cli, annotated, workdir):
    cli("train", "--dataset", "synthetic", "--epochs", "1", "--experiment", "three", *TRAIN_FLAGS)
    (run,) = (workdir / "outputs" / "runs" / "three").iterdir()
    labels = workdir / "annotations" / "synthetic" / "labels.csv"
    pd.DataFrame({"id": [0, 1], "name": ["MoveLeft", "MoveRight"]}).to_csv(labels, index=False)
    for table in ("train", "val", "test"):
        path = workdir / "annotations" / "synthetic" / f"{table}.csv"
        frame = pd.read_csv(path)
        frame[frame["label"] != "MoveUp"].to_csv(path, index=False)
    line = cli.fails("test", "--weights", run / "checkpoints" / "best.pt")
    assert "3 classes" in line and "2" in line
    # Training from it is transfer learning: the backbone loads, the 3-class head is replaced.
    out = cli("train", "--dataset", "synthetic", "--epochs", "1", "--experiment", "two",
              "--weights", run / "checkpoints" / "best.pt", *TRAIN_FLAGS).output
    assert "3-class head replaced" in " ".join(out.split())


def test_missing_and_unsafe_weights(cli, annotated, workdir):
    line = cli.fails("test", "--weights", "missing.pt")
    assert "missing.pt" in line
    torch.save({"model_state": {"w": torch.zeros(1)}, "code": print}, workdir / "evil.pt")
    line = cli.fails("train", "--dataset", "synthetic", "--weights", workdir / "evil.pt", *TRAIN_FLAGS)
    assert "refused" in line


def test_test_without_any_run(cli, annotated):
    line = cli.fails("test")
    assert "actcli train" in line


def test_bad_settings_value_names_key_and_source(cli, workdir, monkeypatch):
    monkeypatch.setenv("ACTCLI_TRAIN__EPOCHS", "zero")
    line = cli.fails("config", "show")
    assert "train.epochs" in line and "ACTCLI_TRAIN__EPOCHS" in line


def test_offline_kaggle_download(cli, workdir, monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # nothing listens: fails at once, like offline
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(workdir / "kaggle-cache"))
    line = cli.fails("download", "ucf50")
    assert "--from" in line
    assert no_temp_files(workdir)


def test_probe_leaves_unreadable_videos_out_of_the_splits(cli, dataset_copy, workdir):
    broken = dataset_copy / "MoveUp" / "v_MoveUp_g01_c01.avi"
    broken.write_bytes(b"garbage")
    out = cli("annotate", "--dataset", "synthetic", "--probe").output
    assert "unreadable video" in out
    table = pd.read_csv(workdir / "annotations" / "synthetic" / "annotations.csv")
    row = table[table["path"] == "MoveUp/v_MoveUp_g01_c01.avi"].iloc[0]
    assert not row["readable"] and row["split"] == "excluded"
    assert (table[table["readable"]]["frames"] == 16).all()
    folder = workdir / "annotations" / "synthetic"
    splits = pd.concat(pd.read_csv(folder / f"{name}.csv") for name in ("train", "val", "test"))
    assert "MoveUp/v_MoveUp_g01_c01.avi" not in set(splits["path"]) and len(splits) == 17


def test_kinetics_weights_offline(cli, annotated, monkeypatch, workdir):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.setenv("TORCH_HOME", str(workdir / "torch-home"))
    line = cli.fails("train", "--dataset", "synthetic", "--weights", "kinetics", *TRAIN_FLAGS)
    assert "--weights PATH" in line
    assert no_temp_files(workdir)


def test_checkpoint_of_another_model_names_that_model(cli, annotated, workdir):
    cli("train", "--dataset", "synthetic", "--epochs", "1", "--experiment", "tiny", "--model", "r3d_tiny", *TRAIN_FLAGS)
    (run,) = (workdir / "outputs" / "runs" / "tiny").iterdir()
    best = run / "checkpoints" / "best.pt"
    line = cli.fails("train", "--dataset", "synthetic", "--model", "x3d_xs", "--weights", best, *TRAIN_FLAGS)
    assert "holds a r3d_tiny model, not x3d_xs" in line and "--model r3d_tiny" in line
