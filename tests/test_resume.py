"""A run killed with SIGKILL mid-epoch and resumed with --resume auto ends bitwise identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from actcli.data.registry import remember_root
from actcli.data.synthetic import SyntheticSpec, generate
from actcli.models.checkpoint import load_file
from actcli.report import read_report

ACTCLI = Path(sys.executable).parent / "actcli"
ARGS = ["--dataset", "synthetic", "--model", "x3d_xs", "--epochs", "3", "--frames", "4", "--stride", "2",
        "--crop", "32", "--batch-size", "1", "--workers", "1", "--ema", "0.9", "--lr", "0.01"]


def _actcli(workdir: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTCLI_")}
    done = subprocess.run([str(ACTCLI), *args], cwd=workdir, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"actcli {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}"


def _last(workdir: Path, experiment: str) -> Path | None:
    found = list((workdir / "outputs" / "runs" / experiment).glob("*/checkpoints/last.pt"))
    return found[0] if found else None


def test_sigkill_then_resume_auto_matches_uninterrupted_run(workdir):
    root = workdir / "data" / "synthetic"
    generate(root, SyntheticSpec(classes=3, groups=3, clips_per_class=9, frames=16, width=80, height=64))
    remember_root(workdir / "outputs", "synthetic", root)
    _actcli(workdir, "annotate", "--dataset", "synthetic")

    _actcli(workdir, "train", *ARGS, "--experiment", "full")

    env = {k: v for k, v in os.environ.items() if not k.startswith("ACTCLI_")}
    process = subprocess.Popen([str(ACTCLI), "train", *ARGS, "--experiment", "killed"], cwd=workdir, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _last(workdir, "killed") is None and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # into epoch 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert load_file(_last(workdir, "killed"))["epoch"] == 1, "the kill should land in epoch 2"

    _actcli(workdir, "train", "--resume", "auto", "--experiment", "killed")

    full, resumed = load_file(_last(workdir, "full")), load_file(_last(workdir, "killed"))
    assert resumed["epoch"] == full["epoch"] == 3
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    for key, value in full["training"]["model"].items():
        assert torch.equal(value, resumed["training"]["model"][key]), key

    _actcli(workdir, "test", "--experiment", "full")
    _actcli(workdir, "test", "--experiment", "killed")
    reports = [read_report(_last(workdir, e).parents[1] / "report-test-test.json").metrics for e in ("full", "killed")]
    assert reports[0] == reports[1]

    # TensorBoard continues the same curves: one point per epoch and per step, none twice.
    events = EventAccumulator(str(_last(workdir, "killed").parents[1] / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("val/accuracy")] == [1, 2, 3]
    steps = [e.step for e in events.Scalars("train/loss_step")]
    assert steps == sorted(set(steps)) and steps[-1] == full["training"]["state"]["step"]
