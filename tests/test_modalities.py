"""motion and features modalities on real files: videos, EK100 flow JPEGs, .npy arrays and an LMDB."""

from __future__ import annotations

import math

import lmdb
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TRAIN_FLAGS
from ek100_trees import EK100
from torchvision.io import encode_jpeg, write_file

from actcli.data.datasets import VideoClipDataset
from actcli.data.features import FeatureStore, lmdb_key
from actcli.data.synthetic import write_video
from actcli.data.transforms import eval_transform, motion_transform
from actcli.data.video import ClipSpec
from actcli.ek100.annotations import frames_fps
from actcli.ek100.dataset import Ek100Dataset
from actcli.ek100.media import flow_path, read_flow_at, time_to_flow_index
from actcli.models.multimodal import MultiModalModel, build_any
from actcli.report import read_report

SPEC = ClipSpec(frames=4, stride=2, crop=32)


def square_video(path, frames: int = 16, step: int = 3, still_until: int = 0) -> None:
    """A bright square on a dark background moving right ``step`` px per frame (still before ``still_until``)."""
    video = np.full((frames, 48, 64, 3), 30, dtype=np.uint8)
    for t in range(frames):
        x = 4 + step * max(0, t - still_until)
        video[t, 16:32, x:x + 16] = 220
    write_video(path, video)


def _clip_dataset(root, names, **kwargs) -> VideoClipDataset:
    table = pd.DataFrame({"path": names, "label_id": [0] * len(names)})
    return VideoClipDataset(root, table, SPEC, eval_transform(32), False, **kwargs)


@pytest.mark.parametrize("method", ["difference", "farneback"])
def test_motion_shows_which_way_things_move(tmp_path, method):
    square_video(tmp_path / "right.avi")
    sample = _clip_dataset(tmp_path, ["right.avi"], modalities=["rgb", "motion"], motion=method)[0]["clip"]
    motion = sample["motion"]
    assert sample["rgb"].shape == (3, 4, 32, 32) and motion.shape == (2, 4, 32, 32)
    assert motion.abs().max() <= 1.0 and motion.abs().sum() > 0
    columns = torch.arange(32.0)
    if method == "difference":  # brightening at the leading (right) edge, darkening at the trailing edge
        brighter, darker = (motion[c].sum(dim=(0, 1)) for c in (0, 1))
        assert (brighter * columns).sum() / brighter.sum() > (darker * columns).sum() / darker.sum()
    else:  # flow u (rightwards) dominates v where anything moves
        moving = motion.abs().sum(0) > 0.01
        assert motion[0][moving].mean() > 0 and motion[0][moving].mean() > 3 * motion[1][moving].abs().mean()


def test_motion_never_sees_past_the_observed_part(tmp_path):
    square_video(tmp_path / "late.avi", still_until=8)  # nothing moves in frames 0-7
    assert _clip_dataset(tmp_path, ["late.avi"], modalities=["motion"])[0]["clip"]["motion"].abs().sum() > 0
    observed = _clip_dataset(tmp_path, ["late.avi"], modalities=["motion"], observe=0.5)[0]["clip"]["motion"]
    assert observed.abs().sum() == 0  # a peek at frame 8 or later would show motion


def test_npy_features_are_read_at_the_clip_times(tmp_path):
    square_video(tmp_path / "a.avi")  # 16 frames at 25 fps = 0.64 s
    features = tmp_path / "features"
    features.mkdir()
    np.save(features / "a.npy", np.arange(20, dtype=np.float32)[:, None].repeat(3, axis=1))  # row r holds r
    store = FeatureStore(features, fps=30.0)
    dataset = _clip_dataset(tmp_path, ["a.avi"], modalities=["features"], features=store)
    rows = dataset[0]["clip"]["features"]
    assert rows.shape == (4, 3) and dataset.feature_dim() == 3
    # centred 4x2 clip of 16 frames: frames 4, 6, 8, 10 -> times i / 25 -> rows floor(t * 30)
    assert rows[:, 0].tolist() == [math.floor(i / 25 * 30) for i in (4, 6, 8, 10)]
    early = _clip_dataset(tmp_path, ["a.avi"], modalities=["features"], features=store, observe=0.25)[0]
    assert early["clip"]["features"][:, 0].max() <= math.floor(4 / 25 * 30)  # frames 0-3 only
    missing = _clip_dataset(tmp_path, ["a.avi", "b.avi"], modalities=["features"], features=store)
    square_video(tmp_path / "b.avi")
    assert "skipped" in missing[1]  # b.npy is missing: the sample is skipped and counted
    with pytest.raises(Exception, match="--features"):
        _clip_dataset(tmp_path, ["a.avi"], modalities=["features"])


