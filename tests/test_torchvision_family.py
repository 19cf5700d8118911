"""The torchvision family: every model trains, infers and (where the suite has time) exports at a reduced
clip; published weights, written here in torchvision's own format, load offline and give torchvision's
own logits; the normalisation actcli applies is the one torchvision's weights publish."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from conftest import TRAIN_FLAGS
from torchvision.models import video as tv

from actcli.data.transforms import eval_transform
from actcli.data.video import ClipSpec
from actcli.engine.inference import prepare_for_inference
from actcli.engine.recipe import checkpoint_blocks
from actcli.errors import UserError
from actcli.models.checkpoint import load_file, load_initial_weights
from actcli.models.export import ExportMetadata, export_onnx, export_torchscript
from actcli.models.exported import load_exported
from actcli.models.families import torchvision as family
from actcli.models.freeze import apply_freeze, backbone_blocks, before_blocks
from actcli.models.multimodal import build_any
from actcli.models.zoo import MODELS, ActionModel, build_backbone, build_model, check_clip, get_entry
from actcli.settings import parse_model_config

CPU = torch.device("cpu")
NAMES = [name for name, entry in MODELS.items() if entry.family == "torchvision"]
SMALL = {name: ClipSpec(4, 2, 32) for name in NAMES} | {
    "s3d": ClipSpec(6, 2, 32),  # S3D pools time 8x: 6 frames is its least (see check_clip)
    # the transformers at 2 frames (one temporal patch): the cheapest clip they take, for the suite's time
    **{name: ClipSpec(2, 2, 32) for name in NAMES if family.KIND[name] in ("mvit", "swin")},
}
CLASSES = ["a", "b", "c"]
KINETICS = [f"k{i}" for i in range(400)]


def _clips(spec: ClipSpec, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, spec.frames, spec.crop, spec.crop, generator=torch.Generator().manual_seed(seed))


def _calibrate(model: torch.nn.Module, clips: torch.Tensor) -> torch.nn.Module:
    """BatchNorm statistics of ``clips`` (a freshly built S3D's eval outputs otherwise grow to 1e24), with
    ``eps`` 0.1: channels a random network leaves nearly constant would otherwise amplify float rounding
    100-fold (S3D's eps is 0.001), and no comparison of two fp32 computations could be held to 1e-4."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.eps = 0.1
        m.momentum = None  # a cumulative average: one batch sets them
    with torch.no_grad():
        model.train()(clips)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: these clips are tiny, and two threads on a busy 2-core machine spin-wait
    each other (a 6x32 S3D forward: 0.07 s on one thread, 4 s on two with the other core taken)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def built() -> dict[str, ActionModel]:
    """Each model built once at its small clip (filled lazily, shared by the tests below)."""
    return {}


def model_for(built: dict[str, ActionModel], name: str) -> ActionModel:
    if name not in built:
        torch.manual_seed(0)
        built[name] = _calibrate(build_model(name, SMALL[name], len(CLASSES)), _clips(SMALL[name], 4, seed=9))
    return built[name]


# ---------------------------------------------------------------------------- entries and conventions


def test_entries_state_torchvisions_weights_and_recipes():
    assert NAMES == ["r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v1_b", "mvit_v2_s", "swin3d_t", "swin3d_s",
                     "swin3d_b"]
    for name in NAMES:
        entry, weights = MODELS[name], family.kinetics_weights(name)
        preset = weights.transforms()
        assert entry.weights == entry.published == weights.url and entry.weights_url is None
        assert entry.accuracy == f"Kinetics-400 top-1 {weights.meta['_metrics']['Kinetics-400']['acc@1']:g} " \
                                 "(torchvision docs)"
        assert entry.clip.crop == preset.crop_size[0]
        assert entry.convention.short_side(entry.clip.crop) == preset.resize_size[0]
        assert list(entry.convention.mean) == list(preset.mean) and list(entry.convention.std) == list(preset.std)
        # the clip the weights were trained on: clip_len frames at frame_rate fps of 30 fps videos
        docs = weights.meta["_docs"]
        clip_len, rate = int(re.search(r"clip_len=(\d+)", docs)[1]), float(re.search(r"frame_rate=([\d.]+)", docs)[1])
        assert entry.clip.stride == round(30 / rate), name
        assert entry.clip.frames == (64 if name == "s3d" else clip_len), name  # S3D: trained on 64, evaluated on 128
        assert entry.clip.frames >= weights.meta.get("min_temporal_size", 1)
        assert entry.options.get("drop_path", True) is (family.KIND[name] in ("mvit", "swin"))
    assert MODELS["r3d_18"].convention.mean == (0.43216, 0.394666, 0.37645)  # not pytorchvideo's 0.45
    assert MODELS["mvit_v1_b"].convention.mean == (0.45, 0.45, 0.45)
    assert MODELS["swin3d_t"].convention.std == (0.229, 0.224, 0.225)


@pytest.mark.parametrize("name", NAMES)
def test_normalisation_is_torchvisions(name):
    # frames at the size torchvision resizes to (r3d [128, 171], s3d [256, 256], the rest short side 256):
    # both pipelines then crop, scale and normalise; they must agree exactly, in actcli's [C, T, H, W]
    entry, preset = MODELS[name], family.kinetics_weights(name).transforms()
    height = preset.resize_size[0]
    width = preset.resize_size[1] if len(preset.resize_size) > 1 else 300
    frames = torch.randint(0, 256, (3, 3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    ours = eval_transform(entry.clip.crop, entry.convention)(frames)
    theirs = preset(frames)  # [T, C, H, W] -> [C, T, H, W]
    assert ours.shape == theirs.shape == (3, 3, entry.clip.crop, entry.clip.crop)
    assert torch.allclose(ours, theirs, atol=1e-5)


# ---------------------------------------------------------------------------- training, inference, freezing


@pytest.mark.parametrize("name", NAMES)
def test_the_inference_copy_and_one_training_step(built, name):
    model, clips = model_for(built, name), _clips(SMALL[name])
    prepared, steps = prepare_for_inference(model, CPU, "32")
    assert ("conv_bn_folded" in steps) == (family.KIND[name] in ("resnet", "s3d"))  # MViT, Swin: LayerNorm only
    with torch.inference_mode():
        expected = model(clips)
        assert model.backbone(clips).shape == (2, model.head[-1].in_features)
        assert torch.allclose(prepared(clips), expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))
    assert (expected.std(dim=1) > 1e-4).all()
    if name in ("mc3_18", "s3d", "mvit_v1_b", "swin3d_t"):  # bf16 (autocast, fp32 classifier): one of each kind
        bf16, steps = prepare_for_inference(model, CPU, "bf16")
        assert "bfloat16_autocast" in steps and "fp32_classifier" in steps
        with torch.inference_mode():
            got = bf16(clips)
        scale = float(expected.abs().max())
        assert got.dtype == torch.float32 and torch.allclose(got, expected, rtol=0.1, atol=0.1 * scale)

    # then a real step on the shared model itself (a copy of the large ones costs seconds)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    logits = model.train()(clips)
    assert logits.shape == (2, len(CLASSES))
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    assert not [k for k, p in model.named_parameters() if p.grad is None]
    # a random S3D's gradients reach 1e20 on some runs (its activations grow that fast, see _calibrate):
    # clipped per element, the step keeps the shared model finite for the export tests that follow
    torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
    optimizer.step()
    changed = [k for k, p in model.named_parameters() if not torch.equal(p, before[k])]
    assert "head.1.weight" in changed and any(k.startswith("backbone.") for k in changed)
    model.zero_grad(set_to_none=True)
    model.eval()


@pytest.mark.parametrize("name", ["r3d_18", "s3d", "mvit_v1_b", "swin3d_t"])
def test_freeze_until_a_block_freezes_everything_before_it(built, name):
    model = copy.deepcopy(model_for(built, name))
    blocks, front = backbone_blocks(model.backbone), before_blocks(model.backbone)
    assert len(blocks) == {"resnet": 4, "s3d": 16, "mvit": 16, "swin": 7}[family.KIND[name]]
    # blocks, what runs before them and what follows (norm, pool) hold every parameter once
    inside = {id(p) for _, m in blocks + front for p in m.parameters()}
    rest = [n for n, p in model.backbone.named_parameters() if id(p) not in inside]
    assert all(n.startswith("norm.") for n in rest), rest
    frozen = apply_freeze(model, "until:1")
    assert frozen == [n for n, _ in front] + ["blocks.0", "blocks.1"]
    model.train()
    for _, module in front + blocks[:2]:
        assert not module.training and not any(p.requires_grad for p in module.parameters())
    assert all(p.requires_grad for _, m in blocks[2:] for p in m.parameters()) and model.head.training


def test_gradient_checkpointing_gives_the_same_gradients(built):
    clips = _clips(SMALL["mvit_v1_b"])
    grads = []
    for checkpointing in (False, True):
        model = copy.deepcopy(model_for(built, "mvit_v1_b")).train()  # blocks take and return (x, thw)
        if checkpointing:
            assert checkpoint_blocks(model.backbone) == 16
        torch.manual_seed(0)  # the same dropout and drop-path draws both times
        model(clips).sum().backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    assert all(torch.allclose(grads[0][k], grads[1][k], atol=1e-6) for k in grads[0])


@pytest.mark.parametrize("name", ["mc3_18", "swin3d_t"])
def test_rgb_and_motion_encoders_are_any_model(name):
    spec = SMALL[name]
    model = build_any(name, spec, len(CLASSES), 0.5, ["rgb", "motion"], "joint")
    inputs = {"rgb": _clips(spec), "motion": _clips(spec)[:, :2]}  # motion: 2 channels (x, y)
    model(inputs).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model(inputs).shape == (2, len(CLASSES))


def test_clips_a_model_cannot_take_are_one_line():
    cases = {("s3d", ClipSpec(4, 2, 32)): "at least 6 frames", ("s3d", ClipSpec(8, 2, 16)): "at least 17 px",
             ("mvit_v1_b", ClipSpec(5, 2, 32)): "even number of frames", ("mvit_v2_s", ClipSpec(4, 2, 30)):
             "divisible by 4", ("mvit_v2_s", ClipSpec(4, 2, 28)): "at least 32 px"}
    for (name, spec), expected in cases.items():
        with pytest.raises(UserError, match=expected) as error:
            check_clip(name, spec)
        assert "\n" not in str(error.value) and str(spec) in str(error.value)
    check_clip("swin3d_t", ClipSpec(1, 1, 8))  # pads to patches, shrinks windows
    check_clip("r3d_18", ClipSpec(1, 1, 8))
    with pytest.raises(UserError, match="has no stochastic depth"):
        check_clip("r3d_18", SMALL["r3d_18"], {"drop_path": 0.1})
    with pytest.raises(UserError, match="unknown key 'hidden_size'; Swin3D takes embed_dim"):
        check_clip("swin3d_t", SMALL["swin3d_t"], {"hidden_size": 8})
    with pytest.raises(UserError, match="takes no architecture overrides"):
        check_clip("r3d_18", SMALL["r3d_18"], {"embed_dim": 8})
    with pytest.raises(UserError, match="width 40 .* not divisible by its 3 heads"):
        check_clip("swin3d_t", SMALL["swin3d_t"], parse_model_config("embed_dim=20,num_heads=[2,3,4,8]"))
    with pytest.raises(UserError, match="one entry per stage"):
        check_clip("swin3d_t", SMALL["swin3d_t"], parse_model_config("depths=[2,2]"))


def test_a_narrow_swin3d_is_built_from_model_config():
    """``--model-config 'embed_dim=24,depths=[1,1,2,1]'``: torchvision's SwinTransformer3d with those arguments."""
    config = parse_model_config("embed_dim=24,depths=[1,1,2,1],num_heads=[2,4,8,8],window_size=[2,4,4]")
    model, dim = build_backbone("swin3d_t", SMALL["swin3d_t"], config)
    assert dim == 24 * 8 and [len(stage) for stage in model.features[::2]] == [1, 1, 2, 1]
    assert model.features[4][0].attn.num_heads == 8 and list(model.features[0][0].attn.window_size) == [2, 4, 4]
    assert model(torch.randn(1, 3, SMALL["swin3d_t"].frames, 32, 32)).shape == (1, dim)


def test_drop_path_sets_torchvisions_stochastic_depth(built):
    model = build_backbone("swin3d_t", SMALL["swin3d_t"], {"drop_path": 0.3})[0]
    rates = [block.stochastic_depth.p for stage in model.features[::2] for block in stage]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.3) and rates == sorted(rates)
    default = model_for(built, "swin3d_t").backbone  # built without --drop-path: torchvision's own default
    assert default.features[-1][-1].stochastic_depth.p == pytest.approx(0.1)


# ---------------------------------------------------------------------------- exports


def _exports_match(model: torch.nn.Module, name: str, tmp_path: Path, fmt: str) -> None:
    spec = SMALL[name]
    metadata = ExportMetadata(name, spec, tuple(CLASSES), convention=MODELS[name].convention)
    path, example = tmp_path / f"{name}.{fmt}", _clips(spec, 1)
    if fmt == "torchscript":
        exported = load_exported(export_torchscript(model, example, path, metadata))
    else:  # the legacy exporter (actcli's fallback; 2 s here, dynamo 10 s): S3D's pool kernel must be constant
        exported = load_exported(export_onnx(model, example, path, metadata, exporter="legacy"))
        assert "legacy" in exported.metadata.exporter
    assert exported.convention == MODELS[name].convention
    for batch in (1, 3):  # the batch dimension is dynamic
        clips = _clips(spec, batch, seed=batch)
        with torch.inference_mode():
            expected = model.eval()(clips)
        # 1e-4, or of the logits' scale above 1 (fp32 rounding; S3D's own vs fp64 is 1e-5 of it)
        assert (exported(clips) - expected).abs().max().item() <= 1e-4 * max(1.0, float(expected.abs().max()))


# Each kind once (mc3_18 through the CLI below). All nine export to both formats, dynamo ONNX included, with
# max logit differences under 2e-6 (docs/models.md); the transformers' ONNX takes 30 s to minutes.
@pytest.mark.parametrize(("name", "fmt"), [("s3d", "torchscript"), ("s3d", "onnx"), ("mvit_v1_b", "torchscript"),
                                           ("swin3d_t", "torchscript")])
def test_exports_match_pytorch(built, tmp_path, name, fmt):
    _exports_match(model_for(built, name), name, tmp_path, fmt)


# ---------------------------------------------------------------------------- published weights, offline


def _torchvision_network(name: str, seed: int) -> torch.nn.Module:
    """torchvision's own model (full architecture, random init), BatchNorm statistics not the identity."""
    torch.manual_seed(seed)
    network = getattr(tv, name)(weights=None)
    with torch.no_grad():
        for m in network.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return network.eval()


def _classifier(network: torch.nn.Module) -> torch.nn.Module:
    for path in ("fc", "classifier.1", "head.1", "head"):
        try:
            module = network.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(module, torch.nn.Linear | torch.nn.Conv3d):
            return module
    raise AssertionError(type(network).__name__)


def _published(hub: Path, name: str, network: torch.nn.Module) -> Path:
    """``network``'s state dict where torchvision caches ``name``'s published weights."""
    path = hub / "checkpoints" / Path(MODELS[name].weights).name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub cache, and no network: any download attempt fails at once."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))

    def offline(*_args, **_kwargs):
        raise urllib.error.URLError("no network in the tests")

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    return tmp_path / "hub"


@pytest.mark.parametrize(("name", "spec"), [
    ("r3d_18", SMALL["r3d_18"]), ("swin3d_t", ClipSpec(4, 2, 64)),
    ("s3d", ClipSpec(16, 2, 224)),  # torchvision's S3D pools 2x7x7 at the end: it takes no smaller clip
    ("mvit_v1_b", MODELS["mvit_v1_b"].clip),  # built for 16x224, as torchvision's builder makes it
])
def test_kinetics_weights_give_torchvisions_logits(hub, name, spec):
    network = _torchvision_network(name, seed=3)
    path = _published(hub, name, network)
    assert family.weights_cache(MODELS[name]) == path
    model = build_model(name, spec, len(KINETICS))
    loaded = load_initial_weights(model, name, "kinetics", KINETICS)
    assert loaded == f"backbone from {path}"  # no download: the file was in torch's hub cache
    source = _classifier(network)  # the head is new; copy torchvision's to compare logits
    with torch.no_grad():
        model.head[-1].weight.copy_(source.weight.reshape(model.head[-1].weight.shape))
        model.head[-1].bias.copy_(source.bias)
    clips = _clips(spec, 1, seed=4)
    with torch.inference_mode():
        expected, got = network(clips), model.eval()(clips)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max())), name
    assert (expected.std() > 1e-3).all()


