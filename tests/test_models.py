"""Zoo models: real forward/backward, frozen backbones, checkpoint formats."""

from __future__ import annotations

import pytest
import torch

from actcli.data.video import ClipSpec
from actcli.engine.inference import inference_precision, native_bf16
from actcli.errors import UserError
from actcli.models.checkpoint import load_file, load_initial_weights, model_from_checkpoint, save_checkpoint
from actcli.models.zoo import MODELS, build_model, get_entry

SPEC = ClipSpec(4, 2, 32)


def test_native_clip_specs():
    assert {n: str(e.clip) for n, e in MODELS.items() if e.family == "pytorchvideo"} == {
        "x3d_xs": "4x12@160", "x3d_s": "13x6@160", "x3d_m": "16x5@224", "x3d_l": "16x5@312",
        "efficient_x3d_xs": "4x12@160", "slow_r50": "8x8@224", "slowfast_r50": "32x2@224", "c2d_r50": "8x8@224",
        "i3d_r50": "8x8@224", "r2plus1d_r50": "16x4@224", "csn_r101": "32x2@224", "mvit_base_16x4": "16x4@224",
        "r3d_tiny": "8x4@64",
    }


def test_forward_backward_shapes():
    model = build_model("x3d_xs", SPEC, num_classes=5)
    logits = model(torch.randn(2, 3, 4, 32, 32))
    assert logits.shape == (2, 5)
    logits.sum().backward()
    assert model.head[-1].weight.grad is not None
    assert any(p.grad is not None for p in model.backbone.parameters())


def test_unknown_model_suggests_the_closest():
    with pytest.raises(UserError, match="did you mean x3d_s"):
        get_entry("x3d_ss")


def test_frozen_backbone_stays_in_eval_mode_and_keeps_bn_statistics():
    model = build_model("x3d_xs", SPEC, num_classes=3)
    model.freeze_backbone()
    model.train()
    bn = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm3d))
    before = bn.running_mean.clone()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = model(torch.randn(2, 3, 4, 32, 32)).sum()
    loss.backward()
    optimizer.step()
    assert not model.backbone.training and model.head.training
    assert torch.equal(bn.running_mean, before)
    assert all(p.grad is None for p in model.backbone.parameters())


def test_pytorchvideo_zoo_checkpoint_loads_into_backbone(tmp_path):
    source = get_entry("x3d_xs").build(SPEC)  # same layout as the published Kinetics file
    path = tmp_path / "X3D_XS.pyth"
    torch.save({"model_state": source.state_dict(), "epoch": 1}, path)
    model = build_model("x3d_xs", SPEC, num_classes=3)
    load_initial_weights(model, "x3d_xs", str(path), ["a", "b", "c"])
    key = "blocks.0.conv.conv_t.weight"
    assert torch.equal(model.backbone.state_dict()[key], source.state_dict()[key])


def test_checkpoint_round_trip_and_class_check(tmp_path):
    model = build_model("x3d_xs", SPEC, num_classes=2).eval()
    path = tmp_path / "best.pt"
    save_checkpoint(path, model, model_name="x3d_xs", clip=SPEC, classes=["a", "b"], settings={"x": 1}, epoch=3)
    loaded, data = model_from_checkpoint(path)
    clip = torch.randn(1, 3, 4, 32, 32)
    assert torch.allclose(loaded.eval()(clip), model(clip))
    assert data["epoch"] == 3 and data["classes"] == ["a", "b"]
    # Other classes: transfer learning, the backbone is loaded and the head stays new.
    other = build_model("x3d_xs", SPEC, 3)
    head = other.head.state_dict()
    assert "2-class head replaced" in load_initial_weights(other, "x3d_xs", str(path), ["a", "b", "c"])
    key = "blocks.0.conv.conv_t.weight"
    assert torch.equal(other.backbone.state_dict()[key], model.backbone.state_dict()[key])
    assert all(torch.equal(v, head[k]) for k, v in other.head.state_dict().items())
    with pytest.raises(UserError, match="pass --model x3d_xs"):
        load_initial_weights(build_model("r3d_tiny", SPEC, 2), "r3d_tiny", str(path), ["a", "b"])


def test_weights_only_loading_refuses_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state": print}, path)
    with pytest.raises(UserError, match="refused"):
        load_file(path)


def test_inference_precision_choice():
    cpu = torch.device("cpu")
    assert inference_precision("auto", cpu) == ("bf16" if native_bf16(cpu) else "32")
    assert inference_precision("32", cpu) == "32" and inference_precision("bf16", cpu) == "bf16"
    with pytest.raises(UserError, match="needs a CUDA GPU"):
        inference_precision("16", cpu)
