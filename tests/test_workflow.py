"""The whole workflow end to end through the CLI on tiny real videos."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import TRAIN_FLAGS, no_temp_files
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from actcli.models.checkpoint import load_file
from actcli.report import read_report


def _run_dir(workdir: Path, experiment: str) -> Path:
    (run,) = (workdir / "outputs" / "runs" / experiment).iterdir()
    return run


def test_download_synthetic_writes_ucf_layout_and_remembers_root(cli, workdir):
    cli("download", "synthetic", "--dest", "videos", "--classes", "2", "--clips-per-class", "4", "--groups", "2")
    names = sorted(p.relative_to(workdir / "videos").as_posix() for p in (workdir / "videos").rglob("*.avi"))
    assert names == [
        "MoveLeft/v_MoveLeft_g01_c01.avi", "MoveLeft/v_MoveLeft_g01_c02.avi",
        "MoveLeft/v_MoveLeft_g02_c01.avi", "MoveLeft/v_MoveLeft_g02_c02.avi",
        "MoveRight/v_MoveRight_g01_c01.avi", "MoveRight/v_MoveRight_g01_c02.avi",
        "MoveRight/v_MoveRight_g02_c01.avi", "MoveRight/v_MoveRight_g02_c02.avi",
    ]
    registry = json.loads((workdir / "outputs" / "datasets.json").read_text())
    assert Path(registry["synthetic"]) == (workdir / "videos").resolve()
    # Same options again: nothing to do, no error. Other options into the same folder: refused.
    cli("download", "synthetic", "--dest", "videos", "--classes", "2", "--clips-per-class", "4", "--groups", "2")
    line = cli.fails("download", "synthetic", "--dest", "videos", "--classes", "3")
    assert "other options" in line


def test_annotate_writes_group_aware_splits(cli, annotated, workdir):
    folder = workdir / "annotations" / "synthetic"
    labels = pd.read_csv(folder / "labels.csv")
    assert labels["name"].tolist() == ["MoveLeft", "MoveRight", "MoveUp"]
    splits = {name: pd.read_csv(folder / f"{name}.csv") for name in ("train", "val", "test")}
    groups = [set(table["group"]) for table in splits.values()]
    assert groups[0].isdisjoint(groups[1]) and groups[0].isdisjoint(groups[2]) and groups[1].isdisjoint(groups[2])
    assert sum(len(t) for t in splits.values()) == 18
    assert all(t["label"].nunique() == 3 for t in splits.values())
    report = read_report(folder / "report-annotate.json")
    assert report.metrics["shared_groups"] == 0


def test_train_test_benchmark_predict(cli, annotated, workdir):
    cli("train", "--dataset", "synthetic", "--epochs", "2", "--experiment", "e2e", *TRAIN_FLAGS)
    run = _run_dir(workdir, "e2e")
    for name in ("checkpoints/best.pt", "checkpoints/last.pt", "config.toml", "report-train.json"):
        assert (run / name).is_file(), name
    checkpoint = load_file(run / "checkpoints" / "best.pt")
    assert checkpoint["model"] == "x3d_xs"
    assert checkpoint["clip"] == {"frames": 4, "stride": 2, "crop": 32}
    assert checkpoint["classes"] == ["MoveLeft", "MoveRight", "MoveUp"]
    assert checkpoint["settings"]["train"]["epochs"] == 2

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    for tag in ("train/loss_step", "train/loss", "train/accuracy", "val/loss", "val/accuracy", "lr"):
        assert tag in scalars, tag
    assert [e.step for e in events.Scalars("val/accuracy")] == [1, 2]
    assert len(events.Scalars("train/loss_step")) == 2 * 2  # 6 train clips / batch 3, two epochs

    train_report = read_report(run / "report-train.json")
    assert train_report.metrics["epochs"] == 2 and len(train_report.metrics["history"]) == 2

    # The resolved config reproduces the run's settings when passed back with --config.
    shown = cli("config", "show", "--config", run / "config.toml").output
    assert "train.epochs" in shown and "file:" in shown

    cli("test", "--experiment", "e2e")
    report = read_report(run / "report-test-test.json")
    metrics = report.metrics
    for key in ("top1", "top5", "mean_class_accuracy", "f1_macro", "f1_weighted"):
        assert 0.0 <= metrics[key] <= 1.0
    assert metrics["top5"] == 1.0  # 3 classes: the label is always among the top 5
    assert set(metrics["per_class"]) == {"MoveLeft", "MoveRight", "MoveUp"}
    confusion = pd.read_csv(run / "confusion-test.csv", index_col=0)
    assert confusion.values.sum() == metrics["clips"]
    assert (run / "confusion-test.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"command", "created", "environment", "config", "metrics"} <= set(report.model_dump())

    cli("benchmark", "--experiment", "e2e", "--batch-size", "2", "--warmup", "1", "--runs", "3")
    bench = read_report(run / "report-benchmark.json").metrics
    for key in ("model_ms_per_sample", "end_to_end_ms_per_sample"):
        assert 0 < bench[key]["p50"] <= bench[key]["p95"]
    assert bench["end_to_end_ms_per_sample"]["p50"] > 0 and bench["throughput_clips_per_s"] > 0
    # The prototype's way is timed alongside; the ratios are its p50s over actcli's.
    ref = bench["reference"]
    model_p50 = bench["model_ms_per_sample"]["p50"]
    assert ref["model_speedup"] == pytest.approx(ref["model_ms_per_sample"]["p50"] / model_p50)
    assert ref["end_to_end_ms_per_sample"]["p50"] > 0
    assert bench["precision"] in ("32", "bf16")  # OpenVINO on the CPU where installed, else PyTorch's steps
    assert "openvino" in bench["optimizations"] if bench["runtime"] == "openvino" else "channels_last_3d" in bench[
        "optimizations"]

    video = annotated / "MoveUp" / "v_MoveUp_g01_c01.avi"
    out = cli("predict", video, "--weights", run / "checkpoints" / "best.pt", "--top-k", "2",
              "--report", workdir / "predict.json").output
    assert "MoveUp" in out or "MoveLeft" in out
    top = read_report(workdir / "predict.json").metrics["top"]
    assert len(top) == 2 and top[0]["probability"] >= top[1]["probability"]
    assert no_temp_files(workdir)


def test_benchmark_zoo_model_without_dataset(cli, workdir):
    cli("benchmark", "--model", "x3d_xs", "--frames", "4", "--crop", "32", "--runs", "2", "--warmup", "1",
        "--report", "bench.json")
    cli("benchmark", "--model", "r3d_tiny", "--no-reference", "--precision", "32", "--decoder", "pyav",
        "--runs", "2", "--warmup", "1", "--report", "plain.json")
    plain = read_report(workdir / "plain.json").metrics
    assert plain["reference"] is None and (plain["precision"], plain["decoder"]) == ("32", "pyav")
    report = read_report(workdir / "bench.json")
    assert report.config["videos"].startswith("generated")
    assert report.environment.threads >= 1


def test_multi_view_test_reports_clip_and_video_accuracy(cli, annotated, workdir):
    cli("train", "--dataset", "synthetic", "--epochs", "1", "--experiment", "views", *TRAIN_FLAGS)
    cli("test", "--experiment", "views", "--views", "3x3", "--report", "views.json")
    metrics = read_report(workdir / "views.json").metrics
    assert metrics["views_per_video"] == 9
    for key in ("top1", "clip_top1", "top5", "clip_top5"):
        assert 0.0 <= metrics[key] <= 1.0
    cli("test", "--experiment", "views", "--report", "single.json")
    single = read_report(workdir / "single.json").metrics
    assert single["views_per_video"] == 1 and single["top1"] == single["clip_top1"]
    line = cli.fails("test", "--experiment", "views", "--views", "3x4")
    assert "test.views" in line
