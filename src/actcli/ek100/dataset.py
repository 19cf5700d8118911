"""EK100 segments as training samples: frames sampled in seconds, verb and noun labels.

A sample is ``{"clip": float [C, T, H, W], "label": [verb, noun], "index": int,
"frame_indices": [T]}``; the frame indices are those read from the frames folder or the
video (0-based), kept so tests can prove what was read. Times split ``[start_s, stop_s)``
(the segment, or the anticipation window) into ``T`` equal parts: the middle of each in
evaluation, one random offset shared by the parts in training.

With several modalities ``clip`` is a dict: ``"rgb"`` as above, ``"motion": float [2, T, H, W]``
from the released flow frames (``flow_indices`` lists the flow frames read), ``"features":
float [T, D]`` from a :class:`actcli.data.features.FeatureStore` keyed by video id. All read
at the same times, so none looks past the window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import Dataset

from actcli.data.features import FeatureStore
from actcli.data.motion import flow_from_jpeg
from actcli.data.transforms import VideoTransform
from actcli.data.video import DecodeError
from actcli.ek100.media import layout, read_flow_at, read_frames_at, segment_times
from actcli.errors import UserError

HEADS = (97, 300)
SPLIT_REQUIRED = ("narration_id", "video_id", "start_s", "stop_s", "verb_class", "noun_class")


def check_media(root: Path, table: pd.DataFrame, skip_missing: bool) -> tuple[pd.DataFrame, list[str]]:
    """Rows whose video has frames or a video file under ``root``.

    A missing video is an error naming it (and how many are missing), unless ``skip_missing``:
    then its segments are left out and the video ids returned, to be counted in reports.
    """
    missing = []
    for video_id in table["video_id"].unique():
        try:
            layout(root, video_id)
        except DecodeError as exc:
            missing.append((video_id, str(exc)))
    if missing and not skip_missing:
        raise UserError(f"{len(missing)} EK100 video(s) missing under {root}: {missing[0][1]}; pass the media root "
                        "with --root, or --skip-missing to leave their segments out")
    gone = {m[0] for m in missing}
    return table[~table["video_id"].isin(gone)].reset_index(drop=True), sorted(gone)


class Ek100Dataset(Dataset):
    """Segments (or anticipation windows) of one split file; see the module docstring.

    Args:
        root: the media root (``<root>/<P01>/rgb_frames/...`` or ``<root>/<P01>/videos/...``).
        table: rows with ``video_id``, ``start_s``, ``stop_s``, ``verb_class``, ``noun_class``.
        frames: frames per clip. transform: ``uint8 [T, C, H, W]`` -> ``float [C, T, H, W]``.
        video_fps: original videos' rates by video id (from ``EPIC_100_video_info.csv``).
        missing_videos: videos whose segments were left out because their media is missing.
        modalities: among ``rgb``, ``motion`` (released flow frames, cropped by ``flow_transform``),
            ``features`` (read from ``features``).
    """

    def __init__(self, root: Path, table: pd.DataFrame, frames: int, transform: VideoTransform, training: bool,
                 video_fps: dict[str, float], decoder: str = "pyav", missing_videos: list[str] | None = None,
                 modalities: tuple[str, ...] = ("rgb",), features: FeatureStore | None = None,
                 flow_transform: VideoTransform | None = None) -> None:
        self.root, self.table, self.frames = root, table.reset_index(drop=True), frames
        self.transform, self.training, self.video_fps, self.decoder = transform, training, video_fps, decoder
        self.missing_videos = missing_videos or []  # left out by check_media, for reports
        self.modalities, self.features = tuple(modalities), features
        self.flow_transform = flow_transform  # motion: float [2, T, H, W] -> cropped (transforms.motion_transform)

    def __len__(self) -> int:
        return len(self.table)

    def times(self, index: int) -> list[float]:
        row = self.table.iloc[index]
        offset = float(torch.rand(()).item()) if self.training else 0.5
        return segment_times(float(row["start_s"]), float(row["stop_s"]), self.frames, offset)

    def feature_dim(self) -> int:
        """D of the ``features`` modality, read from the first segment's video."""
        try:
            return self.features.dimension(str(self.table["video_id"].iloc[0]))
        except DecodeError as exc:
            raise UserError(f"cannot read features: {exc}; check --features") from None

    def __getitem__(self, index: int) -> dict[str, Any]:
        row = self.table.iloc[index]
        video_id, times = row["video_id"], self.times(index)
        sample: dict[str, Any] = {"label": [int(row["verb_class"]), int(row["noun_class"])], "index": index}
        inputs: dict[str, torch.Tensor] = {}
        try:
            if "rgb" in self.modalities:
                frames, sample["frame_indices"] = read_frames_at(self.root, video_id, times,
                                                                 self.video_fps.get(video_id), self.decoder)
                inputs["rgb"] = self.transform(frames)
            if "motion" in self.modalities:
                flow, sample["flow_indices"] = read_flow_at(self.root, video_id, times)
                inputs["motion"] = self.flow_transform(flow_from_jpeg(flow[:, 0], flow[:, 1]))
            if "features" in self.modalities:
                inputs["features"] = self.features.read(video_id, times)
        except DecodeError as exc:
            return {"skipped": f"{row['narration_id']}: {exc}"}
        sample["clip"] = inputs["rgb"] if self.modalities == ("rgb",) else inputs
        return sample


def load_split(folder: Path, split: str) -> pd.DataFrame:
    """One of actcli's EK100 split files (``train``, ``val``, ``test``, ``challenge``), columns checked."""
    from actcli.data.annotate import load_table

    table = load_table(folder / f"{split}.csv", required=SPLIT_REQUIRED)
    return table.astype({"narration_id": str, "video_id": str})


def video_rates(outputs: Path) -> dict[str, float]:
    """Original videos' fps from the downloaded ``EPIC_100_video_info.csv`` ({} if absent: probed instead)."""
    from actcli.data.registry import resolve_root
    from actcli.ek100.annotations import FILES, load_video_info

    try:
        path = resolve_root(outputs, "ek100-annotations", None) / FILES["video_info"]
    except UserError:
        return {}
    return load_video_info(path)["fps"].to_dict() if path.is_file() else {}
