"""The pytorchvideo family: a real training step on a small clip, published checkpoints; `actcli models`.

(The torchvision and Hugging Face families have their own files: test_torchvision_family.py,
test_huggingface_family.py.)"""

from __future__ import annotations

import importlib
import json

import pytest
import torch

from actcli.data.video import ClipSpec
from actcli.engine.inference import prepare_for_inference
from actcli.errors import UserError
from actcli.models.checkpoint import load_initial_weights
from actcli.models.zoo import MODELS, build_model, get_entry, strip_classifier
from actcli.pipeline import clips_to_device, to_device

CPU = torch.device("cpu")
SMALL = ClipSpec(4, 2, 32)
"""A clip every model accepts, small enough for a CPU training step in about a second."""
SMALL_FOR = {"slowfast_r50": ClipSpec(8, 2, 32)}  # slow pathway: 2 of the 8 frames (0 and 7)
UNTRACEABLE = {"slowfast_r50", "mvit_base_16x4"}  # torch.fx cannot trace them: BatchNorm stays unfolded
BARE_STATE = {"efficient_x3d_xs"}  # published as a bare state dict, the others as {"model_state": ...}

PUBLISHED_PARAMS_M = {  # the pytorchvideo model zoo table (Kinetics-400)
    "x3d_xs": 3.79, "x3d_s": 3.79, "x3d_m": 3.79, "c2d_r50": 24.33, "i3d_r50": 28.04, "slow_r50": 32.45,
    "slowfast_r50": 34.57, "csn_r101": 22.21, "r2plus1d_r50": 28.11, "mvit_base_16x4": 36.61,
}
HUB_URLS = {  # module of pytorchvideo.models.hub -> its table of checkpoint URLs
    "x3d": "checkpoint_paths", "resnet": "checkpoint_paths", "slowfast": "checkpoint_paths",
    "csn": "checkpoint_paths", "r2plus1d": "checkpoint_paths", "vision_transformers": "checkpoint_paths",
    "efficient_x3d_mobile_cpu": "_checkpoint_paths",
}


PYTORCHVIDEO = [name for name, entry in MODELS.items() if entry.family == "pytorchvideo"]


def small(name: str) -> ClipSpec:
    return SMALL_FOR.get(name, SMALL)


