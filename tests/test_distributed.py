"""torchrun on CPU with gloo: 2 processes train like 1 with the same global batch, write one set of
files, evaluate every sample exactly once, and a 2-process run resumes in 1 process."""

from __future__ import annotations

import pandas as pd
import torch
from conftest import no_temp_files

from actcli.report import read_report

# Deterministic: centred clips, no flip, no dropout; SyncBatchNorm so batch statistics span both processes.
# A constant learning rate (step schedule, no warm-up) makes epoch 1 the same whatever the total epochs;
# SGD, not Adam, whose normalised steps blow rounding differences in near-zero gradients up to full steps.
EXACT = ["--model", "r3d_tiny", "--frames", "4", "--stride", "2", "--crop", "32", "--workers", "0", "--no-augment",
         "--dropout", "0", "--sync-bn", "--schedule", "step", "--warmup", "0", "--optimizer", "sgd", "--lr", "0.05"]


def _weights(run) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["state_dict"]


def _max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def test_two_processes_train_test_and_resume_like_one(cli, annotated, workdir):
    runs = workdir / "outputs" / "runs"
    cli("train", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "3", "--nproc", "2",
        "--experiment", "ddp", *EXACT)
    cli("train", "--dataset", "synthetic", "--epochs", "2", "--batch-size", "6", "--experiment", "one", *EXACT)
    (ddp,) = (runs / "ddp").iterdir()  # one run folder, one set of files, written by rank 0
    (one,) = (runs / "one").iterdir()
    assert sorted(p.name for p in ddp.iterdir()) == sorted(p.name for p in one.iterdir())
    assert len(list((ddp / "tensorboard").iterdir())) == 1 and no_temp_files(ddp)
    difference = _max_difference(_weights(ddp), _weights(one))
    assert difference < 1e-4, difference  # global batch 2 x 3 == 1 x 6, same order, same statistics
    ddp_history = read_report(ddp / "report-train.json").metrics["history"]
    one_history = read_report(one / "report-train.json").metrics["history"]
    for a, b in zip(ddp_history, one_history, strict=True):  # losses summed over ranks = one process's
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-4 and a["val_accuracy"] == b["val_accuracy"]

    # Evaluation: an odd number of test videos, each counted exactly once, the same metrics as 1 process.
    test_csv = workdir / "annotations" / "synthetic" / "test.csv"
    table = pd.read_csv(test_csv)
    table.head(len(table) - 1).to_csv(test_csv, index=False)
    cli("test", "--experiment", "one", "--nproc", "2", "--report", "two.json")
    cli("test", "--experiment", "one", "--report", "single.json")
    two, single = read_report(workdir / "two.json").metrics, read_report(workdir / "single.json").metrics
    assert two["clips"] == single["clips"] == len(table) - 1
    assert two["top1"] == single["top1"] and two["per_class"] == single["per_class"]

    # Resume: epoch 1 of a 2-process run, continued by 1 process with the same global batch (6),
    # ends where the uninterrupted 2-process run ended.
    cli("train", "--dataset", "synthetic", "--epochs", "1", "--batch-size", "3", "--nproc", "2",
        "--experiment", "half", *EXACT)
    (half,) = (runs / "half").iterdir()
    last = half / "checkpoints" / "last.pt"
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["settings"]["train"].update(epochs=2, batch_size=6)  # the run as planned: 2 epochs
    torch.save(checkpoint, last)
    out = cli("train", "--resume", str(half)).output
    assert "resumed from" in out and ", 2 processes" not in out
    assert read_report(half / "report-train.json").metrics["epochs"] == 2
    assert _max_difference(_weights(half), _weights(ddp)) < 1e-4


def test_a_batch_one_rank_cannot_read_is_skipped_by_every_rank(annotated, workdir):
    """One training video is corrupt: the rank whose batch holds only that video has nothing to
    backpropagate, so every rank skips that batch together instead of waiting forever."""
    import subprocess
    import sys

    from conftest import clean_env

    train = pd.read_csv(workdir / "annotations" / "synthetic" / "train.csv")
    (annotated / train["path"][0]).write_bytes(b"not a video")
    done = subprocess.run([sys.executable, "-m", "actcli", "train", "--dataset", "synthetic", "--nproc", "2",
                           "--batch-size", "1", "--epochs",
                           "1", "--experiment", "corrupt", *EXACT], cwd=workdir, env=clean_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = (workdir / "outputs" / "runs" / "corrupt").iterdir()
    metrics = read_report(run / "report-train.json").metrics
    assert metrics["skipped_clips"] == 1 and metrics["epochs"] == 1
