"""Decoding only the needed frames, frame-index sampling and transforms, on real files."""

from __future__ import annotations

import os

import av
import pytest
import torch

from actcli.data.synthetic import SyntheticSpec, render_clip, write_video
from actcli.data.torchcodec_video import unavailable_reason
from actcli.data.transforms import eval_transform, train_transform
from actcli.data.video import (
    DecodeError,
    centre_clip_start,
    clip_indices,
    clip_span,
    probe,
    read_clip,
    read_frames,
    resolve_decoder,
)
from actcli.errors import UserError

# CI installs FFmpeg's libraries and sets REQUIRE_TORCHCODEC=1, so there these tests cannot skip.
if os.environ.get("REQUIRE_TORCHCODEC") == "1" and unavailable_reason():
    raise RuntimeError(f"REQUIRE_TORCHCODEC=1 but {unavailable_reason()}")
TORCHCODEC = pytest.param(
    "torchcodec", marks=pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
)
DECODERS = ["pyav", TORCHCODEC]


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


@pytest.mark.parametrize("decoder", DECODERS)
def test_read_frames_matches_full_decode(video, decoder):
    full = _all_frames(video).permute(0, 3, 1, 2)  # [T, C, H, W]
    for indices in ([0, 1, 2], [30, 34, 38, 42], [59], [50, 10, 50]):
        assert torch.equal(read_frames(video, indices, decoder), full[indices])


@pytest.mark.parametrize("decoder", DECODERS)
def test_indices_past_the_end_repeat_the_last_frame(video, decoder):
    frames = read_frames(video, [58, 59, 70], decoder)
    assert torch.equal(frames[2], frames[1])


@pytest.mark.parametrize("decoder", DECODERS)
def test_clip_chosen_from_the_header_once(video, decoder):
    calls = []

    def choose(info):
        calls.append(info)
        return clip_indices(info.frames, 4, 12, 5)

    frames, indices = read_clip(video, choose, decoder)
    assert len(calls) == 1 and (calls[0].frames, calls[0].width, calls[0].height) == (60, 64, 48)
    assert indices == [5, 17, 29, 41] and frames.shape == (4, 3, 48, 64) and frames.dtype == torch.uint8


@pytest.mark.parametrize("decoder", [TORCHCODEC])
def test_torchcodec_falls_back_to_pyav_on_a_file_it_cannot_read(tmp_path, decoder):
    # An MPEG-4 stream in a raw .m4v elementary stream: no container index, frame count unknown.
    path = tmp_path / "raw.m4v"
    frames = render_clip("MoveLeft", 1, 1, SyntheticSpec(frames=12, width=64, height=48))
    with av.open(str(path), "w", format="m4v") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    pyav = read_frames(path, [0, 3], "pyav")
    assert torch.equal(read_frames(path, [0, 3], decoder), pyav)


def test_resolve_decoder():
    assert resolve_decoder("pyav") == "pyav"
    assert resolve_decoder("auto") == ("pyav" if unavailable_reason() else "torchcodec")
    with pytest.raises(UserError, match="choose one of"):
        resolve_decoder("opencv")


def test_clip_index_math():
    assert clip_span(4, 12) == 37
    assert clip_indices(100, 4, 12, 10) == [10, 22, 34, 46]
    assert clip_indices(20, 4, 12, 0) == [0, 12, 19, 19]  # clamped to the last frame
    assert centre_clip_start(100, 4, 12) == 31
    assert centre_clip_start(10, 4, 12) == 0


@pytest.mark.parametrize("decoder", DECODERS)
def test_corrupt_and_missing_files_raise_decode_error(tmp_path, decoder):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"RIFF" + b"\x00" * 200)
    with pytest.raises(DecodeError):
        read_clip(bad, lambda info: [0], decoder)
    with pytest.raises(DecodeError):
        read_clip(tmp_path / "missing.avi", lambda info: [0], decoder)
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