@pytest.mark.parametrize("name", NAMES)
def test_every_state_dict_fits_without_its_classifier(name):
    with torch.device("meta"):
        theirs = getattr(tv, name)(weights=None).state_dict()
        ours = build_backbone(name, MODELS[name].clip)[0].state_dict()
    prefix = family.CLASSIFIER[family.KIND[name]]
    assert {k: v.shape for k, v in theirs.items() if not k.startswith(prefix)} == {k: v.shape for k, v in ours.items()}
    assert len(theirs) - len(ours) == 2  # the classifier's weight and bias


def test_weights_path_is_the_same_file(hub, tmp_path):
    network = _torchvision_network("r3d_18", seed=5)
    path = tmp_path / "mine.pth"
    torch.save(network.state_dict(), path)
    model = build_model("r3d_18", SMALL["r3d_18"], 3)
    assert load_initial_weights(model, "r3d_18", str(path), CLASSES) == f"backbone from {path}"
    expected = {k: v for k, v in network.state_dict().items() if not k.startswith("fc.")}
    assert all(torch.equal(v, expected[k]) for k, v in model.backbone.state_dict().items())
    torch.save({"model": network.state_dict(), "epoch": 3}, path)  # torchvision's reference scripts' checkpoints
    assert load_initial_weights(model, "r3d_18", str(path), CLASSES) == f"backbone from {path}"


