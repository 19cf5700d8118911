"""Tiny EK100 media trees for real annotation rows: JPEG frames or MP4 videos, a few seconds long."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd
import torch
from torchvision.io import encode_jpeg, write_file

from actcli.ek100.annotations import FILES, frames_fps, timestamp_seconds
from actcli.ek100.media import frame_path, video_path

EK100 = Path(__file__).parent / "data" / "ek100"  # real annotation rows, see its README.md
SIZE = (48, 64)  # height, width


def frame_image(index: int, verb: int = 0) -> np.ndarray:
    """``uint8 [H, W, 3]``: a bright square whose position moves with ``index``; colour from ``verb``."""
    image = np.full((*SIZE, 3), 20, dtype=np.uint8)
    x = (index * 2) % (SIZE[1] - 12)
    image[10:22, x:x + 12] = (200, 40 + 20 * (verb % 8), 90)
    return image


def real_rows(count: int, max_stop: float = 6.0) -> pd.DataFrame:
    """The first ``count`` real validation rows that end within ``max_stop`` seconds of their video's start."""
    table = pd.read_csv(EK100 / FILES["validation"], dtype=str)
    stops = table["stop_timestamp"].map(timestamp_seconds)
    return table[stops <= max_stop].head(count).reset_index(drop=True)


def write_frames(root: Path, video_id: str, seconds: float) -> None:
    fps = frames_fps(video_id)
    for index in range(int(seconds * fps) + 1):
        path = frame_path(root, video_id, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_file(str(path), encode_jpeg(torch.from_numpy(frame_image(index)).permute(2, 0, 1), quality=80))


def write_video(root: Path, video_id: str, seconds: float, fps: float) -> None:
    path = video_path(root, video_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=round(fps))
        stream.height, stream.width, stream.pix_fmt = *SIZE, "yuv420p"
        for index in range(int(seconds * round(fps)) + 1):
            frame = av.VideoFrame.from_ndarray(frame_image(index), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def build_tree(root: Path, rows: pd.DataFrame, kind: str, seconds: float = 6.5) -> None:
    """Frames (``kind="frames"``) or videos (``"videos"``) for every video of ``rows``."""
    info = pd.read_csv(EK100 / FILES["video_info"]).set_index("video_id")
    for video_id in rows["video_id"].unique():
        if kind == "frames":
            write_frames(root, video_id, seconds)
        else:
            write_video(root, video_id, seconds, float(info.loc[video_id, "fps"]))
