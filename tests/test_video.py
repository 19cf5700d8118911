"""Decoding only the needed frames, frame-index sampling and transforms, on real files."""

from __future__ import annotations

import av
import pytest
import torch

from actcli.data.synthetic import SyntheticSpec, render_clip, write_video
from actcli.data.transforms import eval_transform, train_transform
from actcli.data.video import (
    DecodeError,
    centre_clip_start,
    clip_indices,
    clip_span,
    probe,
    read_clip,
    read_frames,
)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "v_MoveRight_g01_c01.avi"
    write_video(path, render_clip("MoveRight", 1, 1, SyntheticSpec(frames=60, width=64, height=48)))
    return path


def _all_frames(path):
    with av.open(str(path)) as container:
        return torch.stack([torch.from_numpy(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)])


def test_probe_reports_header(video):
    info = probe(video)
    assert (info.frames, info.width, info.height) == (60, 64, 48)
    assert info.fps == 25 and info.duration == pytest.approx(2.4)


def test_read_frames_matches_full_decode(video):
    full = _all_frames(video).permute(0, 3, 1, 2)  # [T, C, H, W]
    for indices in ([0, 1, 2], [30, 34, 38, 42], [59], [50, 10, 50]):
        assert torch.equal(read_frames(video, indices), full[indices])


def test_indices_past_the_end_repeat_the_last_frame(video):
    frames = read_frames(video, [58, 59, 70])
    assert torch.equal(frames[2], frames[1])


def test_clip_index_math():
    assert clip_span(4, 12) == 37
    assert clip_indices(100, 4, 12, 10) == [10, 22, 34, 46]
    assert clip_indices(20, 4, 12, 0) == [0, 12, 19, 19]  # clamped to the last frame
    assert centre_clip_start(100, 4, 12) == 31
    assert centre_clip_start(10, 4, 12) == 0


def test_corrupt_and_missing_files_raise_decode_error(tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"RIFF" + b"\x00" * 200)
    with pytest.raises(DecodeError):
        read_clip(bad, lambda info: [0])
    with pytest.raises(DecodeError):
        probe(tmp_path / "missing.avi")


def test_transforms_shapes_and_determinism(video):
    frames = read_frames(video, list(range(0, 32, 4)))  # [8, 3, 48, 64] uint8
    out = eval_transform(32)(frames)
    assert out.shape == (3, 8, 32, 32) and out.dtype == torch.float32
    assert torch.equal(out, eval_transform(32)(frames))
    torch.manual_seed(0)
    augmented = train_transform(32, hflip=True)(frames)
    assert augmented.shape == (3, 8, 32, 32)
    assert -3 < float(augmented.mean()) < 3