def test_mvit_positions_are_resampled_to_the_clip(hub):
    spec = ClipSpec(4, 2, 32)  # patch grid 2x8x8; the weights' is 8x56x56 for 16x224
    for name in ("mvit_v1_b", "mvit_v2_s"):
        network = _torchvision_network(name, seed=6)
        _published(hub, name, network)
        model = build_model(name, spec, 3)
        assert "position tables resampled" in load_initial_weights(model, name, "kinetics", CLASSES)
        ours, theirs = model.backbone.state_dict(), network.state_dict()
        if name == "mvit_v1_b":
            # separable encodings: temporal [8, D] + spatial [56 * 56, D]; their sum is resampled trilinearly
            def grid(state, t, s):
                return state["pos_encoding.temporal_pos"][:, None, None] + state["pos_encoding.spatial_pos"].reshape(
                    s, s, -1)[None]
            full = grid(theirs, 8, 56).permute(3, 0, 1, 2)[None]
            expected = torch.nn.functional.interpolate(full, size=(2, 8, 8), mode="trilinear", align_corners=False)
            assert torch.allclose(grid(ours, 2, 8), expected[0].permute(1, 2, 3, 0), atol=1e-5)
            for key in ("pos_encoding.class_token", "pos_encoding.class_pos"):  # the cls token's, kept
                assert torch.equal(ours[key], theirs[key])
        else:  # relative tables, linearly as torchvision's forward does for other sizes
            key = "blocks.0.attn.rel_pos_h"
            assert torch.equal(ours[key], tv.mvit._interpolate(theirs[key], ours[key].shape[0]))
            assert ours[key].shape[0] < theirs[key].shape[0]
        with torch.inference_mode():
            assert torch.isfinite(model.eval()(_clips(spec))).all()


