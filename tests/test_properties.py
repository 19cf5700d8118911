"""Property-based tests (hypothesis) of the invariants everything else relies on:
splits are disjoint by group and cover every clip once; sampled frame indices stay inside the
video and the observed part; metrics equal their definitions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from actcli.data.annotate import group_split
from actcli.data.datasets import VideoClipDataset, WindowPastEnd
from actcli.data.motion import with_previous
from actcli.data.transforms import eval_transform
from actcli.data.video import ClipSpec, VideoInfo
from actcli.ek100.media import segment_times, time_to_flow_index, time_to_index
from actcli.engine.evaluate import Predictions, classification_metrics, confusion_matrix, topk_accuracy

FAST = settings(max_examples=60, deadline=None)


@st.composite
def annotation_tables(draw) -> pd.DataFrame:
    groups = draw(st.integers(1, 12))
    labels = draw(st.integers(1, 5))
    rows = [(f"g{g}", f"c{c}") for g in range(groups) for c in range(labels)
            for _ in range(draw(st.integers(0, 3)))]
    if not rows:
        rows = [("g0", "c0")]
    return pd.DataFrame(rows, columns=["group", "label"]).assign(path=lambda t: [f"v{i}.avi" for i in range(len(t))])


@FAST
@given(table=annotation_tables(), fractions=st.sampled_from([(70, 15, 15), (60, 20, 20), (80, 20, 0), (1, 1, 1)]))
def test_splits_are_disjoint_by_group_and_cover_every_clip_once(table, fractions):
    split = group_split(table, fractions, tries=20)
    assert split.index.equals(table.index) and split.notna().all()  # every clip exactly once
    assert set(split) <= {"train", "val", "test"}
    assert (table.assign(split=split).groupby("group")["split"].nunique() == 1).all()  # no group in two splits
    if fractions[2] == 0 and table["group"].nunique() >= 2:
        assert "test" not in set(split)


def _dataset(spec: ClipSpec, training: bool, observe) -> VideoClipDataset:
    table = pd.DataFrame({"path": ["unused.avi"], "label_id": [0]})
    return VideoClipDataset(".", table, spec, eval_transform(16), training, observe=observe)


@FAST
@given(total=st.integers(1, 400), frames=st.integers(1, 32), stride=st.integers(1, 8), training=st.booleans(),
       observe=st.one_of(st.none(), st.floats(0.01, 1.0), st.tuples(st.floats(0.01, 0.5), st.floats(0.5, 1.0))),
       seed=st.integers(0, 2**16))
def test_frame_indices_stay_inside_the_video_and_the_observed_part(total, frames, stride, training, observe, seed):
    torch.manual_seed(seed)
    dataset = _dataset(ClipSpec(frames, stride, 16), training, observe)
    indices = dataset.choose_indices(VideoInfo(frames=total, fps=25.0, width=64, height=48))
    high = observe[1] if isinstance(observe, tuple) else observe
    visible = total if high is None else max(1, min(total, math.floor(high * total)))
    assert len(indices) == frames and all(0 <= i < visible for i in indices)
    assert indices == sorted(indices)
    motion = with_previous(indices)  # motion reads each frame and the one before it, nothing later
    assert max(motion) == max(indices) and min(motion) >= 0


@FAST
@given(start=st.floats(0, 3000), length=st.floats(0.01, 60), count=st.integers(1, 32), offset=st.floats(0, 1),
       fps=st.sampled_from([50.0, 59.94, 60.0, 25.0, 30.0]))
def test_segment_times_and_frames_never_pass_the_end_of_the_window(start, length, count, offset, fps):
    stop = start + length
    times = segment_times(start, stop, count, offset)
    assert all(start <= t < stop for t in times)
    for t in times:
        assert time_to_index(t, fps) / fps <= t  # the frame read starts at or before t
        k = time_to_flow_index(t, fps)
        assert (2 * k + 1) / fps <= max(t, 1 / fps) + 1e-9  # flow frame k: its RGB frames start by t


@FAST
@given(n=st.integers(1, 60), k=st.integers(2, 9), seed=st.integers(0, 2**16))
def test_metrics_equal_their_definitions(n, k, seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=generator)
    labels = torch.randint(0, k, (n,), generator=generator)
    ranks = logits.argsort(dim=1, descending=True)
    for top in (1, 3, 5):
        expected = sum(int(labels[i]) in ranks[i, :min(top, k)].tolist() for i in range(n)) / n
        assert math.isclose(topk_accuracy(logits, labels, top), expected, abs_tol=1e-6)
    predicted = logits.argmax(1)
    cm = confusion_matrix(predicted, labels, k)
    for true in range(k):
        for guess in range(k):
            assert int(cm[true, guess]) == int(((labels == true) & (predicted == guess)).sum())
    metrics, _ = classification_metrics(Predictions(logits, labels, torch.arange(n)), [f"c{i}" for i in range(k)],
                                        "test")
    present = [c for c in range(k) if (labels == c).any()]
    recalls = [float(((predicted == c) & (labels == c)).sum() / (labels == c).sum()) for c in present]
    assert math.isclose(metrics.mean_class_accuracy, float(np.mean(recalls)), abs_tol=1e-6)
    assert math.isclose(metrics.top1, float((predicted == labels).float().mean()), abs_tol=1e-6)


@FAST
@given(total=st.integers(1, 400), fps=st.sampled_from([25.0, 29.97, 30.0]), start=st.floats(0, 10),
       length=st.floats(0.04, 10), frames=st.integers(1, 16), stride=st.integers(1, 4), training=st.booleans(),
       seed=st.integers(0, 2**16))
def test_clips_cut_from_longer_files_stay_inside_their_times(total, fps, start, length, frames, stride, training,
                                                             seed):
    torch.manual_seed(seed)
    dataset = _dataset(ClipSpec(frames, stride, 16), training, None)
    info = VideoInfo(frames=total, fps=fps, width=64, height=48)
    if start >= info.duration:  # no frame of the clip exists: skipped and counted, never the last frame
        with pytest.raises(WindowPastEnd):
            dataset.choose_indices(info, (start, start + length))
        return
    indices = dataset.choose_indices(info, (start, start + length))
    first = min(math.floor(start * fps), total - 1)
    stop = max(first + 1, min(total, math.ceil((start + length) * fps)))
    assert all(first <= i < stop for i in indices), (indices, first, stop)
