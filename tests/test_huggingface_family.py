"""The Hugging Face family (VideoMAE, TimeSformer, ViViT, V-JEPA 2): every model builds, trains a step and
exports at a reduced clip and width; published weights load offline from a ``save_pretrained`` folder and
from a Hub cache, and give the library's own features on the library's own preprocessing."""

from __future__ import annotations

import ast
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TRAIN_FLAGS

from actcli.data.transforms import eval_transform
from actcli.data.video import ClipSpec
from actcli.engine.inference import prepare_for_inference
from actcli.errors import UserError
from actcli.models.checkpoint import load_file, load_initial_weights
from actcli.models.export import ExportMetadata, export_onnx, export_torchscript
from actcli.models.exported import load_exported
from actcli.models.families import huggingface as hf
from actcli.models.freeze import apply_freeze, backbone_blocks
from actcli.models.zoo import MODELS, build_model, check_clip

CPU = torch.device("cpu")
SPEC = ClipSpec(4, 2, 32)
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
TINY_VJEPA2 = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "mlp_ratio": 2.0,
               "num_pooler_layers": 1}
HF_MODELS = [name for name, entry in MODELS.items() if entry.family == "huggingface"]
BY_ARCH = {"videomae": "videomae_small", "timesformer": "timesformer_base", "vivit": "vivit_base",
           "vjepa2": "vjepa2_vitl"}
CLASSES = ["a", "b", "c"]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def tiny(name: str) -> dict:
    return dict(TINY_VJEPA2 if MODELS[name].options["arch"] == "vjepa2" else TINY)


def transformers():
    return hf._transformers()


@pytest.fixture(scope="module")
def tiny_models() -> dict[str, torch.nn.Module]:
    """One reduced model per architecture (eval mode), shared by the export tests."""
    out = {}
    for arch, name in BY_ARCH.items():
        torch.manual_seed(0)
        out[arch] = build_model(name, SPEC, len(CLASSES), config=tiny(name)).eval()
    return out


def test_the_family_lists_its_models_with_published_repos():
    assert HF_MODELS == ["videomae_small", "videomae_base", "videomae_large", "timesformer_base", "vivit_base",
                         "vjepa2_vitl", "vjepa2_vith", "vjepa2_vitg"]
    repos = {name: MODELS[name].published for name in HF_MODELS}
    assert repos["videomae_base"] == "MCG-NJU/videomae-base-finetuned-kinetics"
    assert repos["timesformer_base"] == "facebook/timesformer-base-finetuned-k400"
    assert repos["vivit_base"] == "google/vivit-b-16x2-kinetics400"
    assert repos["vjepa2_vitl"] == "facebook/vjepa2-vitl-fpc16-256-ssv2"
    for name in HF_MODELS:
        entry = MODELS[name]
        assert entry.weights_url is None and entry.accuracy and entry.convention.layout == "BTCHW"