def test_offline_without_the_file_is_one_line_naming_weights_path(hub):
    entry = MODELS["r3d_18"]
    with pytest.raises(UserError) as error:
        family.resolve(entry, "kinetics")
    message = str(error.value)
    assert "--weights PATH" in message and entry.weights in message and "\n" not in message
    assert not list(hub.rglob("*.pth*"))  # nothing half-written
    # a host that refuses the connection (the real downloader, no mock)
    refused = dataclasses.replace(entry, weights="http://127.0.0.1:9/r3d_18-b3b3357e.pth")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.hub, "urlopen", urllib.request.urlopen)
        with pytest.raises(UserError, match="--weights PATH"):
            family.resolve(refused, "kinetics")
    with pytest.raises(UserError, match="hf: weights are for Hugging Face models"):
        family.resolve(entry, "hf:facebook/x")


def test_download_checks_torchvisions_hash(hub, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "urlopen", urllib.request.urlopen)  # file:// URLs: no network
    served = tmp_path / "served"
    served.mkdir()
    state = tv.r3d_18(weights=None).state_dict()
    plain = served / "plain.pth"
    torch.save(state, plain)
    digest = hashlib.sha256(plain.read_bytes()).hexdigest()
    good = served / f"r3d_18-{digest[:8]}.pth"
    bad = served / "r3d_18-00000000.pth"
    plain.rename(good)
    bad.write_bytes(good.read_bytes())
    wrong = dataclasses.replace(MODELS["r3d_18"], weights=bad.as_uri())
    with pytest.raises(UserError, match="does not match the hash in its name"):
        family.resolve(wrong, "kinetics")
    assert not (hub / "checkpoints" / bad.name).exists()
    right = dataclasses.replace(MODELS["r3d_18"], weights=good.as_uri())
    cached = family.resolve(right, "kinetics")
    assert cached == hub / "checkpoints" / good.name and cached.read_bytes() == good.read_bytes()
    good.unlink()  # now served from the cache
    assert family.resolve(right, "kinetics") == cached


