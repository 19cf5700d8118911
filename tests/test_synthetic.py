"""The synthetic dataset: deterministic, UCF layout, and classes that differ by motion."""

from __future__ import annotations

import numpy as np
import pytest

from actcli.data.synthetic import MOTIONS, SyntheticSpec, group_background, plan, render_clip

SPEC = SyntheticSpec(frames=16, width=96, height=72)


def _foreground(motion: str, clip: int = 1) -> np.ndarray:
    """Boolean [T, H, W]: pixels that differ from the group's background."""
    frames = render_clip(motion, 1, clip, SPEC).astype(int)
    background = group_background(1, SPEC.seed, SPEC.width, SPEC.height).astype(int)
    return np.abs(frames - background).sum(axis=-1) > 60


def test_same_seed_same_frames_other_seed_other_frames():
    assert np.array_equal(render_clip("Grow", 2, 1, SPEC), render_clip("Grow", 2, 1, SPEC))
    other = SyntheticSpec(frames=16, width=96, height=72, seed=1)
    assert not np.array_equal(render_clip("Grow", 2, 1, SPEC), render_clip("Grow", 2, 1, other))


@pytest.mark.parametrize(("motion", "axis", "sign"), [
    ("MoveLeft", 1, -1), ("MoveRight", 1, 1), ("MoveUp", 0, -1), ("MoveDown", 0, 1),
])
def test_moves_go_their_way(motion, axis, sign):
    mask = _foreground(motion)
    first, last = (np.argwhere(mask[t]).mean(axis=0)[axis] for t in (0, -1))
    assert sign * (last - first) > 5  # pixels


@pytest.mark.parametrize(("motion", "sign"), [("Grow", 1), ("Shrink", -1)])
def test_sizes_change_their_way(motion, sign):
    mask = _foreground(motion)
    assert sign * (int(mask[-1].sum()) - int(mask[0].sum())) > 0


def test_a_single_frame_does_not_tell_left_from_right():
    # Mid-clip positions of both classes follow the same distribution: over many clips the
    # mean horizontal position is about the same, so only the frame order tells the class.
    middle = SPEC.frames // 2
    centres = {m: np.mean([np.argwhere(_foreground(m, c)[middle]).mean(axis=0)[1] for c in range(1, 13)])
               for m in ("MoveLeft", "MoveRight")}
    assert abs(centres["MoveLeft"] - centres["MoveRight"]) < 0.1 * SPEC.width


def test_plan_spreads_clips_over_groups():
    items = plan(SyntheticSpec(classes=2, groups=3, clips_per_class=6))
    assert {m for m, _, _ in items} == set(MOTIONS[:2])
    assert sorted({g for _, g, _ in items}) == [1, 2, 3]
    with pytest.raises(ValueError):
        plan(SyntheticSpec(classes=9))