def test_the_family_module_imports_transformers_only_inside_functions():
    """``actcli --help`` stays fast: transformers (seconds to import) loads when a model is built."""
    tree = ast.parse(Path(hf.__file__).read_text(encoding="utf-8"))
    top = [alias.name for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
           for alias in node.names] + [node.module for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert not [name for name in top if name and name.split(".")[0] in ("transformers", "huggingface_hub")]


@pytest.mark.parametrize("name", HF_MODELS)
def test_one_training_step_at_a_reduced_clip_and_width(name):
    torch.manual_seed(0)
    model = build_model(name, SPEC, num_classes=3, config=tiny(name)).train()
    clips = torch.randn(2, 3, SPEC.frames, SPEC.crop, SPEC.crop)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logits = model(clips)
    assert logits.shape == (2, 3)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    assert not [k for k, p in model.named_parameters() if p.grad is None]
    optimizer.step()
    changed = [k for k, p in model.named_parameters() if not torch.equal(p, before[k])]
    assert "head.1.weight" in changed and any(k.startswith("backbone.model.") for k in changed)

    model.eval()
    prepared, steps = prepare_for_inference(model, CPU, "32")
    assert "conv_bn_folded" not in steps  # no BatchNorm in a transformer: nothing to fold
    with torch.inference_mode():
        expected = model(clips)
        scale = float(expected.abs().max())
        assert torch.allclose(prepared(clips), expected, rtol=1e-4, atol=1e-4 * scale)
        bf16, steps = prepare_for_inference(model, CPU, "bf16")
        got = bf16(clips)
        assert "bfloat16_autocast" in steps and got.dtype == torch.float32
        assert torch.allclose(got, expected, rtol=0.1, atol=0.1 * scale)


@pytest.mark.parametrize("name", HF_MODELS)
def test_full_size_build_has_the_library_parameter_count(name):
    """Each published architecture, built on the meta device: the library's classification model minus its
    classifier (and V-JEPA 2's self-supervised predictor), at the entry's native clip."""
    entry = MODELS[name]
    arch = hf.arch_of(entry)
    with torch.device("meta"):
        model = build_model(name, entry.clip, 400)
        config = hf.build_config(entry, entry.clip, {})
        config.pred_num_hidden_layers = 12  # the published predictor depth (ours builds none)
        config.num_labels = 400
        with hf._fast_sinusoids(arch):
            library = getattr(transformers(), arch.classifier_class)(config)
    theirs = sum(p.numel() for n, p in library.named_parameters()
                 if not n.startswith(("classifier.", f"{arch.prefix}.predictor.")))
    assert sum(p.numel() for p in model.backbone.parameters()) == theirs
    assert model.head[-1].in_features == config.hidden_size


PUBLISHED = {  # mean, std (per architecture; sources in huggingface.py) and the short side at the native crop
    "videomae": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "timesformer": ((0.45, 0.45, 0.45), (0.225, 0.225, 0.225)),
    "vivit": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "vjepa2": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}
SHORT_SIDE = {"videomae_small": (224, 224), "videomae_base": (224, 224), "videomae_large": (224, 224),
              "timesformer_base": (224, 224), "vivit_base": (224, 256), "vjepa2_vitl": (256, 292),
              "vjepa2_vith": (256, 292), "vjepa2_vitg": (384, 438)}  # crop -> short side (VJEPA2: int(crop*256/224))


@pytest.mark.parametrize("name", HF_MODELS)
def test_conventions_are_the_published_ones(name):
    entry = MODELS[name]
    mean, std = PUBLISHED[entry.options["arch"]]
    assert entry.convention.mean == pytest.approx(mean) and entry.convention.std == pytest.approx(std)
    crop, short = SHORT_SIDE[name]
    assert entry.clip.crop == crop and entry.convention.short_side(crop) == short


def test_vivit_hub_preprocessor_normalises_twice_and_actcli_does_not():
    """google/vivit-b-16x2-kinetics400's preprocessor_config.json (rescale 1/127.5 with offset, then
    mean 0.5 / std 0.5) maps pixels to [-3, 1]; scenic trained ViViT on [-1, 1] (zero_centering), which the
    conversion script checked the logits on and actcli feeds."""
    frames = [np.full((16, 16, 3), value, dtype=np.uint8) for value in (0, 255)]
    hub = transformers().VivitImageProcessor(rescale_factor=1 / 127.5, offset=True, do_normalize=True,
                                            image_mean=[0.5] * 3, image_std=[0.5] * 3,
                                            size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    values = hub(frames, return_tensors="pt")["pixel_values"]
    assert values.min().item() == pytest.approx(-3.0) and values.max().item() == pytest.approx(1.0)
    clip = eval_transform(16, MODELS["vivit_base"].convention)(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2))
    assert clip.min().item() == pytest.approx(-1.0) and clip.max().item() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------- exports


@pytest.mark.parametrize("arch", list(BY_ARCH))
def test_exports_match_pytorch(arch, tmp_path):
    name = BY_ARCH[arch]
    torch.manual_seed(0)  # one layer: the exporters' time grows with the graph
    model = build_model(name, SPEC, len(CLASSES), config={**tiny(name), "num_hidden_layers": 1}).eval()
    metadata = ExportMetadata(name, SPEC, tuple(CLASSES), convention=MODELS[name].convention)
    clips = torch.randn(3, 3, SPEC.frames, SPEC.crop, SPEC.crop, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(clips)
    writers = [("torchscript", export_torchscript)] + ([("onnx", export_onnx)] if arch in ONNX_CHECKED else [])
    for fmt, writer in writers:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = writer(model, clips[:1], tmp_path / f"{arch}.{fmt}", metadata)
        exported = load_exported(path)
        for batch in (1, 3):  # the batch dimension is dynamic
            got = exported(clips[:batch])
            assert torch.allclose(got, expected[:batch], atol=1e-4), (fmt, batch)


ONNX_CHECKED = {"timesformer", "vjepa2"}  # ~5 s each; VideoMAE's ONNX export runs in the CLI test below


# ---------------------------------------------------------------------------------------------- weights


def _processor(arch: str, crop: int, short: int):
    """The transformers processor set up as the publisher fed the model (``options["processor"]``), scaled
    to ``crop`` with frames resized to ``short`` first."""
    class_name, kwargs = PROCESSORS[arch]
    kwargs = dict(kwargs)
    if class_name == "VJEPA2VideoProcessor":
        kwargs["crop_size"] = crop  # it derives the short side, int(crop * 256 / 224), itself
    else:
        kwargs.update(size={"shortest_edge": short}, crop_size={"height": crop, "width": crop})
    processor = getattr(transformers(), class_name)(**kwargs)
    if class_name == "VJEPA2VideoProcessor":
        assert processor.size.shortest_edge == short
    return processor


PROCESSORS = {arch: MODELS[name].options["processor"] for arch, name in BY_ARCH.items()}


def _library_inputs(arch: str, processor, frames: np.ndarray) -> dict[str, torch.Tensor]:
    if arch == "vjepa2":
        return {"pixel_values_videos": processor(torch.from_numpy(frames).permute(0, 3, 1, 2),
                                                 return_tensors="pt")["pixel_values_videos"]}
    return {"pixel_values": processor(list(frames), return_tensors="pt")["pixel_values"]}


def _save_library_model(arch: str, spec: ClipSpec, folder: Path, seed: int = 1, labels: int = 5):
    """``XForVideoClassification(config).save_pretrained(folder)`` at a reduced width: the publisher's format."""
    name = BY_ARCH[arch]
    config = hf.build_config(MODELS[name], spec, tiny(name))
    config.num_labels = labels
    if arch == "vjepa2":
        config.pred_num_hidden_layers, config.pred_hidden_size, config.pred_num_attention_heads = 1, 16, 2
    torch.manual_seed(seed)
    library = getattr(transformers(), hf.ARCHS[arch].classifier_class)(config).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        library.save_pretrained(folder)
    return library


def _hub_cache(root: Path, repo: str, folder: Path) -> Path:
    """The Hub cache layout for ``repo`` holding ``folder``'s files: refs/main and snapshots/<commit>/."""
    storage = root / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        shutil.copy(file, snapshot / file.name)
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture()
def offline_hub(tmp_path, monkeypatch) -> Path:
    """An empty Hub cache with HF_HUB_OFFLINE=1: nothing may reach the network."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


@pytest.mark.parametrize("arch", list(BY_ARCH))
def test_published_weights_give_the_library_features_on_its_own_preprocessing(arch, tmp_path, offline_hub):
    name = BY_ARCH[arch]
    entry = MODELS[name]
    folder = tmp_path / "published"
    library = _save_library_model(arch, SPEC, folder)
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors"}

    short = entry.convention.short_side(SPEC.crop)
    frames = np.random.default_rng(0).integers(0, 256, (SPEC.frames, short, short, 3), dtype=np.uint8)
    inputs = _library_inputs(arch, _processor(arch, SPEC.crop, short), frames)
    pooled = {}

    def keep_input(_module, args, _out) -> None:  # the classifier's input: the library's pooled features
        pooled["features"] = args[0]

    library.classifier.register_forward_hook(keep_input)
    with torch.no_grad():
        library_logits = library(**inputs).logits
    clip = eval_transform(SPEC.crop, entry.convention)(torch.from_numpy(frames).permute(0, 3, 1, 2))[None]
    # the same pixels in actcli's layout: the processor's [B, T, C, H, W] is actcli's [B, C, T, H, W] transposed
    assert torch.allclose(clip, next(iter(inputs.values())).transpose(1, 2), atol=1e-5)

    repo = f"publisher/{arch}-tiny"
    _hub_cache(offline_hub, repo, folder)
    for source in (str(folder), f"hf:{repo}"):
        model = build_model(name, SPEC, 5, config=tiny(name)).eval()
        loaded = load_initial_weights(model, name, source, list("vwxyz"), config=tiny(name))
        assert loaded.startswith("backbone from") and arch in loaded
        with torch.no_grad():
            features = model.backbone(clip)
            assert torch.allclose(features, pooled["features"], rtol=1e-4, atol=1e-5), source
            model.head[-1].load_state_dict(library.classifier.state_dict())
            assert torch.allclose(model.head[-1](features), library_logits, rtol=1e-4, atol=1e-5)


def test_weights_cache_and_kinetics_use_the_hub_cache(tmp_path, offline_hub):
    entry = MODELS["timesformer_base"]
    assert hf.weights_cache(entry) is None
    line = _error(lambda: hf.resolve(entry, "kinetics"))
    assert "--weights PATH" in line and "HF_HUB_OFFLINE" in line and entry.weights in line
    folder = tmp_path / "published"
    _save_library_model("timesformer", SPEC, folder)
    snapshot = _hub_cache(offline_hub, entry.weights, folder)
    assert hf.weights_cache(entry) == snapshot
    assert hf.resolve(entry, "kinetics") == snapshot
    assert hf.resolve(entry, f"hf:{entry.weights}@main") == snapshot


def test_pretrained_encoders_load_with_a_fresh_pooling(tmp_path):
    """Self-supervised checkpoints (VideoMAEForPreTraining without mean pooling, VJEPA2Model with its predictor)
    fill the encoder; fc_norm / the attentive pooler start fresh, as in the publishers' fine-tuning code."""
    lib = transformers()
    config = hf.build_config(MODELS["videomae_small"], SPEC, {**TINY, "use_mean_pooling": False})
    config.decoder_hidden_size, config.decoder_num_hidden_layers, config.decoder_intermediate_size = 16, 1, 32
    config.decoder_num_attention_heads = 2
    torch.manual_seed(2)
    pretrained = lib.VideoMAEForPreTraining(config)
    pretrained.save_pretrained(tmp_path / "videomae")
    model = build_model("videomae_small", SPEC, 3, config=TINY)
    loaded = load_initial_weights(model, "videomae_small", str(tmp_path / "videomae"), CLASSES, config=TINY)
    assert "final layer norm dropped" in loaded and "fc_norm newly initialised" in loaded
    projection = "embeddings.patch_embeddings.projection.weight"
    assert torch.equal(model.backbone.model.get_parameter(projection), pretrained.videomae.get_parameter(projection))

    config = hf.build_config(MODELS["vjepa2_vitl"], SPEC, TINY_VJEPA2)
    config.pred_num_hidden_layers, config.pred_hidden_size, config.pred_num_attention_heads = 1, 16, 2
    lib.VJEPA2Model(config).save_pretrained(tmp_path / "vjepa2")
    model = build_model("vjepa2_vitl", SPEC, 3, config=TINY_VJEPA2)
    loaded = load_initial_weights(model, "vjepa2_vitl", str(tmp_path / "vjepa2"), CLASSES, config=TINY_VJEPA2)
    assert "pooler newly initialised" in loaded


def test_checkpoints_of_another_clip_load_with_resized_positional_embeddings(tmp_path):
    """TimeSformer (nearest neighbour, as its code and transformers resize) and ViViT (bicubic per frame,
    linear over time) checkpoints at 8 frames of 48 px load into 4-frame 32-px models; VideoMAE's
    sinusoidal table and V-JEPA 2's RoPE need nothing."""
    wide = ClipSpec(8, 2, 48)
    for arch in BY_ARCH:
        name = BY_ARCH[arch]
        library = _save_library_model(arch, wide, tmp_path / arch)
        model = build_model(name, SPEC, 5, config=tiny(name))
        loaded = load_initial_weights(model, name, str(tmp_path / arch), list("vwxyz"), config=tiny(name))
        assert ("resized" in loaded) == (arch in ("timesformer", "vivit")), loaded
        with torch.no_grad():
            assert torch.isfinite(model.backbone(torch.randn(1, 3, 4, 32, 32))).all()
        if arch == "timesformer":
            source = library.timesformer.embeddings.position_embeddings.detach()
            grid = source[0, 1:].reshape(1, 3, 3, -1).permute(0, 3, 1, 2)
            expected = torch.nn.functional.interpolate(grid, size=(2, 2), mode="nearest").flatten(2).transpose(1, 2)
            got = model.backbone.model.embeddings.position_embeddings
            assert torch.equal(got[0, 0], source[0, 0]) and torch.equal(got[:, 1:], expected)
            times = library.timesformer.embeddings.time_embeddings.detach()
            assert torch.equal(model.backbone.model.embeddings.time_embeddings, times[:, ::2])
        if arch == "vivit":
            got = model.backbone.model.embeddings.position_embeddings
            assert got.shape == (1, 1 + 2 * 2 * 2, TINY["hidden_size"])
            assert torch.equal(got[0, 0], library.vivit.embeddings.position_embeddings[0, 0].detach())


# ---------------------------------------------------------------------------------------------- bad input


def _error(call) -> str:
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_weights_are_one_line_each(tmp_path, offline_hub):
    name, config = "videomae_small", tiny("videomae_small")

    def load(source: str) -> str:
        model = build_model(name, SPEC, 3, config=config)
        return _error(lambda: load_initial_weights(model, name, source, CLASSES, config=config))

    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no config.json" in load(str(empty))
    folder = tmp_path / "published"
    _save_library_model("videomae", SPEC, folder)
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(folder / "config.json", pickled / "config.json")
    (pickled / "pytorch_model.bin").write_bytes(b"not read")
    line = load(str(pickled))
    assert "no model.safetensors" in line and "pytorch_model.bin" in line

    vivit = tmp_path / "vivit"
    _save_library_model("vivit", SPEC, vivit)
    _hub_cache(offline_hub, "google/some-vivit", vivit)
    line = load("hf:google/some-vivit")
    assert "'vivit'" in line and "'videomae'" in line and "--model vivit_base" in line

    wider = tmp_path / "wider"
    _save_library_model("videomae", SPEC, wider)
    raw = json.loads((wider / "config.json").read_text())
    model = build_model(name, SPEC, 3, config={**config, "hidden_size": 64})
    line = _error(lambda: load_initial_weights(model, name, str(wider), CLASSES, config={**config, "hidden_size": 64}))
    assert f"hidden_size={raw['hidden_size']}" in line and "hidden_size=64" in line

    line = load("hf:nobody/not-cached")
    assert "not in the Hugging Face cache" in line and "HF_HUB_OFFLINE" in line and "--weights PATH" in line
    assert "expected hf:<org>/<name>" in load("hf:no-slash")


def test_clips_and_configs_the_models_cannot_take_are_one_line(tmp_path):
    line = _error(lambda: check_clip("videomae_small", ClipSpec(5, 2, 32), {}))
    assert "frames divisible by 2" in line and "divisible by 16" in line and "--frames 4 --crop 32" in line
    assert "crop divisible by 16" in _error(lambda: check_clip("timesformer_base", ClipSpec(8, 2, 40), {}))
    assert "frames divisible by 2" in _error(lambda: check_clip("vjepa2_vitl", ClipSpec(3, 2, 32), {}))
    check_clip("timesformer_base", ClipSpec(3, 2, 32), {})  # one frame per token: any number of frames
    assert "did you mean hidden_size" in _error(lambda: check_clip("vivit_base", SPEC, {"hiden_size": 32}))
    assert "--frames" in _error(lambda: check_clip("videomae_base", SPEC, {"num_frames": 8}))
    assert "not a multiple" in _error(lambda: check_clip("videomae_base", SPEC, {"hidden_size": 30}))
    assert "no stochastic depth" in _error(lambda: check_clip("videomae_base", SPEC, {"drop_path": 0.1}))
    assert MODELS["videomae_base"].options["drop_path"] is False  # so the recipe does not set one
    model = build_model("timesformer_base", SPEC, 3, config={**TINY, "drop_path": 0.2})
    assert model.backbone.model.config.drop_path_rate == pytest.approx(0.2)
    assert model.backbone.model.encoder.layer[-1].drop_path.drop_prob == pytest.approx(0.2)


# ---------------------------------------------------------------------------------------------- features


def test_freeze_until_a_layer_freezes_the_embeddings_and_the_layers_before(tiny_models):
    import copy

    model = copy.deepcopy(tiny_models["timesformer"])
    names = [n for n, _ in backbone_blocks(model.backbone)]
    assert names == ["blocks.0", "blocks.1"]
    frozen = apply_freeze(model, "until:blocks.0")
    assert frozen == ["model.embeddings", "blocks.0"]
    embeddings = model.backbone.model.embeddings
    assert not any(p.requires_grad for p in embeddings.parameters())
    assert not any(p.requires_grad for p in model.backbone.blocks[0].parameters())
    assert all(p.requires_grad for p in model.backbone.blocks[1].parameters())
    assert "model.embeddings.cls_token" in dict(model.backbone.named_parameters())
    assert not model.backbone.model.embeddings.cls_token.requires_grad


def test_gradient_checkpointing_gives_the_same_gradients(tiny_models):
    import copy

    clips = torch.randn(2, 3, SPEC.frames, SPEC.crop, SPEC.crop)
    grads = []
    for checkpointing in (False, True):
        model = copy.deepcopy(tiny_models["vjepa2"]).train()
        if checkpointing:
            assert hf.enable_gradient_checkpointing(model) == 1
            assert all(layer.gradient_checkpointing for layer in model.backbone.blocks)
        torch.manual_seed(0)  # the same dropout mask in the head both times
        model(clips).sum().backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    assert all(torch.allclose(grads[0][k], grads[1][k], atol=1e-6) for k in grads[0])
    assert "holds no Hugging Face encoder" in _error(lambda: hf.enable_gradient_checkpointing(torch.nn.Linear(2, 2)))


def test_sinusoid_table_is_the_librarys():
    from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table

    assert torch.equal(hf.sinusoid_table(98, 48), get_sinusoid_encoding_table(98, 48))


def test_train_test_export_through_the_cli(cli, annotated, workdir):
    config = "hidden_size=32,num_hidden_layers=2,num_attention_heads=2,intermediate_size=64"
    cli("train", "--dataset", "synthetic", "--model", "videomae_small", "--model-config", config,
        "--epochs", "1", "--experiment", "hf", *TRAIN_FLAGS)
    (run,) = (workdir / "outputs" / "runs" / "hf").iterdir()
    checkpoint = load_file(run / "checkpoints" / "best.pt")
    assert checkpoint["model"] == "videomae_small" and checkpoint["model_config"]["hidden_size"] == 32
    assert checkpoint["convention"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    assert checkpoint["convention"]["layout"] == "BTCHW"
    cli("test", "--experiment", "hf", "--views", "1x2")
    for fmt, suffix in (("torchscript", ".ts"), ("onnx", ".onnx")):
        out = cli("export", "--experiment", "hf", "--format", fmt).output
        assert "max |logit difference| vs PyTorch" in out
        assert (run / "checkpoints" / f"best{suffix}").is_file()
