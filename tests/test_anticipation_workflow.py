"""Anticipation through the CLI: extraction (layouts, resume, tokens), features on the fly, EK100 on RULSTM's LMDBs
with every model (submissions the official checks accept), and the bad inputs, one line each."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from ek100_trees import EK100
from sequence_data import copy_to, tiny_sequences, write_lmdb

from actcli.data.video import ClipSpec
from actcli.ek100.submission import read_submission
from actcli.models.checkpoint import save_checkpoint
from actcli.models.zoo import build_model
from actcli.report import read_report

SEQUENCE = ["--features-fps", "4", "--epochs", "1", "--batch-size", "8", "--workers", "0"]
NARROW = {"rulstm": "hidden=16,pretrain_epochs=1", "avt": "hidden=16,layers=1,heads=2",
          "attentive_probe": "layers=1,heads=2", "early_lstm": "hidden=16"}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _backbone(path, name: str = "r3d_tiny", classes: int = 8):
    """A real (untrained) actcli checkpoint of ``name``: what `actcli train` writes, without the training."""
    spec = ClipSpec(4, 2, 32)
    model = build_model(name, spec, classes)
    save_checkpoint(path, model, model_name=name, clip=spec, classes=[f"c{i}" for i in range(classes)], settings={})
    return path


@pytest.fixture()
def sequences(cli, workdir, tmp_path_factory):
    """The tiny sequences annotated twice (recognition and anticipation, the same split) and an r3d_tiny checkpoint."""
    root = copy_to(tiny_sequences(tmp_path_factory), workdir)
    cli("annotate", "--dataset", "synthetic-sequences", "--out", "annotations/rec")
    cli("annotate", "--dataset", "synthetic-sequences", "--out", "annotations/ant", "--task", "anticipation",
        "--tau-a", "0.5", "--tau-o", "1.5")
    return root, _backbone(workdir / "r3d.pt")


def test_extract_layouts_resume_tokens_and_refusals(cli, workdir, sequences):
    _, weights = sequences
    args = ["extract", "--dataset", "synthetic-sequences", "--annotations", "annotations/rec", "--weights", weights,
            "--fps", "4", "--decoder", "pyav"]
    out = cli(*args, "--out", workdir / "feats", "--format", "npy").output
    assert "9 video(s) extracted, 0 already done" in " ".join(out.split())
    meta = json.loads((workdir / "feats" / "features.json").read_text())
    assert meta["fps"] == 4 and meta["dim"] == 128 and meta["model"] == "r3d_tiny" and len(meta["videos"]) == 9
    key, entry = next(iter(meta["videos"].items()))
    assert np.load(workdir / "feats" / f"{key}.npy").shape == (entry["rows"], 128)
    assert "0 video(s) extracted, 9 already done" in " ".join(cli(*args, "--out", workdir / "feats",
                                                                    "--format", "npy").output.split())
    assert "other options (fps" in cli.fails(*args[:-4], "--fps", "8", "--decoder", "pyav", "--out", workdir / "feats",
                                             "--format", "npy")
    cli(*args, "--out", workdir / "lmdb", "--tokens")
    import lmdb

    meta = json.loads((workdir / "lmdb" / "features.json").read_text())
    assert meta["tokens"] > 1 and meta["layout"] == "lmdb"
    with lmdb.open(str(workdir / "lmdb"), readonly=True, lock=False) as env, env.begin() as txn:
        raw = txn.get(f"{key}_frame_0000000001.jpg".encode())  # RULSTM's key, frames from 1
        assert raw is not None and len(raw) == 4 * meta["tokens"] * meta["dim"]
    other = _backbone(workdir / "x3d.pt", "x3d_xs")
    line = cli.fails(*args[:5], "--model", "r3d_tiny", "--weights", other, "--out", workdir / "bad")
    assert "holds a x3d_xs model, not r3d_tiny" in line


def test_features_on_the_fly_rate_dimension_and_tau_checks(cli, workdir, sequences):
    _, weights = sequences
    base = ["train", "--dataset", "synthetic-sequences", "--annotations", "annotations/ant", *SEQUENCE]
    out = cli(*base, "--model", "avt", "--backbone", "r3d_tiny", "--backbone-weights", weights, "--model-config",
              NARROW["avt"], "--experiment", "avt").output
    assert "0 cached, 9 extracted" in " ".join(out.split())
    out = cli(*base, "--model", "attentive_probe", "--backbone", "r3d_tiny", "--backbone-weights", weights,
              "--model-config", NARROW["attentive_probe"], "--experiment", "probe").output
    assert "0 cached, 9 extracted" in " ".join(out.split())  # the probe reads tokens: its own cache entry
    cli("test", "--experiment", "avt", "--tau-a", "1,0.5")
    (run,) = (workdir / "outputs" / "runs" / "avt").iterdir()
    metrics = read_report(run / "report-anticipation-test.json").metrics
    assert metrics["tau_a"] == [1.0, 0.5] and set(metrics["baselines"]) >= {"same_as_last", "most_frequent_next"}
    assert metrics["bayes_optimal"]["top1"] == pytest.approx(0.9) and (run / "anticipation-test.png").is_file()
    assert metrics["unobservable"][0] >= metrics["unobservable"][1]  # a longer tau_a loses more windows
    assert "no test segment has an observable window" in cli.fails("test", "--experiment", "avt", "--tau-a", "60")
    # features at another rate than the model's; features of another dimension
    cache = next((workdir / "outputs" / "cache" / "sequence-features").iterdir())
    line = cli.fails(*base[:-8], "--features-fps", "8", "--epochs", "1", "--workers", "0", "--model", "rulstm",
                     "--features", cache, "--experiment", "bad")
    assert "are at 4 rows/s, not 8" in line
    narrow = workdir / "narrow"
    narrow.mkdir()
    for key in json.loads((cache / "features.json").read_text())["videos"]:
        (narrow / key).parent.mkdir(parents=True, exist_ok=True)
        np.save(narrow / f"{key}.npy", np.zeros((200, 16), dtype=np.float32))
    line = cli.fails("test", "--experiment", "avt", "--features", narrow)
    assert "have 16 values per row" in line and "trained on 128" in line
    line = cli.fails(*base, "--model", "early_lstm", "--features", cache, "--experiment", "bad")
    assert "--task recognition" in line
    line = cli.fails(*base, "--model", "rulstm", "--features", cache, "--model-config", "width=3", "--experiment", "b")
    assert "takes hidden" in line


def test_early_model_one_pass_curve_on_recognition_segments(cli, workdir, sequences):
    _, weights = sequences
    cli("extract", "--dataset", "synthetic-sequences", "--annotations", "annotations/rec", "--weights", weights,
        "--fps", "4", "--decoder", "pyav", "--out", workdir / "feats", "--format", "npy")
    cli("train", "--dataset", "synthetic-sequences", "--annotations", "annotations/rec", "--model", "early_lstm",
        "--features", workdir / "feats", *SEQUENCE, "--model-config", NARROW["early_lstm"], "--experiment", "early")
    cli("test", "--experiment", "early", "--observe", "0.25,0.5,1")
    (run,) = (workdir / "outputs" / "runs" / "early").iterdir()
    report = read_report(run / "report-early-test.json")
    assert report.metrics["ratios"] == [0.25, 0.5, 1.0] and report.config["passes"] == 1
    assert "sees less than one of the model's 8 steps" in cli.fails("test", "--experiment", "early", "--observe", "0.1")
    assert "anticipation models take --tau-a" not in cli("test", "--experiment", "early").output


def _ek100_features(cli, workdir, streams: dict[str, int]) -> dict[str, str]:
    cli("download", "ek100-annotations", "--from", EK100)
    cli("annotate", "--dataset", "ek100", "--task", "anticipation", "--max-segments", "3")
    folder = workdir / "annotations" / "ek100"
    splits = pd.concat([pd.read_csv(folder / f"{s}.csv") for s in ("train", "val", "test")])
    seconds = splits.groupby("video_id")["segment_start_s"].max().to_dict()
    return {name: str(write_lmdb(workdir / f"{name}_lmdb", seconds, dim, fps=30, seed=i))
            for i, (name, dim) in enumerate(streams.items())}


@pytest.mark.parametrize("model", ["rulstm", "avt", "attentive_probe"])
def test_ek100_anticipation_on_rulstm_lmdbs_writes_an_accepted_submission(cli, workdir, model):
    streams = {"rgb": 16, "flow": 8} if model == "rulstm" else {"rgb": 16}  # RULSTM: MATT over two streams
    paths = _ek100_features(cli, workdir, streams)
    features = ",".join(f"{k}={v}" for k, v in paths.items()) if len(paths) > 1 else paths["rgb"]
    cli("train", "--dataset", "ek100", "--model", model, "--features", features, "--features-fps", "30", "--epochs",
        "1", "--batch-size", "4", "--workers", "0", "--model-config", NARROW[model].replace("pretrain_epochs=1",
                                                                                          "pretrain_epochs=0"),
        "--experiment", model)
    cli("test", "--experiment", model, "--tau-a", "1,0.5")
    (run,) = (workdir / "outputs" / "runs" / model).iterdir()
    test = pd.read_csv(workdir / "annotations" / "ek100" / "test.csv")
    submitted = read_submission(run / "submission-anticipation-test.json", test["narration_id"].tolist(),
                                "action_anticipation")  # the official checks: keys, 100 actions, version, sls
    assert submitted.verb_scores.shape == (len(test), 97) and submitted.action_ids.shape == (len(test), 100)
    metrics = read_report(run / "report-anticipation-test.json").metrics
    assert set(metrics["official"]) == {"overall", "unseen", "tail"} and metrics["heads_mean_top5_recall"]["verb"]
    score = read_report(run / "report-score-test.json").metrics
    assert score["task"] == "anticipation" and score["segments"] == len(test)
