"""Faults during training: signals, a full disk, non-finite losses. Nothing finished is lost."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TRAIN_FLAGS, clean_env, extend_run

from actcli.models.checkpoint import load_file
from actcli.report import read_report

PYTHON_ACTCLI = [sys.executable, "-m", "actcli"]
SLOW = ["--dataset", "synthetic", "--model", "x3d_xs", "--frames", "4", "--stride", "2", "--crop", "48",
        "--batch-size", "1", "--workers", "0"]


def _run_dir(workdir: Path, experiment: str) -> Path:
    (run,) = (workdir / "outputs" / "runs" / experiment).iterdir()
    return run


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_after_a_step_saves_and_resumes(cli, annotated, workdir, sig):
    process = subprocess.Popen([*PYTHON_ACTCLI, "train", *SLOW, "--epochs", "50", "--experiment", "stopped"],
                               cwd=workdir, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(workdir.glob("outputs/runs/stopped/*/tensorboard/*")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the run is set up and training
    time.sleep(1.0)
    process.send_signal(sig)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + sig, out + err
    message = " ".join(err.split())
    assert f"stopped by {sig.name}" in message and "actcli train --resume" in message
    run = _run_dir(workdir, "stopped")
    saved = load_file(run / "checkpoints" / "last.pt")
    report = read_report(run / "report-train.json").metrics
    assert saved["interrupted"] == sig.name and report["interrupted"] == sig.name
    assert report["epochs"] == saved["epoch"] and saved["training"]["state"]["step"] >= 1
    if sig == signal.SIGINT:  # resume to the end of the next epoch
        extend_run(run, saved["epoch"] + 1)
        cli("train", "--resume", str(run))
        finished = read_report(run / "report-train.json").metrics
        assert finished["epochs"] == saved["epoch"] + 1 and finished["interrupted"] is None


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_full_disk_keeps_the_previous_checkpoint(cli, annotated, workdir):
    cli("train", "--dataset", "synthetic", "--epochs", "1", "--experiment", "full", *TRAIN_FLAGS)
    run = _run_dir(workdir, "full")
    last = run / "checkpoints" / "last.pt"
    extend_run(run, 2)
    before = last.read_bytes()
    # Files may grow to 64 kB only: TensorBoard events fit, a checkpoint does not, as on a full disk.
    done = subprocess.run([*PYTHON_ACTCLI, "train", "--resume", str(run)], cwd=workdir, env=clean_env(),
                          capture_output=True, text=True, preexec_fn=_limit_file_size(64_000), timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot write" in errors[0] and "is kept" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert last.read_bytes() == before and load_file(last)["epoch"] == 1  # intact and loadable
    assert not list(run.rglob(".*.tmp"))


def _features(root: Path, workdir: Path, poisoned: str | None = None) -> Path:
    folder = workdir / "features"
    for video in root.rglob("*.avi"):
        target = folder / video.relative_to(root).with_suffix(".npy")
        target.parent.mkdir(parents=True, exist_ok=True)
        values = np.random.default_rng(len(video.name)).random((16, 4), dtype=np.float32)
        if poisoned and video.parent.name == poisoned:
            values[:] = np.nan  # a broken feature extractor
        np.save(target, values)
    return folder


def test_nonfinite_loss_stops_with_the_step_or_is_skipped_and_counted(cli, annotated, workdir):
    args = ["--dataset", "synthetic", "--modalities", "features", *TRAIN_FLAGS]
    cli("train", *args, "--features", _features(annotated, workdir), "--epochs", "1", "--experiment", "nan")
    run = _run_dir(workdir, "nan")
    poisoned = sorted(p.name for p in annotated.iterdir())[0]
    _features(annotated, workdir, poisoned)  # the same files, now NaN for one class
    extend_run(run, 2)
    before = (run / "checkpoints" / "last.pt").read_bytes()
    line = cli.fails("train", "--resume", str(run))
    assert "not finite" in line and "at step" in line and "--skip-nonfinite" in line
    assert (run / "checkpoints" / "last.pt").read_bytes() == before  # the last good checkpoint is kept
    cli("train", *args, "--features", workdir / "features", "--epochs", "2", "--skip-nonfinite",
        "--experiment", "skipping")
    metrics = read_report(_run_dir(workdir, "skipping") / "report-train.json").metrics
    assert metrics["nonfinite_steps"] >= 2 and metrics["epochs"] == 2
    weights = load_file(_run_dir(workdir, "skipping") / "checkpoints" / "last.pt")["state_dict"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_nproc_run_stops_cleanly_on_sigterm(annotated, workdir):
    """--nproc: the launcher asks the workers to stop through a file (torchrun would kill them 30 s
    after a signal); they save, the launcher exits 143, and no process or temporary file is left."""
    process = subprocess.Popen([*PYTHON_ACTCLI, "train", *SLOW, "--epochs", "50", "--nproc", "2", "--experiment",
                                "nproc-stop"], cwd=workdir, env=clean_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(workdir.glob("outputs/runs/nproc-stop/*/tensorboard/*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 143, out + err
    assert "stopped by SIGTERM after epoch" in " ".join(err.split())  # rank 0's line: what was saved
    report = read_report(_run_dir(workdir, "nproc-stop") / "report-train.json").metrics
    assert report["interrupted"] == "SIGTERM"
    left = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "nproc-stop" not in left and "actcli-nproc" not in left
