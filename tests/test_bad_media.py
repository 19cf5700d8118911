"""Bad and unusual media: every file either decodes to a correct clip or is skipped and counted;
nothing crashes mid-epoch. Each file is real, written here."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch
from test_video import DECODERS

from actcli.data.datasets import VideoClipDataset
from actcli.data.synthetic import SyntheticSpec, render_clip, write_video
from actcli.data.transforms import eval_transform
from actcli.data.video import ClipSpec
from actcli.report import read_report

SPEC = ClipSpec(frames=4, stride=2, crop=32)


def _encode(path: Path, frames: np.ndarray, codec: str = "mpeg4", pix_fmt: str = "yuv420p",
            times_ms: list[int] | None = None) -> None:
    """``uint8 [T, H, W, 3]`` frames; ``times_ms``: presentation times (variable frame rate)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.height, stream.width, stream.pix_fmt = frames.shape[1], frames.shape[2], pix_fmt
        if times_ms is not None:
            stream.time_base = Fraction(1, 1000)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[index], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def _clip(frames: int, width: int, height: int) -> np.ndarray:
    return render_clip("MoveRight", 1, 1, SyntheticSpec(frames=frames, width=width, height=height))


def make_bad_media(folder: Path) -> dict[str, bool]:
    """Write every kind of file; returns name -> whether it must decode (False: must be skipped)."""
    good = folder / "good.avi"
    write_video(good, _clip(16, 64, 48))
    (folder / "empty.avi").write_bytes(b"")
    (folder / "text.avi").write_text("this is not a video\n")
    (folder / "random.avi").write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    data = good.read_bytes()
    (folder / "truncated.avi").write_bytes(data[: len(data) * 2 // 5])
    write_video(folder / "two_frames.avi", _clip(2, 64, 48))  # shorter than one 4x2 clip (7 frames)
    write_video(folder / "one_frame.avi", _clip(1, 64, 48))
    _encode(folder / "odd_size.mkv", _clip(12, 33, 17), codec="ffv1", pix_fmt="yuv444p")
    _encode(folder / "grey.mkv", _clip(12, 64, 48), codec="ffv1", pix_fmt="gray")
    write_video(folder / "wide.avi", _clip(12, 320, 32))
    write_video(folder / "portrait.avi", _clip(12, 36, 96))
    irregular_ms = [0, 40, 50, 130, 140, 300, 310, 320, 400, 420, 560, 600]  # gaps of 10 to 160 ms, no count in header
    _encode(folder / "variable_rate.mkv", _clip(12, 64, 48), codec="ffv1", times_ms=irregular_ms)
    return {"good.avi": True, "empty.avi": False, "text.avi": False, "random.avi": False, "truncated.avi": None,
            "two_frames.avi": True, "one_frame.avi": True, "odd_size.mkv": True, "grey.mkv": True,
            "wide.avi": True, "portrait.avi": True, "variable_rate.mkv": True}


@pytest.fixture(scope="module")
def bad_media(tmp_path_factory) -> tuple[Path, dict[str, bool]]:
    folder = tmp_path_factory.mktemp("bad_media")
    return folder, make_bad_media(folder)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("training", [False, True])
def test_every_file_decodes_correctly_or_is_skipped(bad_media, decoder, training):
    folder, expected = bad_media
    table = pd.DataFrame({"path": list(expected), "label_id": [0] * len(expected)})
    dataset = VideoClipDataset(folder, table, SPEC, eval_transform(32), training, decoder=decoder)
    for index, (name, decodes) in enumerate(expected.items()):
        sample = dataset[index]  # never raises
        if "clip" in sample:
            assert decodes is not False, f"{name} should be skipped"
            clip = sample["clip"]
            assert clip.shape == (3, 4, 32, 32) and torch.isfinite(clip).all(), name
        else:
            assert decodes is not True, f"{name} should decode: {sample}"
            assert sample["skipped"].endswith(name)
    grey = dataset[list(expected).index("grey.mkv")]["clip"]
    assert torch.allclose(grey[0], grey[1]) and torch.allclose(grey[1], grey[2])  # grey: three equal channels


def test_training_survives_bad_files_and_counts_them(cli, annotated, workdir):
    """Files that went bad after annotate (zero bytes, text, truncated) are skipped and counted."""
    train = pd.read_csv(workdir / "annotations" / "synthetic" / "train.csv")
    victims = [annotated / p for p in train["path"][:3]]
    victims[0].write_bytes(b"")
    victims[1].write_text("not a video")
    victims[2].write_bytes(victims[2].read_bytes()[:200])
    out = cli("train", "--dataset", "synthetic", "--epochs", "2", "--experiment", "bad", "--frames", "4", "--stride",
              "2", "--crop", "32", "--workers", "0", "--batch-size", "2").output
    (run,) = (workdir / "outputs" / "runs" / "bad").iterdir()
    metrics = read_report(run / "report-train.json").metrics
    assert metrics["epochs"] == 2 and metrics["skipped_clips"] == 3  # each counted once, not once per epoch
    assert sorted(Path(p).name for p in metrics["skipped_files"]) == sorted(v.name for v in victims)
    assert "3 unreadable video(s) skipped" in " ".join(out.split())