# ---------------------------------------------------------------------------- through the CLI


def test_train_test_export_through_the_cli(cli, annotated, workdir, hub):
    line = cli.fails("train", "--dataset", "synthetic", "--model", "r3d_18", "--weights", "kinetics", *TRAIN_FLAGS)
    assert "--weights PATH" in line
    assert "at least 6 frames" in cli.fails("train", "--dataset", "synthetic", "--model", "s3d", *TRAIN_FLAGS)

    # mc3_18: the family's smallest (11.7 M parameters), the same VideoResNet code as r3d_18 and r2plus1d_18
    cli("train", "--dataset", "synthetic", "--model", "mc3_18", "--epochs", "1", "--experiment", "tv",
        "--freeze", "until:blocks.1", "--ema", "0.9", *TRAIN_FLAGS)
    (run,) = (workdir / "outputs" / "runs" / "tv").iterdir()
    checkpoint = load_file(run / "checkpoints" / "best.pt")
    assert checkpoint["model"] == "mc3_18" and checkpoint["clip"] == {"frames": 4, "stride": 2, "crop": 32}
    assert checkpoint["convention"]["mean"] == pytest.approx([0.43216, 0.394666, 0.37645])
    assert checkpoint["convention"]["resize"] == pytest.approx(128 / 112)
    cli("test", "--experiment", "tv", "--views", "1x2")
    for fmt, suffix in (("torchscript", ".ts"), ("onnx", ".onnx")):
        out = cli("export", "--experiment", "tv", "--format", fmt).output
        assert "max |logit difference| vs PyTorch" in out
        exported = load_exported(run / "checkpoints" / f"best{suffix}")
        assert exported.convention == get_entry("mc3_18").convention