@pytest.mark.parametrize("name", PYTORCHVIDEO)
def test_one_training_step_on_a_small_clip(name):
    torch.manual_seed(0)
    spec = small(name)
    model = to_device(build_model(name, spec, num_classes=3), CPU).train()
    clips = clips_to_device(torch.randn(2, 3, spec.frames, spec.crop, spec.crop), CPU)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    logits = model(clips)
    assert logits.shape == (2, 3)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    no_grad = [k for k, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters outside the forward pass: {no_grad[:3]}"
    optimizer.step()
    changed = [k for k, p in model.named_parameters() if not torch.equal(p, before[k])]
    assert "head.1.weight" in changed and any(k.startswith("backbone.") for k in changed)

    model.eval()
    with torch.no_grad():
        assert model(clips).shape == (2, 3)
        assert model.backbone(clips).shape == (2, model.head[-1].in_features)

    # The inference copy (SiLU, folded BatchNorm, channels-last; bf16) computes the same function.
    prepared, steps = prepare_for_inference(model, CPU, "32")
    assert ("conv_bn_folded" in steps) == (name not in UNTRACEABLE)
    with torch.inference_mode():
        expected = model(clips)
        scale = float(expected.abs().max())
        assert torch.allclose(prepared(clips), expected, rtol=1e-4, atol=1e-4 * scale)
        bf16, _ = prepare_for_inference(model, CPU, "bf16")
        got = bf16(clips)
        assert got.dtype == torch.float32 and torch.allclose(got, expected, rtol=0.1, atol=0.1 * scale)


@pytest.mark.parametrize("name", PYTORCHVIDEO)
def test_published_checkpoint_fills_the_backbone(name, tmp_path):
    spec = small(name)
    state = get_entry(name).build(spec).state_dict()  # the layout of the published Kinetics-400 file
    path = tmp_path / "kinetics.pyth"
    torch.save(state if name in BARE_STATE else {"model_state": state, "epoch": 196}, path)
    model = build_model(name, spec, num_classes=3)
    assert load_initial_weights(model, name, str(path), ["a", "b", "c"]).startswith("backbone from")
    backbone = model.backbone.state_dict()
    left_out = sorted(set(state) - set(backbone))
    assert len(left_out) == 2 and left_out[0].endswith(".bias") and left_out[1].endswith(".weight")
    assert state[left_out[1]].shape == (400, model.head[-1].in_features)  # only the 400-way projection
    assert all(torch.equal(value, state[key]) for key, value in backbone.items())


def test_kinetics_urls_are_pytorchvideos():
    hub_urls = {}
    for module, table in HUB_URLS.items():
        hub_urls.update(getattr(importlib.import_module(f"pytorchvideo.models.hub.{module}"), table))
    for name in PYTORCHVIDEO:
        assert MODELS[name].weights_url == hub_urls.get(name), name
    assert MODELS["r3d_tiny"].weights_url is None


@pytest.mark.parametrize("frames", [8, 16, 10])
def test_slowfast_slow_pathway_takes_the_frames_packpathway_takes(frames):
    # pytorchvideo's PackPathway (its SlowFast hub tutorial; PySlowFast's pack_pathway_output, which the
    # Kinetics weights were trained with) packs a [C, T, H, W] clip as slow = its frames
    # linspace(0, T - 1, T // alpha).long(), fast = the clip. Frame t of this clip holds the value t.
    model = build_model("slowfast_r50", ClipSpec(frames, 2, 32), num_classes=2).eval()
    seen = []
    model.backbone.blocks[0].register_forward_pre_hook(lambda _module, args: seen.append(list(args[0])))
    clips = torch.arange(frames, dtype=torch.float32).reshape(1, 1, frames, 1, 1).expand(2, 3, -1, 32, 32).clone()
    with torch.no_grad():
        out = model(clips)
    slow, fast = seen[0]
    assert torch.equal(fast, clips) and out.shape == (2, 2)
    if frames % 4 == 0:
        packed = torch.index_select(clips[0], 1, torch.linspace(0, frames - 1, frames // 4).long())
        assert torch.equal(slow[0], packed) and torch.equal(slow[1], packed)
        assert slow[0, 0, -1, 0, 0] == frames - 1  # the last frame, which every 4th frame (::4) misses
    else:  # PackPathway's T // 4 frames would not fit the fusion convolutions' ceil(T / 4): 10 -> 3, first to last
        assert slow[0, 0, :, 0, 0].tolist() == [0.0, 4.0, 9.0]


def test_mvit_refuses_clips_it_cannot_cut_into_patches():
    with pytest.raises(UserError, match="even number of frames"):
        build_model("mvit_base_16x4", ClipSpec(5, 2, 32), num_classes=2)


def test_strip_classifier_refuses_unknown_heads():
    with pytest.raises(TypeError, match="no known classifier head"):
        strip_classifier(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_models_lists_every_model_with_counted_cost(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "X3D_XS.pyth").write_bytes(b"cached")
    rows = {row["name"]: row for row in json.loads(cli("models", "--json", "--family", "pytorchvideo").stdout)}
    assert list(rows) == PYTORCHVIDEO
    for name, row in rows.items():
        assert row["params"] > 0 and row["gflops"] > 0, name
        assert row["clip"] == str(MODELS[name].clip)
        assert row["kinetics_url"] == MODELS[name].weights_url
        assert row["cached"] == (name == "x3d_xs")
    for name, params_m in PUBLISHED_PARAMS_M.items():
        assert rows[name]["params_m"] == pytest.approx(params_m, abs=0.006), name
    # X3D-XS: 0.60 GFLOPs in the paper, which counts multiply-adds; FlopCounterMode counts 2 FLOPs per multiply-add
    assert 1.0 < rows["x3d_xs"]["gflops"] < 1.4
    assert rows["slowfast_r50"]["gflops"] > rows["slow_r50"]["gflops"] > rows["c2d_r50"]["gflops"]


@pytest.mark.parametrize("family", ["torchvision", "huggingface"])
def test_models_lists_the_other_families_with_counted_cost(cli, workdir, family):
    rows = json.loads(cli("models", "--json", "--family", family).stdout)
    assert [r["name"] for r in rows] == [n for n, e in MODELS.items() if e.family == family] and rows
    for row in rows:
        assert row["params"] > 0 and row["gflops"] > 0 and row["weights"], row["name"]
        assert row["normalisation"].startswith("mean ") and row["family"] == family
    cached = json.loads((workdir / "outputs" / "cache" / "model_costs.json").read_text())
    assert len(cached) == len(rows)  # counted once, kept for the next `actcli models`
    assert json.loads(cli("models", "--json", "--family", family).stdout) == rows


def _linear_output_dtypes(model: torch.nn.Module, clips: torch.Tensor) -> dict[torch.nn.Linear, torch.dtype]:
    """Every ``nn.Linear`` in ``model`` -> the dtype of its output on ``clips``."""
    seen: dict[torch.nn.Linear, torch.dtype] = {}

    def record(module: torch.nn.Module, _args: tuple, out: torch.Tensor) -> None:
        seen[module] = out.dtype

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.inference_mode():
        model(clips)
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("name", ["mvit_base_16x4", "x3d_xs", "r3d_tiny"])
def test_bf16_inference_computes_in_bf16_except_the_classifier(name):
    torch.manual_seed(0)
    model = build_model(name, SMALL, num_classes=5).eval()
    clips = torch.randn(4, 3, SMALL.frames, SMALL.crop, SMALL.crop)
    prepared, steps = prepare_for_inference(model, CPU, "bf16")
    dtypes = _linear_output_dtypes(prepared, clips)
    in_fp32 = [m for m, dtype in dtypes.items() if dtype == torch.float32]
    assert [(m.in_features, m.out_features) for m in in_fp32] == [(model.head[-1].in_features, 5)]  # the classifier
    assert all(dtype == torch.bfloat16 for m, dtype in dtypes.items() if m not in in_fp32)
    assert "bfloat16_autocast" in steps and "fp32_classifier" in steps
    with torch.inference_mode():
        expected, got = model(clips), prepared(clips)
    assert got.dtype == torch.float32
    if name == "mvit_base_16x4":  # attention (qkv, proj) and MLP linears: nearly all of MViT's compute
        assert len(dtypes) - 1 >= 60
        # Random weights leave top-1 margins near bf16's rounding here, so compare the scores.
        scale = float(expected.abs().max())
        assert torch.allclose(got, expected, rtol=0.1, atol=0.1 * scale)
    else:  # convolutions in bf16 as before, the classifier in fp32: the same top-1 as fp32
        assert torch.equal(got.argmax(1), expected.argmax(1))
