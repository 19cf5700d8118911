"""The audio modality on real files: synthetic videos with and without a sound track."""

from __future__ import annotations

import pytest
import torch

from actcli.data.audio import SAMPLE_RATE, NoAudio, has_audio, log_mel, read_audio
from actcli.data.synthetic import FPS, SyntheticSpec, class_names, generate, render_clip, write_video
from actcli.data.synthetic_audio import render_sound

SPEC = SyntheticSpec(classes=4, groups=2, clips_per_class=2, frames=32, width=64, height=48, audio=True)


@pytest.fixture(scope="module")
def sound_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio")
    generate(root, SPEC, workers=1)
    return root


def test_audio_classes_pair_motions_with_sounds(sound_videos):
    assert list(class_names(SPEC)) == ["MoveLeftBeep", "MoveLeftHiss", "MoveRightBeep", "MoveRightHiss"]
    assert len(list(sound_videos.rglob("*.avi"))) == 8
    with pytest.raises(ValueError, match="even"):
        class_names(SyntheticSpec(classes=3, audio=True))


def test_read_audio_returns_the_written_samples(sound_videos):
    path = sound_videos / "MoveLeftBeep" / "v_MoveLeftBeep_g01_c01.avi"
    expected = torch.from_numpy(render_sound("Beep", [0, 0, 1, 1, 1], SPEC.frames / FPS))
    got = read_audio(path, 0.25, 0.75)
    assert got.shape == (SAMPLE_RATE // 2,)
    assert torch.allclose(got, expected[SAMPLE_RATE // 4:3 * SAMPLE_RATE // 4], atol=1e-4)  # 16-bit PCM
    tail = read_audio(path, 1.0, 2.0)  # the clip lasts 1.28 s: the rest is zeros
    assert tail[int(0.3 * SAMPLE_RATE):].abs().max() == 0 and tail[:1000].abs().max() > 0


def test_beep_and_hiss_differ_in_the_spectrogram(sound_videos):
    beep = log_mel(read_audio(sound_videos / "MoveLeftBeep" / "v_MoveLeftBeep_g01_c01.avi", 0, 1.28))
    hiss = log_mel(read_audio(sound_videos / "MoveLeftHiss" / "v_MoveLeftHiss_g01_c01.avi", 0, 1.28))
    assert beep.shape == hiss.shape == (1, 64, 129)
    low, high = slice(0, 24), slice(40, 64)  # mel bands below ~1 kHz, above ~2.5 kHz
    assert beep[0, low].mean() - beep[0, high].mean() > hiss[0, low].mean() - hiss[0, high].mean() + 2


def test_video_without_audio_is_reported(tmp_path):
    path = tmp_path / "v_MoveUp_g01_c01.avi"
    write_video(path, render_clip("MoveUp", 1, 1, SyntheticSpec(frames=8, width=64, height=48)))
    assert not has_audio(path) and not has_audio(tmp_path / "missing.avi")
    with pytest.raises(NoAudio, match="no audio track"):
        read_audio(path, 0, 0.2)
