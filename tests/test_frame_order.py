"""Frame ``i`` is the ``i``-th frame in display order, with both decoders, on files whose timestamps mislead.

The videos carry their own index in every frame (tests/indexed_video.py), so each test reads the
exact frames back. The files reproduce real phenomena: packed-bitstream XviD AVIs with B-frames
(UCF50/UCF101/HMDB51), MPEG-4 B-frames in AVI, H.264 B-frames in MP4, WebM/MKV starting at
t > 0, and variable frame rate.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from indexed_video import (
    decoded_indices,
    decoded_timestamps,
    read_index,
    write_pyav,
    write_xvid_avi,
    xvid_available,
)

from actcli.data.torchcodec_video import read_clip_torchcodec, unavailable_reason
from actcli.data.video import centre_clip_start, clip_indices, probe, read_clip, torchcodec_can_index

REQUIRED = os.environ.get("REQUIRE_TORCHCODEC") == "1"  # CI: FFmpeg (libraries and command) installed
if REQUIRED and not xvid_available():
    raise RuntimeError("REQUIRE_TORCHCODEC=1 but the ffmpeg command with libxvid is missing (apt-get install ffmpeg)")
TORCHCODEC = pytest.param(
    "torchcodec", marks=pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason())))
DECODERS = ["pyav", TORCHCODEC]
FRAMES = 90  # 3.6 s at 25 fps
CLIPS = [list(range(0, 29, 4)), [0], [1], [13, 14, 15, 16], [40, 2, 40], list(range(30, 60, 3)), [80, 85]]


def _read(path: Path, indices: list[int], decoder: str) -> list[int]:
    frames, _ = read_clip(path, lambda _info: indices, decoder)
    return [read_index(frame.numpy()) for frame in frames]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("indexed")
    regular = [40 * i for i in range(FRAMES)]
    files = {
        "mpeg4_bframes.avi": write_pyav(folder / "mpeg4_bframes.avi", "mpeg4", regular, b_frames=2),
        "h264_bframes.mp4": write_pyav(folder / "h264_bframes.mp4", "libx264", regular, b_frames=3),
        "offset.webm": write_pyav(folder / "offset.webm", "libvpx-vp9", [1000 + t for t in regular]),
        "offset.mkv": write_pyav(folder / "offset.mkv", "libx264", [1000 + t for t in regular], b_frames=2),
    }
    if xvid_available():
        files["xvid_packed.avi"] = write_xvid_avi(folder / "xvid_packed.avi", FRAMES)
    return files


def test_the_fixtures_reproduce_the_misleading_timestamps(videos):
    """What made the old reader wrong is really in the files: frames decode in display order, but
    the XviD timestamps are out of order and the MPEG-4 AVI's start one frame late."""
    for name in ("mpeg4_bframes.avi", "h264_bframes.mp4", "offset.webm", "offset.mkv"):
        assert decoded_indices(videos[name])[:60] == list(range(60)), name
    assert decoded_timestamps(videos["mpeg4_bframes.avi"])[0] != 0
    assert probe(videos["offset.webm"]).start == pytest.approx(1.0)
    if "xvid_packed.avi" in videos:
        stamps = decoded_timestamps(videos["xvid_packed.avi"])
        assert any(b is not None and a is not None and b < a for a, b in zip(stamps, stamps[1:], strict=False))
        assert decoded_indices(videos["xvid_packed.avi"])[:60] == list(range(60))


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("name", ["xvid_packed.avi", "mpeg4_bframes.avi", "h264_bframes.mp4", "offset.webm",
                                  "offset.mkv"])
def test_frame_i_is_the_ith_displayed_frame(videos, name, decoder):
    if name not in videos:
        pytest.skip("the ffmpeg command with libxvid is not installed (apt-get install ffmpeg)")
    for indices in CLIPS:
        assert _read(videos[name], indices, decoder) == indices, (name, indices)


@pytest.mark.parametrize("decoder", DECODERS)
def test_start_offset_counts_the_frames_that_are_there(videos, decoder):
    """A WebM/MKV starting at 1 s holds 90 frames, not 90 + 25; the centred clip is centred on them."""
    for name in ("offset.webm", "offset.mkv"):
        info = probe(videos[name])
        assert info.frames == FRAMES
        centred = clip_indices(info.frames, 8, 4, centre_clip_start(info.frames, 8, 4))
        assert _read(videos[name], centred, decoder) == centred


def test_torchcodec_is_not_used_where_it_cannot_index(videos):
    """AVIs go to PyAV whatever the decoder: torchcodec's timestamp index is off by frames on them."""
    if unavailable_reason() is not None:
        pytest.skip(str(unavailable_reason()))
    name = "xvid_packed.avi" if "xvid_packed.avi" in videos else "mpeg4_bframes.avi"
    assert not torchcodec_can_index(videos[name]) and torchcodec_can_index(videos["offset.webm"])
    indices = list(range(0, 29, 4))
    alone, _ = read_clip_torchcodec(videos[name], lambda _info: indices)
    assert [read_index(f.numpy()) for f in alone] != indices  # the phenomenon: torchcodec alone misplaces frames
    assert _read(videos[name], indices, "torchcodec") == indices  # read_clip chooses PyAV for this file


@pytest.fixture(scope="module")
def vfr_video(tmp_path_factory) -> tuple[Path, list[int]]:
    """60 frames at 25 fps with a stretch at half rate (frames 20-29 last 80 ms) and a 200 ms hold at 45."""
    times, now = [], 0
    for index in range(60):
        times.append(now)
        now += 80 if 20 <= index < 30 else 200 if index == 45 else 40
    return write_pyav(tmp_path_factory.mktemp("vfr") / "vfr.mp4", "libx264", times, b_frames=2), times


@pytest.mark.parametrize("decoder", DECODERS)
def test_variable_frame_rate_fills_gaps_with_the_nearest_earlier_frame(vfr_video, decoder):
    path, times = vfr_video
    info = probe(path)
    assert not info.constant_rate
    slots = list(range(info.frames))
    got = _read(path, slots, decoder)
    # slot i shows the last frame whose time is not after start + i / fps: never a later frame
    expected = [max(k for k, t in enumerate(times) if t / 1000 <= info.start + i / info.fps + 1e-4) for i in slots]
    assert got == expected
    assert got == sorted(got)  # display order: a gap never pulls a later frame in front of an earlier one
    assert _read(path, [27, 20, 28], decoder) == [expected[27], expected[20], expected[28]]
