"""The segment table and its tasks on every timestamped format: windows, drops, the grammar, EGTEA, user lists."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sequence_data import TINY_SEQUENCES, copy_to, tiny_sequences

from actcli.data.formats.egtea import parse_clip
from actcli.data.segments import TaskSpec, anticipation_window
from actcli.data.synthetic_sequences import Grammar, segment_rows, video_actions
from actcli.errors import UserError


def test_windows_end_tau_a_before_the_action_and_early_ones_are_clipped_or_dropped():
    starts = np.array([0.5, 2.0, 3.5, 10.0])
    lo, hi, ok, clipped = anticipation_window(starts, 1.0, 2.0, "clip")
    assert hi.tolist() == [-0.5, 1.0, 2.5, 9.0] and lo.tolist() == [0.0, 0.0, 0.5, 7.0]
    assert ok.tolist() == [False, True, True, True] and clipped.tolist() == [False, True, False, False]
    _, _, ok, clipped = anticipation_window(starts, 1.0, 2.0, "drop")
    assert ok.tolist() == [False, False, True, True] and not clipped.any()
    with pytest.raises(UserError, match="no observable frame"):
        TaskSpec("anticipation", 1.0, 0.0).check()


def test_grammar_next_action_needs_the_two_previous_ones():
    grammar = Grammar()
    table = grammar.transition()
    for a in range(8):
        for b in range(8):
            if a != b:
                assert grammar.rule(a, b) not in (a, b) and table[a, b, b] == 0
                assert table[a, b].sum() == pytest.approx(1)
        # knowing only the last action b leaves the likely next uniform over the 7 others
        assert len({grammar.rule(x, a) for x in range(8) if x != a}) == 7
    assert grammar.bayes_optimal(1) == pytest.approx(0.9)
    assert grammar.bayes_optimal(5) == pytest.approx(0.9 + 4 * 0.1 / 6)
    # sampled sequences follow the rule about p of the time and never repeat the last action
    seq = grammar.sample(4000, np.random.default_rng(0))
    follows = np.mean([seq[i] == grammar.rule(seq[i - 2], seq[i - 1]) for i in range(2, len(seq))])
    assert 0.88 < follows < 0.92 and all(seq[i] != seq[i - 1] for i in range(1, len(seq)))


def test_synthetic_sequences_are_real_videos_with_contiguous_segments(tmp_path_factory):
    root = tiny_sequences(tmp_path_factory)
    segments = pd.read_csv(root / "segments.csv")
    assert len(segments) == TINY_SEQUENCES.videos * TINY_SEQUENCES.actions
    for _, video in segments.groupby("path"):
        assert (video["start"].to_numpy()[1:] == video["end"].to_numpy()[:-1]).all()
        lengths = video["end"] - video["start"]
        assert lengths.min() >= 1.5 - 1e-9 and lengths.max() <= 3.0 + 1e-9
    grammar = json.loads((root / "grammar.json").read_text())
    assert grammar["bayes_optimal_next_action"]["top1"] == pytest.approx(0.9)
    assert segment_rows(TINY_SEQUENCES).equals(segments.astype({"start": float, "end": float}))
    assert video_actions(TINY_SEQUENCES, 2) == video_actions(TINY_SEQUENCES, 2)
    from actcli.data.video import probe

    info = probe(root / segments["path"].iloc[0])
    assert info.frames == round(segments[segments["path"] == segments["path"].iloc[0]]["end"].max() * 25)


def _list_rows(root):
    rows = pd.read_csv(root / "segments.csv")
    return rows[["path", "label", "start", "end", "group"]]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_user_list_anticipation_windows_and_drops(cli, workdir, tmp_path_factory, suffix):
    root = copy_to(tiny_sequences(tmp_path_factory), workdir)
    rows = _list_rows(root)
    listing = workdir / f"mine.{suffix}"
    if suffix == "csv":
        rows.to_csv(listing, index=False)
    else:
        listing.write_text("\n".join(json.dumps(r) for r in rows.to_dict(orient="records")) + "\n")
    out = cli("annotate", "--dataset", "list", "--list", listing, "--root", root, "--task", "anticipation",
              "--tau-a", "1", "--tau-o", "2", "--before-start", "drop").output
    folder = workdir / "annotations" / "list"
    task = json.loads((folder / "task.json").read_text())
    dropped = sum(s["segments_dropped"] for s in task["splits"].values())
    assert dropped > 0 and f"{dropped} segment(s) have no observable window" in " ".join(out.split())
    split = pd.concat([pd.read_csv(folder / f"{s}.csv") for s in ("train", "val", "test")])
    assert len(split) + dropped == len(rows)
    assert np.allclose(split["end"], split["segment_start"] - 1.0) and np.allclose(split["end"] - split["start"], 2.0)
    assert (split["start"] >= 0).all()


def test_a_list_without_times_cannot_be_anticipated(cli, workdir, tmp_path_factory):
    root = copy_to(tiny_sequences(tmp_path_factory), workdir)
    _list_rows(root).drop(columns=["start", "end"]).to_csv(workdir / "plain.csv", index=False)
    line = cli.fails("annotate", "--dataset", "list", "--list", workdir / "plain.csv", "--root", root, "--task",
                     "anticipation")
    assert "needs timestamped actions" in line and "start and end" in line
    line = cli.fails("annotate", "--dataset", "synthetic-sequences", "--root", root, "--task", "anticipation",
                     "--tau-a", "100")
    assert "no segment" in line and "observable window" in line
    assert "no observable frame" in cli.fails("annotate", "--dataset", "synthetic-sequences", "--root", root,
                                              "--task", "anticipation", "--tau-o", "0")


# EGTEA Gaze+'s real file layout: action_annotation/{action,verb,noun}_idx.txt ("<name> <id>", 1-based) and
# {train,test}_split1.txt ("<clip> <action> <verb> <noun>"), clip names <session>-<start ms>-<end ms>-F<f>-F<f>.
ACTIONS = "Inspect/Read recipe 1\nOpen fridge 2\nTake eating_utensil 3\nCut tomato 4\n"
VERBS = "Inspect/Read 1\nOpen 2\nTake 3\nCut 4\n"
NOUNS = "recipe 1\nfridge 2\neating_utensil 3\ntomato 4\n"
SESSIONS = ("OP01-R01-PastaSalad", "P02-R03-BaconAndEggs", "OP03-R04-ContinentalBreakfast")


def _egtea_tree(root, tiny):
    videos = sorted((tiny / "videos").glob("*.mp4"))[:3]
    (root / "action_annotation").mkdir(parents=True)
    for name, text in (("action_idx.txt", ACTIONS), ("verb_idx.txt", VERBS), ("noun_idx.txt", NOUNS)):
        (root / "action_annotation" / name).write_text(text)
    train, test = [], []
    for session, video in zip(SESSIONS, videos, strict=True):
        shutil.copy(video, root / f"{session}.mp4")
        for k, start_ms in enumerate((1500, 3250, 5000, 7100)):
            end_ms = start_ms + 1400
            clip = f"{session}-{start_ms}-{end_ms}-F{start_ms * 24 // 1000:06d}-F{end_ms * 24 // 1000:06d}"
            line = f"{clip} {k + 1} {k + 1} {k + 1}"
            (test if session == SESSIONS[-1] else train).append(line)
    (root / "action_annotation" / "train_split1.txt").write_text("\n".join(train) + "\n")
    (root / "action_annotation" / "test_split1.txt").write_text("\n".join(test) + "\n")


def test_egtea_official_files_give_timed_segments_of_the_session_videos(cli, workdir, tmp_path_factory):
    assert parse_clip("OP01-R01-PastaSalad-1002316-1004005-F024051-F024101") == ("OP01-R01-PastaSalad", 1002.316,
                                                                               1004.005)
    root = workdir / "EGTEA"
    _egtea_tree(root, tiny_sequences(tmp_path_factory))
    cli("annotate", "--dataset", "egtea", "--root", root)
    folder = workdir / "annotations" / "egtea"
    labels = pd.read_csv(folder / "labels.csv")["name"].tolist()
    assert labels == ["Inspect/Read recipe", "Open fridge", "Take eating_utensil", "Cut tomato"]  # official id order
    test = pd.read_csv(folder / "test.csv")
    assert set(test["path"]) == {f"{SESSIONS[-1]}.mp4"} and test["start"].tolist() == [1.5, 3.25, 5.0, 7.1]
    assert set(test["group"]) == {"OP03"}  # the participant
    cli("annotate", "--dataset", "egtea", "--root", root, "--task", "anticipation", "--tau-a", "0.5", "--tau-o", "1")
    test = pd.read_csv(folder / "test.csv")
    assert np.allclose(test["end"], test["segment_start"] - 0.5) and np.allclose(test["start"], test["end"] - 1.0)
    # only the trimmed clips: recognition of whole files, and anticipation refused in one line
    for session in SESSIONS:
        (root / f"{session}.mp4").rename(root / f"{session}-clips.bak")
    clips = root / "cropped_clips"
    for line in (root / "action_annotation" / "test_split1.txt").read_text().split("\n"):
        if line:
            name = line.split()[0]
            (clips / name.rsplit("-", 4)[0]).mkdir(parents=True, exist_ok=True)
            shutil.copy(root / f"{SESSIONS[-1]}-clips.bak", clips / name.rsplit("-", 4)[0] / f"{name}.mp4")
    out = cli("annotate", "--dataset", "egtea", "--root", root).output
    assert "listed video(s) missing" in " ".join(out.split())  # the train sessions have neither
    assert "start" not in pd.read_csv(folder / "test.csv").columns
    assert "needs timestamped actions" in cli.fails("annotate", "--dataset", "egtea", "--root", root, "--task",
                                                    "anticipation")
