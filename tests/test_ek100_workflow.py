"""EK100 end to end through the CLI on tiny frame and MP4 trees for real annotation rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from ek100_trees import EK100, build_tree

from actcli.report import read_report

SMALL = ["--model", "r3d_tiny", "--frames", "4", "--crop", "32", "--batch-size", "2", "--workers", "0"]


@pytest.mark.parametrize(("task", "kind"), [("recognition", "frames"), ("anticipation", "videos")])
def test_annotate_train_test_score(cli, workdir, task, kind):
    cli("download", "ek100-annotations", "--from", EK100)
    out = cli("annotate", "--dataset", "ek100", "--task", task, "--max-segments", "2", "--tau-o", "1.5").output
    folder = workdir / "annotations" / "ek100"
    task_file = json.loads((folder / "task.json").read_text())
    assert task_file["task"] == task and "validation segments by participant" in " ".join(out.split())
    table = pd.read_csv(folder / "train.csv")
    train = table[table["observable"]]
    if task == "anticipation":  # the window ends tau_a before the action and lasts at most tau_o
        assert (train["stop_s"] == train["segment_start_s"] - 1.0).all() and (train["stop_s"] > 0).all()
        assert ((train["stop_s"] - train["start_s"]) <= 1.5 + 1e-9).all()
        assert task_file["splits"]["train"]["segments_dropped"] == 1  # P01_11_0 starts at 0 s
        assert table.loc[~table["observable"], "narration_id"].tolist() == ["P01_11_0"]  # kept, never read

    media = workdir / "media"
    videos = pd.concat([pd.read_csv(folder / f"{s}.csv") for s in ("train", "val", "test")])
    build_tree(media, videos, kind, seconds=7.5)
    cli("train", "--dataset", "ek100", "--root", media, "--epochs", "1", "--experiment", "ek", *SMALL)
    (run,) = (workdir / "outputs" / "runs" / "ek").iterdir()
    history = read_report(run / "report-train.json").metrics["history"]
    assert 9.0 < history[0]["train_loss"] < 12.0  # two cross-entropies of ~log(97) + log(300) = 10.3 at the start

    assert "drop --observe" in cli.fails("test", "--root", media, "--experiment", "ek", "--observe", "0.5")
    cli("test", "--root", media, "--experiment", "ek", "--sls", "2", "3", "4")
    submission = json.loads((run / f"submission-{task}-test.json").read_text())
    assert submission["version"] == "0.2" and submission["challenge"] == f"action_{task}"
    assert (submission["sls_pt"], submission["sls_tl"], submission["sls_td"]) == (2, 3, 4)
    entry = next(iter(submission["results"].values()))
    assert len(entry["verb"]) == 97 and len(entry["noun"]) == 300
    assert ("action" in entry) == (task == "anticipation") and len(entry.get("action", range(100))) == 100
    scores = read_report(run / "report-score-test.json").metrics
    assert scores["task"] == task and scores["segments"] == 2
    assert set(scores["overall"]) == ({"verb_top1", "verb_top5", "noun_top1", "noun_top5", "action_top1",
                                       "action_top5"} if task == "recognition"
                                      else {"verb_mean_top5_recall", "noun_mean_top5_recall",
                                            "action_mean_top5_recall"})
    assert scores["unseen"]["verb_top1" if task == "recognition" else "verb_mean_top5_recall"] is not None  # P18


def test_missing_media_is_one_error_or_skipped_and_counted(cli, workdir):
    cli("download", "ek100-annotations", "--from", EK100)
    cli("annotate", "--dataset", "ek100", "--max-segments", "2")
    folder = workdir / "annotations" / "ek100"
    videos = pd.concat([pd.read_csv(folder / f"{s}.csv") for s in ("train", "val", "test")])
    build_tree(workdir / "media", videos[videos["video_id"] != "P01_11"], "frames", seconds=7.5)
    line = cli.fails("train", "--dataset", "ek100", "--root", workdir / "media", "--epochs", "1", *SMALL)
    assert "P01/rgb_frames/P01_11" in line and "--skip-missing" in line
    train = pd.read_csv(folder / "train.csv")
    train = pd.concat([train, train.assign(narration_id=train["narration_id"] + "x", video_id="P01_12")])
    train.to_csv(folder / "train.csv", index=False)
    (folder / "manifest.json").unlink()  # a hand edit: the set annotate wrote is no longer checked
    build_tree(workdir / "media", videos[videos["video_id"] == "P01_11"], "frames", seconds=7.5)
    out = cli("train", "--dataset", "ek100", "--root", workdir / "media", "--epochs", "1", "--skip-missing",
              *SMALL).output
    assert "1 train video(s) missing (first: P01_12)" in " ".join(out.split())


def test_annotate_uses_the_official_train_file_when_present(cli, workdir):
    official = workdir / "official"
    official.mkdir()
    for path in EK100.glob("*.csv"):
        (official / path.name).write_bytes(path.read_bytes())
    validation = pd.read_csv(official / "EPIC_100_validation.csv", dtype=str)
    validation[validation["participant_id"] == "P01"].to_csv(official / "EPIC_100_train.csv", index=False)
    out = cli("annotate", "--dataset", "ek100", "--official", official, "--participants", "P01,P18",
              "--max-segments", "250").output
    assert "splitting" not in out
    folder = workdir / "annotations" / "ek100"
    splits = {s: pd.read_csv(folder / f"{s}.csv") for s in ("train", "val", "test", "challenge")}
    # val: every 10th official train video (P01_11 of P01_11-14), held out; test: the official validation file
    assert set(splits["val"]["video_id"]) == {"P01_11"} and "P01_11" not in set(splits["train"]["video_id"])
    assert len(splits["train"]) + len(splits["val"]) == 250 and set(splits["train"]["participant_id"]) == {"P01"}
    assert set(splits["test"]["participant_id"]) == {"P01", "P18"} and len(splits["test"]) == 250 + 50
    assert (splits["challenge"]["verb_class"] == -1).all()
    assert len(pd.read_csv(folder / "labels.csv")) == 397


def test_anticipation_on_lmdb_features_alone(cli, workdir):
    """RULSTM's setting: anticipation from a feature stream, no frames or videos at all."""
    import lmdb
    import numpy as np

    from actcli.data.features import lmdb_key

    cli("download", "ek100-annotations", "--from", EK100)
    cli("annotate", "--dataset", "ek100", "--task", "anticipation", "--max-segments", "3")
    folder = workdir / "annotations" / "ek100"
    splits = pd.concat([pd.read_csv(folder / f"{s}.csv") for s in ("train", "val", "test")])
    env = lmdb.open(str(workdir / "rgb_lmdb"), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for video_id, stop in splits.groupby("video_id")["stop_s"].max().items():
            for frame in range(1, int(stop * 30) + 2):
                txn.put(lmdb_key(video_id, frame), np.random.default_rng(frame).random(16, dtype=np.float32).tobytes())
    env.close()
    cli("train", "--dataset", "ek100", "--modalities", "features", "--features", workdir / "rgb_lmdb", "--epochs", "1",
        "--experiment", "rulstm", *SMALL)
    cli("test", "--experiment", "rulstm")
    (run,) = (workdir / "outputs" / "runs" / "rulstm").iterdir()
    submission = json.loads((run / "submission-anticipation-test.json").read_text())
    assert len(submission["results"]) == len(pd.read_csv(folder / "test.csv"))
    assert read_report(run / "report-score-test.json").metrics["segments"] > 0
    line = cli.fails("train", "--dataset", "ek100", "--modalities", "rgb,features", "--features", workdir / "rgb_lmdb",
                     "--epochs", "1", *SMALL)
    assert "--root" in line  # frames or videos are needed for rgb
