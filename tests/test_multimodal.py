"""rgb + audio: datasets with and without sound, late and joint fusion, end to end through the CLI."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import TRAIN_FLAGS

from actcli.data.datasets import AUDIO_FRAMES, VideoClipDataset
from actcli.data.registry import remember_root
from actcli.data.synthetic import SyntheticSpec, generate, render_clip, write_video
from actcli.data.transforms import eval_transform
from actcli.data.video import ClipSpec
from actcli.engine.inference import prepare_for_inference
from actcli.engine.recipe import make_optimizer
from actcli.models.freeze import apply_freeze
from actcli.models.multimodal import HeadsView, MultiModalModel, build_any, parse_modalities
from actcli.report import read_report
from actcli.settings import TrainSettings

SPEC = ClipSpec(frames=4, stride=2, crop=32)
TINY_AUDIO = SyntheticSpec(classes=4, groups=3, clips_per_class=6, frames=16, width=64, height=48, audio=True)


@pytest.fixture(scope="module")
def sound_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("sound") / "synthetic"
    generate(root, TINY_AUDIO, workers=1)
    return root


def _inputs(batch: int = 2) -> dict[str, torch.Tensor]:
    return {"rgb": torch.randn(batch, 3, 4, 32, 32), "audio": torch.randn(batch, 1, 64, AUDIO_FRAMES)}


@pytest.mark.parametrize("fusion", ["late", "joint"])
def test_fusion_models_train_and_prepare(fusion):
    torch.manual_seed(0)
    model = build_any("r3d_tiny", SPEC, 5, 0.0, ["rgb", "audio"], fusion)
    assert isinstance(model, MultiModalModel) and model.modalities == ["rgb", "audio"]
    logits = model(_inputs())
    assert logits.shape == (2, 5)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    inputs = _inputs()
    with torch.inference_mode():
        expected = model(inputs)
        prepared, steps = prepare_for_inference(model, torch.device("cpu"), "32")
        assert "conv_bn_folded" in steps and torch.allclose(prepared(inputs), expected, atol=1e-4)
        if fusion == "late":  # fused scores = mean of each head's log-probabilities
            alone = [logits.log_softmax(1) for logits in HeadsView(model)(inputs).split(5, dim=1)]
            assert torch.allclose(expected, torch.stack(alone).mean(0), atol=1e-6)
    assert build_any("r3d_tiny", SPEC, 5, 0.0, ["rgb"]).__class__.__name__ == "ActionModel"
    with pytest.raises(ValueError, match="modalities"):
        parse_modalities("rgb,smell")


def test_dataset_reads_sound_and_counts_silent_videos(sound_dataset, tmp_path):
    silent = sound_dataset.parent / "silent.avi"
    write_video(silent, render_clip("MoveUp", 1, 1, SyntheticSpec(frames=16, width=64, height=48)))
    videos = sorted(sound_dataset.rglob("*.avi"))[:3] + [silent]
    table = pd.DataFrame({"path": [str(v.relative_to(sound_dataset.parent)) for v in videos], "label_id": [0] * 4})
    dataset = VideoClipDataset(sound_dataset.parent, table, SPEC, eval_transform(32), False,
                               modalities=["rgb", "audio"])
    assert dataset.silent_videos == ["silent.avi"] and len(dataset) == 4
    sample = dataset[0]["clip"]
    assert sample["rgb"].shape == (3, 4, 32, 32) and sample["audio"].shape == (1, 64, AUDIO_FRAMES)
    assert sample["audio"].std() > 0.5 and dataset[3]["clip"]["audio"].abs().max() == 0  # silence: zeros
    skipping = VideoClipDataset(sound_dataset.parent, table, SPEC, eval_transform(32), False,
                                modalities=["audio"], no_audio="skip")
    assert len(skipping) == 3 and set(skipping[0]["clip"]) == {"audio"}


def test_rgb_audio_train_and_test_report_each_modality(cli, sound_dataset, workdir):
    remember_root(workdir / "outputs", "synthetic", sound_dataset)
    cli("annotate", "--dataset", "synthetic")
    cli("train", "--dataset", "synthetic", "--epochs", "1", "--experiment", "av", "--modalities", "audio,rgb",
        *TRAIN_FLAGS)
    cli("test", "--experiment", "av", "--report", "av.json")
    metrics = read_report(workdir / "av.json").metrics
    assert set(metrics["per_modality_top1"]) == {"rgb", "audio"} and 0 <= metrics["top1"] <= 1
    cli("train", "--dataset", "synthetic", "--epochs", "1", "--experiment", "joint", "--modalities", "rgb,audio",
        "--fusion", "joint", *TRAIN_FLAGS)
    cli("test", "--experiment", "joint", "--report", "joint.json")
    assert read_report(workdir / "joint.json").metrics["per_modality_top1"] is None
    assert "drop --views" in cli.fails("test", "--experiment", "joint", "--views", "2x1")
    cli("test", "--experiment", "av", "--observe", "0.5,1", "--report", "early.json")  # early prediction, rgb+audio
    assert read_report(workdir / "early.json").metrics["ratios"] == [0.5, 1.0]
    assert "modalities" in cli.fails("train", "--dataset", "synthetic", "--modalities", "smell", *TRAIN_FLAGS)


def test_audio_stops_where_the_observed_picture_stops(tmp_path):
    # 0.64 s of video; silence for 0.2 s, then a loud tone.
    frames = render_clip("MoveUp", 1, 1, SyntheticSpec(frames=16, width=64, height=48))
    t = torch.arange(int(0.64 * 16_000)) / 16_000
    sound = torch.where(t < 0.2, torch.zeros_like(t), 0.8 * torch.sin(2 * torch.pi * 600 * t)).numpy()
    write_video(tmp_path / "v.avi", frames, audio=sound)
    table = pd.DataFrame({"path": ["v.avi"], "label_id": [0]})

    def loudest(observe):
        dataset = VideoClipDataset(tmp_path, table, SPEC, eval_transform(32), False, observe=observe,
                                   modalities=["audio"])
        return float(dataset[0]["clip"]["audio"].max())

    # Whole video: the centred 4x2 clip spans frames 4-10 (0.16-0.44 s) and hears the tone.
    # Observed quarter: frames 0-3 (0 - 0.16 s), so the sound must stop at 0.16 s, before the tone.
    assert loudest(None) > 0 and loudest(0.25) < -5


@pytest.mark.parametrize("mode", ["bn", "backbone"])
def test_frozen_parts_of_a_multimodal_model_stay_in_eval_mode(mode):
    torch.manual_seed(0)
    model = build_any("r3d_tiny", SPEC, 5, 0.0, ["rgb", "audio"], "weighted")
    apply_freeze(model, mode)
    bns = [m for m in model.encoders.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    stats = [(bn.running_mean.clone(), bn.running_var.clone()) for bn in bns]
    model.train()
    model.encoders["rgb"].train()  # any module's train(), not only the top model's
    assert bns and not any(bn.training for bn in bns) and model.heads.training
    optimizer = make_optimizer(model, TrainSettings(lr=0.1))
    torch.nn.functional.cross_entropy(model(_inputs()), torch.tensor([0, 3])).backward()
    optimizer.step()
    assert all(torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
               for bn, (mean, var) in zip(bns, stats, strict=True))
    assert all(p.grad is None for bn in bns for p in bn.parameters())
    assert all(p.grad is not None for p in model.heads.parameters()) and model.fusion_logits.grad is not None
    convs_train = all(p.grad is not None for p in model.encoders["audio"].net[0].parameters())
    assert convs_train == (mode == "bn")
