"""EK100 media: both layouts sampled in seconds; anticipation never reads a frame at or after t_start - tau_a."""

from __future__ import annotations

import pytest
from ek100_trees import EK100, build_tree, real_rows

from actcli.data.video import DecodeError
from actcli.ek100.annotations import FILES, frames_fps, load_segments, load_video_info, timestamp_seconds
from actcli.ek100.media import frame_path, layout, read_frames_at, segment_times, time_to_index
from actcli.ek100.windows import observed_windows


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    rows = real_rows(8)
    roots = {kind: tmp_path_factory.mktemp(kind) for kind in ("frames", "videos")}
    for kind, root in roots.items():
        build_tree(root, rows, kind)
    return rows, roots


def test_segment_times_stay_inside_the_segment():
    assert segment_times(2.0, 4.0, 4) == [2.25, 2.75, 3.25, 3.75]
    times = segment_times(2.0, 4.0, 8, offset=0.999999999)
    assert all(2.0 <= t < 4.0 for t in times)
    assert time_to_index(1.0, 60) == 60 and time_to_index(0.9999, 60) == 59


def test_both_layouts_read_the_same_times(trees):
    rows, roots = trees
    info = load_video_info(EK100 / FILES["video_info"])
    for _, row in rows.head(4).iterrows():
        times = segment_times(timestamp_seconds(row.start_timestamp), timestamp_seconds(row.stop_timestamp), 4)
        frames, from_frames = read_frames_at(roots["frames"], row.video_id, times)
        video, from_video = read_frames_at(roots["videos"], row.video_id, times, info.loc[row.video_id, "fps"])
        assert layout(roots["frames"], row.video_id) == "frames" and layout(roots["videos"], row.video_id) == "videos"
        assert from_frames == [time_to_index(t, frames_fps(row.video_id)) for t in times]
        assert from_video == [time_to_index(t, info.loc[row.video_id, "fps"]) for t in times]
        assert frames.shape == video.shape == (4, 3, 48, 64)
        # The moving square lands in the same place: same moments, whatever the layout.
        assert (frames.float() - video.float()).abs().mean() < 12


@pytest.mark.parametrize("kind", ["frames", "videos"])
def test_anticipation_reads_nothing_at_or_after_t_start_minus_tau_a(trees, kind):
    rows, roots = trees
    table = load_segments(EK100 / FILES["validation"]).set_index("narration_id").loc[rows.narration_id].reset_index()
    windows, clipped, dropped = observed_windows(table, tau_a=1.0, tau_o=2.0, before_start="clip")
    assert dropped == int((table.start_s <= 1.0).sum()) and clipped > 0
    info = load_video_info(EK100 / FILES["video_info"])
    assert len(windows) == len(table) and (~windows.observable).sum() == dropped
    for _, row in windows[windows.observable].iterrows():
        fps = frames_fps(row.video_id) if kind == "frames" else info.loc[row.video_id, "fps"]
        times = segment_times(row.obs_start_s, row.obs_stop_s, 8, offset=0.999999)  # as late as sampling goes
        _, indices = read_frames_at(roots[kind], row.video_id, times, info.loc[row.video_id, "fps"])
        limit = row.start_s - 1.0
        assert all(index / fps < limit for index in indices), (row.narration_id, indices, limit)


def test_missing_frames_name_the_first_missing_file(trees, tmp_path):
    rows, roots = trees
    video_id = rows.video_id[0]
    with pytest.raises(DecodeError, match="frame_0000003061.jpg is missing"):  # 51 s x 60 fps, 1-indexed
        read_frames_at(roots["frames"], video_id, [1.0, 2.0, 51.0])
    with pytest.raises(DecodeError, match="neither"):
        read_frames_at(tmp_path, video_id, [1.0])
    assert frame_path(tmp_path, "P01_101", 0).name == "frame_0000000001.jpg" and frames_fps("P01_101") == 50
