"""`make demo-anticipation` at a tiny scale: every step runs and the table is written
(accuracy is the full demo's job)."""

from __future__ import annotations

import json

import torch

from actcli.demo_anticipation import MODELS, main


def test_demo_runs_end_to_end_and_writes_its_table(workdir):
    threads = torch.get_num_threads()
    try:
        code = main(["--videos", "9", "--actions", "6", "--backbone-epochs", "1", "--epochs", "1",
                     "--pretrain-epochs", "1", "--workers", "0", "--no-check"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    summary = json.loads((workdir / "outputs" / "demo-anticipation.json").read_text())
    assert [row["model"] for row in summary["models"]] == list(MODELS)
    assert summary["best_possible"]["top1"] == 0.9 and summary["early"]["ratios"][-1] == 1.0
    table = (workdir / "outputs" / "demo-anticipation.md").read_text()
    assert all(f"`{m}`" in table for m in (*MODELS, "early_lstm", "r3d_tiny"))
    assert (workdir / "data" / "synthetic-sequences-features" / "rgb_lmdb" / "data.mdb").is_file()