def _ek100_rows(count: int = 3) -> pd.DataFrame:
    table = pd.read_csv(EK100 / "EPIC_100_validation.csv", dtype=str).head(count)
    from actcli.ek100.annotations import timestamp_seconds

    return pd.DataFrame({
        "narration_id": table["narration_id"], "video_id": table["video_id"],
        "start_s": table["start_timestamp"].map(timestamp_seconds),
        "stop_s": table["stop_timestamp"].map(timestamp_seconds),
        "verb_class": table["verb_class"].astype(int), "noun_class": table["noun_class"].astype(int)})


def test_ek100_flow_frames_and_lmdb_features(tmp_path):
    rows = _ek100_rows()
    env = lmdb.open(str(tmp_path / "rgb_lmdb"), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for video_id in rows["video_id"].unique():
            stop = math.ceil(rows["stop_s"].max() * 30) + 2
            for frame in range(1, stop):  # value: the frame number, 5 features
                txn.put(lmdb_key(video_id, frame), np.full(5, frame, dtype=np.float32).tobytes())
            fps = frames_fps(video_id)
            for index in range(int(rows["stop_s"].max() * fps / 2) + 2):
                for channel, value in (("u", 255), ("v", 128)):  # u: +20 px (1.0), v: no motion (~0)
                    path = flow_path(tmp_path / "media", video_id, channel, index)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_file(str(path), encode_jpeg(torch.full((1, 24, 32), value, dtype=torch.uint8)))
    env.close()
    store = FeatureStore(tmp_path / "rgb_lmdb")
    assert store.is_lmdb
    dataset = Ek100Dataset(tmp_path / "media", rows, 4, eval_transform(16), False, {},
                           modalities=("motion", "features"),
                           features=store, flow_transform=motion_transform(16, False))
    assert dataset.feature_dim() == 5
    for index in range(len(rows)):
        sample = dataset[index]
        times = dataset.times(index)
        frames = sample["clip"]["features"][:, 0].tolist()
        assert frames == [max(1, math.floor(t * 30)) for t in times]  # RULSTM's frame numbers
        assert max(frames) <= rows["stop_s"][index] * 30  # never a frame that starts after the window
        flow = sample["clip"]["motion"]
        assert flow.shape == (2, 4, 16, 16) and flow[0].min() > 0.95 and flow[1].abs().max() < 0.02
        fps = frames_fps(rows["video_id"][index])
        assert sample["flow_indices"] == [time_to_flow_index(t, fps) for t in times]
        # flow frame k comes from RGB frames 2k and 2k+1: both start before the time they stand for
        assert all((2 * k + 1) / fps <= max(t, 1 / fps) for k, t in zip(sample["flow_indices"], times, strict=True))
    # In a video's first 1/fps s no flow frame lies wholly in the past: no motion is read, not flow frame 0.
    early, _ = read_flow_at(tmp_path / "media", rows["video_id"][0], [0.005, 1.0])
    assert (early[0] == 128).all() and (early[1, 0] == 255).all()


def test_weighted_fusion_learns_weights_and_features_model_reloads(tmp_path):
    torch.manual_seed(0)
    model = build_any("r3d_tiny", SPEC, 5, 0.0, ["rgb", "motion", "features"], "weighted", feature_dim=7)
    assert isinstance(model, MultiModalModel) and model.fusion_weights() == pytest.approx(
        {"rgb": 1 / 3, "motion": 1 / 3, "features": 1 / 3})
    inputs = {"rgb": torch.randn(2, 3, 4, 32, 32), "motion": torch.randn(2, 2, 4, 32, 32),
              "features": torch.randn(2, 4, 7)}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), torch.tensor([0, 3])).backward()
        optimizer.step()
    weights = model.fusion_weights()
    assert sum(weights.values()) == pytest.approx(1.0) and len(set(round(w, 6) for w in weights.values())) > 1


def test_motion_and_npy_features_end_to_end(cli, annotated, workdir):
    features = workdir / "features"
    for video in annotated.rglob("*.avi"):
        target = features / video.relative_to(annotated).with_suffix(".npy")
        target.parent.mkdir(parents=True, exist_ok=True)
        label = sorted(p.name for p in annotated.iterdir()).index(video.parent.name)
        np.save(target, np.eye(8, dtype=np.float32)[[label] * 16])  # features that give the class away
    assert "--features" in cli.fails("train", "--dataset", "synthetic", "--modalities", "features", *TRAIN_FLAGS)
    cli("train", "--dataset", "synthetic", "--epochs", "1", "--experiment", "mf", "--modalities", "motion,features",
        "--fusion", "weighted", "--features", features, "--features-fps", "25", *TRAIN_FLAGS)
    cli("test", "--experiment", "mf", "--report", "mf.json")  # --features comes from the training run
    metrics = read_report(workdir / "mf.json").metrics
    assert set(metrics["per_modality_top1"]) == {"motion", "features"}
    assert sum(metrics["fusion_weights"].values()) == pytest.approx(1.0) and metrics["clips"] == 6
