"""The Hugging Face family: VideoMAE, TimeSformer, ViViT and V-JEPA 2 from ``transformers``.

Each network is built from its ``transformers`` configuration class with the published
architecture (:data:`ENTRIES`, ``options["config"]``), the clip's frames and crop, and the
user's ``--model-config`` overrides (fields of that configuration class, e.g. a narrower
``hidden_size=64,num_hidden_layers=2``), with no network access. ``transformers`` is imported
only when a model is built, so ``actcli --help`` stays fast.

The backbone (:class:`HFBackbone`) takes actcli's clips ``float [B, 3, T, H, W]``, hands the
library's base model its ``[B, T, 3, H, W]`` pixel values and pools as the published
classifier does: VideoMAE the mean of the patch tokens and ``fc_norm``; TimeSformer and ViViT the
[CLS] token after the final layer norm; V-JEPA 2 its attentive pooler (kept in the backbone, so
the published SSv2 probe's pooler loads; only its linear classifier is replaced by actcli's head).
``blocks`` are the transformer layers (``--freeze until:<block>``, layer-wise LR decay) and
``before_blocks()`` the embeddings in front of them.

Weights: ``--weights kinetics`` (the entry's published repo) and ``hf:<repo>[@revision]`` fetch
``config.json`` and the safetensors through :func:`huggingface_hub.snapshot_download` into the Hub
cache (``HF_HUB_OFFLINE=1``: the cache only); ``--weights PATH`` takes a folder in the same layout
(``save_pretrained``'s). The library's own loader reads them (``from_pretrained``: its key
renames for older checkpoints, sharded files), then the classifier is dropped and learned
positional embeddings are resized when the clip differs from the checkpoint's.

Conventions (each entry's ``convention``; ``options["processor"]`` is the ``transformers``
processor set up to feed the model as its publisher did, which the tests compare with actcli's):

* VideoMAE: ImageNet mean/std (0.485, 0.456, 0.406)/(0.229, 0.224, 0.225), short side = crop
  (VideoMAE ``run_class_finetuning.py`` ``--short_side_size 224``; the Hub repos'
  ``preprocessor_config.json``; note ``VideoMAEImageProcessor()``'s own defaults are 0.5/0.5);
* TimeSformer: 0.45/0.225, short side = crop (TimeSformer's PySlowFast config: ``DATA.MEAN``/``STD``
  defaults, ``TEST_CROP_SIZE 224``; the Hub repo's processor says ImageNet statistics instead);
* ViViT: pixels to [-1, 1] (mean 0.5, std 0.5), short side 256 for a 224 crop (scenic's
  ``vivit_base_k400.py``: ``zero_centering``, ``min_resize 256``; the HF conversion script checked
  the logits that way; the Hub's ``preprocessor_config.json`` normalises once more, to [-3, 1]);
* V-JEPA 2: ImageNet mean/std, short side ``int(crop * 256 / 224)`` (``VJEPA2VideoProcessor``).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from actcli.data.video import ClipSpec
from actcli.errors import UserError
from actcli.models.convention import IMAGENET, Convention
from actcli.models.families import ModelEntry


def _strict_error() -> type[Exception]:
    """huggingface_hub's configuration validation error (evaluated only when an exception is matched)."""
    from huggingface_hub.errors import StrictDataclassError

    return StrictDataclassError


DROP_PATH = "drop_path"
"""The reserved ``config`` key for stochastic depth (``--drop-path``), see :func:`build_config`."""


@dataclass(frozen=True)
class Arch:
    """How one ``transformers`` model type is built, fed and loaded."""

    model_type: str
    config_class: str
    base_class: str
    classifier_class: str
    prefix: str  # the base model's attribute in ``classifier_class`` (its state-dict prefix)
    frames_key: str  # configuration field of the clip's frames
    size_key: str  # configuration field of the crop
    drop_path_key: str | None  # configuration field of stochastic depth (None: the model has none)
    paper: str

    def time_patch(self, config: Any) -> int:
        """Frames per token (tubelet depth; TimeSformer embeds each frame)."""
        if self.model_type == "timesformer":
            return 1
        if self.model_type == "vivit":
            return int(config.tubelet_size[0])
        return int(config.tubelet_size)

    def space_patch(self, config: Any) -> int:
        """Pixels per token side."""
        if self.model_type == "vivit":
            return int(config.tubelet_size[1])
        size = config.patch_size
        return int(size[0] if isinstance(size, list | tuple) else size)


ARCHS: dict[str, Arch] = {
    "videomae": Arch("videomae", "VideoMAEConfig", "VideoMAEModel", "VideoMAEForVideoClassification", "videomae",
                     "num_frames", "image_size", None, "VideoMAE"),
    "timesformer": Arch("timesformer", "TimesformerConfig", "TimesformerModel", "TimesformerForVideoClassification",
                        "timesformer", "num_frames", "image_size", "drop_path_rate", "TimeSformer"),
    "vivit": Arch("vivit", "VivitConfig", "VivitModel", "VivitForVideoClassification", "vivit",
                  "num_frames", "image_size", None, "ViViT"),
    "vjepa2": Arch("vjepa2", "VJEPA2Config", "VJEPA2Model", "VJEPA2ForVideoClassification", "vjepa2",
                   "frames_per_clip", "crop_size", "drop_path_rate", "V-JEPA 2"),
}

LAYOUT = "BTCHW"  # transformers' pixel_values: [B, T, C, H, W]
IMAGENET_DEFAULT = Convention(*IMAGENET, resize=1.0, layout=LAYOUT)
VJEPA2_RESIZE = int(256 * 256 / 224) / 256  # VJEPA2VideoProcessor: shortest_edge int(crop * 256 / 224) = 292 at 256
CONVENTIONS: dict[str, Convention] = {
    "videomae": IMAGENET_DEFAULT,
    "timesformer": Convention((0.45, 0.45, 0.45), (0.225, 0.225, 0.225), 1.0, LAYOUT),
    "vivit": Convention((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 256 / 224, LAYOUT),
    "vjepa2": Convention(*IMAGENET, resize=VJEPA2_RESIZE, layout=LAYOUT),
}

PROCESSORS: dict[str, tuple[str, dict[str, Any]]] = {
    # The transformers processor (class, kwargs at the native crop) that feeds each model as its publisher
    # did; tests scale size/crop_size to the clip and compare its pixel values with actcli's eval transform.
    "videomae": ("VideoMAEImageProcessor", {"image_mean": list(IMAGENET[0]), "image_std": list(IMAGENET[1]),
                                            "size": {"shortest_edge": 224},
                                            "crop_size": {"height": 224, "width": 224}}),
    "timesformer": ("VideoMAEImageProcessor", {"image_mean": [0.45] * 3, "image_std": [0.225] * 3,
                                               "size": {"shortest_edge": 224},
                                               "crop_size": {"height": 224, "width": 224}}),
    "vivit": ("VivitImageProcessor", {"offset": True, "rescale_factor": 1 / 127.5, "do_normalize": False,
                                      "size": {"shortest_edge": 256}, "crop_size": {"height": 224, "width": 224}}),
    "vjepa2": ("VJEPA2VideoProcessor", {"crop_size": 256}),
}

VIDEOMAE_ZOO = "VideoMAE MODEL_ZOO.md, github.com/MCG-NJU/VideoMAE, 16x5x3 views"


def _entry(name: str, arch: str, clip: ClipSpec, repo: str | None, accuracy: str | None,
           config: dict[str, Any]) -> ModelEntry:
    processor, kwargs = PROCESSORS[arch]
    if processor == "VJEPA2VideoProcessor":
        kwargs = {**kwargs, "crop_size": clip.crop}
    options: dict[str, Any] = {"arch": arch, "config": config, "processor": (processor, kwargs)}
    if ARCHS[arch].drop_path_key is None:
        options["drop_path"] = False  # transformers' VideoMAE and ViViT have no stochastic depth
    return ModelEntry(name, None, clip, family="huggingface", convention=CONVENTIONS[arch], weights=repo,
                      accuracy=accuracy, options=options)


VJEPA2_L = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "mlp_ratio": 4.0,
            "patch_size": 16, "tubelet_size": 2, "num_pooler_layers": 3}

ENTRIES: tuple[ModelEntry, ...] = (
    # VideoMAE (Tong et al. 2022): 16 frames every 4th (run_class_finetuning.py --num_frames 16 --sampling_rate 4),
    # 2x16x16 tubelets, fixed sinusoidal positions.
    _entry("videomae_small", "videomae", ClipSpec(16, 4, 224), "MCG-NJU/videomae-small-finetuned-kinetics",
           f"Kinetics-400 top-1 79.0 ({VIDEOMAE_ZOO})",
           {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "intermediate_size": 1536,
            "patch_size": 16, "tubelet_size": 2}),
    _entry("videomae_base", "videomae", ClipSpec(16, 4, 224), "MCG-NJU/videomae-base-finetuned-kinetics",
           f"Kinetics-400 top-1 81.5 ({VIDEOMAE_ZOO}; 80.9 in the table's first revision)",
           {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
            "patch_size": 16, "tubelet_size": 2}),
    _entry("videomae_large", "videomae", ClipSpec(16, 4, 224), "MCG-NJU/videomae-large-finetuned-kinetics",
           f"Kinetics-400 top-1 85.2 ({VIDEOMAE_ZOO}; 84.7 in the table's first revision)",
           {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
            "patch_size": 16, "tubelet_size": 2}),
    # TimeSformer (Bertasius et al. 2021), divided space-time attention: 8 frames every 32nd (8x32 config).
    _entry("timesformer_base", "timesformer", ClipSpec(8, 32, 224), "facebook/timesformer-base-finetuned-k400",
           "Kinetics-400 top-1 77.9 (1x3 views; TimeSformer README model zoo, github.com/facebookresearch/TimeSformer; "
           "78.0 in the paper)",
           {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
            "patch_size": 16, "attention_type": "divided_space_time"}),
    # ViViT (Arnab et al. 2021) ViViT-B/16x2 unfactorised: 32 frames every 2nd, 2x16x16 tubelets.
    _entry("vivit_base", "vivit", ClipSpec(32, 2, 224), "google/vivit-b-16x2-kinetics400",
           "Kinetics-400 top-1 79.9 (4x3 views; scenic ViViT README, github.com/google-research/scenic)",
           {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
            "tubelet_size": [2, 16, 16], "hidden_act": "gelu_fast"}),
    # V-JEPA 2 (Assran et al. 2025): RoPE, 2x16x16 tubelets, attentive probe (4 blocks). ViT-L SSv2 probe:
    # 16 frames, frame_step 4, 256 px (vjepa2 configs/inference/vitl/ssv2.yaml).
    _entry("vjepa2_vitl", "vjepa2", ClipSpec(16, 4, 256), "facebook/vjepa2-vitl-fpc16-256-ssv2",
           "Something-Something v2 top-1 73.7 (attentive probe on the frozen encoder, 16x2x3 views; vjepa2 README, "
           "github.com/facebookresearch/vjepa2)", VJEPA2_L),
    # ViT-H: only the pretrained encoder is published (64 frames per clip at 256; no classifier, so the pooler
    # starts random); stride 2 as in the 64-frame SSv2 probe evaluation.
    _entry("vjepa2_vith", "vjepa2", ClipSpec(64, 2, 256), "facebook/vjepa2-vith-fpc64-256",
           "not stated (pretrained encoder only; no published classifier)",
           {**VJEPA2_L, "hidden_size": 1280, "num_hidden_layers": 32}),
    # ViT-g/384 SSv2 probe: 64 frames, frame_step 2, 384 px (configs/inference/vitg-384/ssv2.yaml).
    _entry("vjepa2_vitg", "vjepa2", ClipSpec(64, 2, 384), "facebook/vjepa2-vitg-fpc64-384-ssv2",
           "Something-Something v2 top-1 77.3 (attentive probe, 64x2x3 views; vjepa2 README)",
           {**VJEPA2_L, "hidden_size": 1408, "num_hidden_layers": 40, "num_attention_heads": 22,
            "mlp_ratio": 48 / 11}),
)


def arch_of(entry: ModelEntry) -> Arch:
    return ARCHS[entry.options["arch"]]


def _transformers():
    """``transformers`` with its logging quietened (imported here: it takes seconds)."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    return transformers


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


# ------------------------------------------------------------------------------------------------ configuration


def config_fields(arch: Arch) -> list[str]:
    """The fields ``--model-config`` may set: the model's own configuration fields (not the generic ones)."""
    transformers = _transformers()
    generic = {f.name for f in fields(transformers.PreTrainedConfig)}
    return [f.name for f in fields(getattr(transformers, arch.config_class)) if f.name not in generic]


def build_config(entry: ModelEntry, spec: ClipSpec, config: dict[str, Any]) -> Any:
    """The ``transformers`` configuration of ``entry`` for clips of ``spec``: the published architecture,
    ``config`` overrides (``--model-config``) and the clip's frames and crop. ``config["drop_path"]``
    sets the model's stochastic-depth field (TimeSformer and V-JEPA 2: ``drop_path_rate``); VideoMAE
    and ViViT have none in ``transformers``, so a non-zero rate is refused."""
    arch = arch_of(entry)
    allowed = config_fields(arch)
    overrides = {k: v for k, v in config.items() if k != DROP_PATH}
    for key in overrides:
        if key in (arch.frames_key, arch.size_key):
            raise UserError(f"--model-config {key}: {entry.name} takes it from the clip; use "
                            f"--{'frames' if key == arch.frames_key else 'crop'} instead")
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UserError(f"--model-config {key}: not a {arch.config_class} field{hint}; {entry.name} takes "
                            f"{', '.join(allowed)}")
    kwargs = {**entry.options["config"], **overrides, arch.frames_key: spec.frames, arch.size_key: spec.crop}
    if arch.model_type == "vjepa2":
        kwargs["pred_num_hidden_layers"] = 0  # the self-supervised predictor is dropped: build none of it
    rate = config.get(DROP_PATH)
    if rate is not None:
        if arch.drop_path_key is None:
            if float(rate) != 0.0:
                raise UserError(f"--drop-path: {entry.name} has no stochastic depth ({arch.paper} in transformers "
                                "has none); drop the option")
        else:
            kwargs[arch.drop_path_key] = float(rate)
    try:
        return make_config(arch, kwargs)
    except (TypeError, ValueError, _strict_error()) as exc:  # strict validation: a wrong type or value
        raise UserError(f"--model-config for {entry.name}: {_config_error(exc)}") from None


FLOAT_FIELDS = ("drop_path_rate",)
"""Rates some configurations annotate as ``int`` (TimesformerConfig: ``drop_path_rate: int = 0``), which
their strict validation then refuses as floats; :func:`make_config` sets them after validation."""


def make_config(arch: Arch, values: dict[str, Any], from_dict: bool = False) -> Any:
    """``arch``'s configuration from ``values`` (keyword arguments, or a ``config.json`` dict)."""
    cls = getattr(_transformers(), arch.config_class)
    rates = {k: values[k] for k in FLOAT_FIELDS if isinstance(values.get(k), float)}
    rest = {k: v for k, v in values.items() if k not in rates}
    config = cls.from_dict(rest) if from_dict else cls(**rest)
    for key, value in rates.items():
        object.__setattr__(config, key, value)  # a float where the annotation says int: bypass the check
    return config


def _config_error(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).strip().splitlines())[:300] or type(exc).__name__


def check_clip(entry: ModelEntry, spec: ClipSpec, config: dict[str, Any]) -> None:
    """Frames must be a multiple of the tubelet's depth, the crop a multiple of the patch size."""
    arch = arch_of(entry)
    cfg = build_config(entry, spec, config)
    depth, side = arch.time_patch(cfg), arch.space_patch(cfg)
    if spec.frames % depth or spec.crop % side or spec.crop < side:
        frames = f"frames divisible by {depth} (its tubelets are {depth} frames deep)" if depth > 1 else "any frames"
        raise UserError(f"{entry.name} takes {frames} and a crop divisible by {side} (its {side}x{side}-pixel "
                        f"patches), e.g. --frames {max(depth, spec.frames // depth * depth)} --crop "
                        f"{max(side, spec.crop // side * side)}; not {spec.frames} frames at {spec.crop} px")
    heads = getattr(cfg, "num_attention_heads", 1)
    if cfg.hidden_size % heads:
        raise UserError(f"--model-config for {entry.name}: hidden_size {cfg.hidden_size} is not a multiple of "
                        f"num_attention_heads {heads}")


# ------------------------------------------------------------------------------------------------ the backbone


class HFBackbone(nn.Module):
    """A ``transformers`` video encoder without its classifier: ``float [B, 3, T, H, W]`` -> ``[B, D]``.

    ``model`` is the library's base model (``VideoMAEModel``, ``TimesformerModel``, ``VivitModel``
    without its pooler, ``VJEPA2Model`` without its predictor); ``fc_norm`` (VideoMAE with mean
    pooling) and ``pooler`` (V-JEPA 2's attentive pooler) are the published classifiers' pooling,
    named as in ``XForVideoClassification`` so their weights load.
    """

    def __init__(self, arch: Arch, model: nn.Module, config: Any) -> None:
        super().__init__()
        self.arch = arch.model_type
        self.model = model
        self.feature_dim = int(config.hidden_size)
        if arch.model_type == "videomae" and config.use_mean_pooling:
            self.fc_norm = nn.LayerNorm(config.hidden_size)  # as VideoMAEForVideoClassification: default eps
        if arch.model_type == "vjepa2":
            from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2AttentivePooler

            self.pooler = VJEPA2AttentivePooler(config)
            self.pooler.apply(self.model._init_weights)  # the library's initialisation of a fresh probe

    @property
    def blocks(self) -> nn.ModuleList:
        """The transformer layers, in forward order (``--freeze until:blocks.<i>``)."""
        if self.arch == "vivit":
            return self.model.layers
        return self.model.encoder.layer

    def before_blocks(self) -> list[tuple[str, nn.Module]]:
        """What runs before layer 0: patch/tubelet embedding, positional embeddings, [CLS] token."""
        if self.arch == "vjepa2":
            return [("model.encoder.embeddings", self.model.encoder.embeddings)]
        return [("model.embeddings", self.model.embeddings)]

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        pixel_values = clips.transpose(1, 2)  # [B, C, T, H, W] -> the library's [B, T, C, H, W]
        model = self.model
        if self.arch == "videomae":
            hidden = model.encoder(model.embeddings(pixel_values, None)).last_hidden_state
            if model.layernorm is not None:
                hidden = model.layernorm(hidden)
            fc_norm = getattr(self, "fc_norm", None)
            return fc_norm(hidden.mean(1)) if fc_norm is not None else hidden[:, 0]
        if self.arch == "timesformer":
            hidden = model.encoder(model.embeddings(pixel_values), return_dict=True).last_hidden_state
            return model.layernorm(hidden)[:, 0]
        if self.arch == "vivit":
            hidden = model.embeddings(pixel_values, interpolate_pos_encoding=False)
            for layer in model.layers:
                hidden = layer(hidden, None)
            return model.layernorm(hidden)[:, 0]
        hidden = model.encoder(pixel_values_videos=pixel_values).last_hidden_state
        return self.pooler(hidden)


def sinusoid_table(n_position: int, d_hid: int) -> torch.Tensor:
    """VideoMAE's fixed sin-cos positions ``[1, n_position, d_hid]``: transformers'
    ``get_sinusoid_encoding_table``, vectorised (the same float64 operations, so the same table; the
    library's per-element Python loop takes seconds at 1568 positions)."""
    import numpy as np

    hid = np.arange(d_hid)
    table = np.arange(n_position)[:, None] / np.power(10000, 2 * (hid // 2) / d_hid)[None, :]
    table[:, 0::2] = np.sin(table[:, 0::2])
    table[:, 1::2] = np.cos(table[:, 1::2])
    return torch.FloatTensor(table).unsqueeze(0)


@contextlib.contextmanager
def _fast_sinusoids(arch: Arch) -> Iterator[None]:
    """Build VideoMAE with :func:`sinusoid_table` in place of the library's loop."""
    if arch.model_type != "videomae":
        yield
        return
    from transformers.models.videomae import modeling_videomae

    original = modeling_videomae.get_sinusoid_encoding_table
    modeling_videomae.get_sinusoid_encoding_table = sinusoid_table
    try:
        yield
    finally:
        modeling_videomae.get_sinusoid_encoding_table = original


def backbone(entry: ModelEntry, spec: ClipSpec, config: dict[str, Any]) -> tuple[nn.Module, int]:
    """``entry``'s encoder for clips of ``spec`` (``config``: ``--model-config`` overrides), randomly initialised."""
    check_clip(entry, spec, config)
    arch = arch_of(entry)
    cfg = build_config(entry, spec, config)
    transformers = _transformers()
    kwargs = {"add_pooling_layer": False} if arch.model_type == "vivit" else {}
    try:
        with _fast_sinusoids(arch):
            model = getattr(transformers, arch.base_class)(cfg, **kwargs)
    except ValueError as exc:  # e.g. a width the heads do not divide
        raise UserError(f"--model-config for {entry.name}: {_first_line(exc)}") from None
    if arch.model_type == "vjepa2":
        model.predictor = None  # the self-supervised predictor: not part of the video encoder
    network = HFBackbone(arch, model, cfg)
    return network, network.feature_dim


def enable_gradient_checkpointing(backbone: nn.Module) -> int:
    """Turn on the library's gradient checkpointing (non-reentrant) in every Hugging Face encoder in
    ``backbone``; returns how many. Layers recompute their activations in the backward pass."""
    found = [m for m in backbone.modules() if isinstance(m, HFBackbone)]
    if not found:
        raise UserError(f"gradient checkpointing: {type(backbone).__name__} holds no Hugging Face encoder")
    for encoder in found:
        encoder.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return len(found)


# ------------------------------------------------------------------------------------------------ weights

TRUE_VALUES = {"1", "on", "yes", "true"}
DOWNLOAD_PATTERNS = ["config.json", "*.safetensors", "*.safetensors.index.json"]


def hub_cache() -> Path:
    """The Hugging Face Hub cache folder, read from the environment now (``HF_HUB_CACHE``, ``HF_HOME``/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    return value.strip().lower() in TRUE_VALUES if value is not None else bool(constants.HF_HUB_OFFLINE)


def weights_cache(entry: ModelEntry) -> Path | None:
    """The cached snapshot of the published repo (``config.json`` and safetensors present), else None."""
    if entry.weights is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(entry.weights, "config.json", cache_dir=hub_cache())
    if isinstance(found, str):
        folder = Path(found).parent
        if any(folder.glob("*.safetensors")):
            return folder
    return None


def parse_hf(source: str) -> tuple[str, str | None]:
    """``hf:<org>/<name>[@revision]`` -> ``(repo id, revision or None)``."""
    repo, _, revision = source[len("hf:"):].partition("@")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise UserError(f"--weights {source}: expected hf:<org>/<name>[@revision], e.g. "
                        "hf:MCG-NJU/videomae-base-finetuned-kinetics")
    return repo, revision or None


def download(repo: str, revision: str | None) -> Path:
    """``config.json`` and the safetensors of ``repo`` at ``revision`` in the Hub cache, fetched once
    (offline: only the cache); every failure is one :class:`UserError` line."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        IncompleteSnapshotError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache, offline = hub_cache(), hub_offline()
    at = f"@{revision}" if revision else ""
    try:
        folder = snapshot_download(repo, revision=revision, allow_patterns=DOWNLOAD_PATTERNS, cache_dir=cache,
                                   local_files_only=offline)
    except (LocalEntryNotFoundError, IncompleteSnapshotError):
        why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
        raise UserError(f"hf:{repo}{at} is not in the Hugging Face cache ({cache}) and {why}: download it where "
                        f"you are online (`hf download {repo}`; unset HF_HUB_OFFLINE) or pass --weights PATH "
                        "(a folder with config.json and model.safetensors)") from None
    except GatedRepoError:
        raise UserError(f"hf:{repo} is gated: accept its terms on huggingface.co and log in "
                        "(`hf auth login`)") from None
    except RevisionNotFoundError:
        raise UserError(f"hf:{repo} has no revision {revision!r}; pass a branch, tag or commit that exists") from None
    except (RepositoryNotFoundError, HFValidationError):
        raise UserError(f"hf:{repo}: no such Hugging Face model repository (or it is private)") from None
    except (HfHubHTTPError, OSError) as exc:
        raise UserError(f"hf:{repo}{at} could not be downloaded ({_first_line(exc)}); retry, or pass "
                        "--weights PATH") from None
    return Path(folder)


def resolve(entry: ModelEntry, source: str) -> Path:
    """``kinetics`` -> the entry's published repo; ``hf:<repo>[@revision]`` -> that repo (both through
    the Hub cache); a local folder (or a file in it: config.json, *.safetensors) -> the folder."""
    if source == "kinetics":
        if entry.weights is None:
            raise UserError(f"{entry.name} has no published weights; pass hf:<repo> or --weights PATH")
        return download(entry.weights, None)
    if source.startswith("hf:"):
        return download(*parse_hf(source))
    path = Path(source)
    if path.is_file() and (path.name == "config.json" or path.suffix == ".safetensors"):
        return path.parent
    return path


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _read_config(path: Path) -> dict[str, Any]:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise UserError(f"{path} has no config.json: a Hugging Face model folder holds config.json and "
                        "model.safetensors (what save_pretrained writes)")
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{config_file} is not readable JSON ({_first_line(exc)})") from None
    if not isinstance(data, dict):
        raise UserError(f"{config_file} is not a model configuration (expected a JSON object)")
    return data


ARCH_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "mlp_ratio",
               "patch_size", "tubelet_size", "use_mean_pooling", "attention_type", "num_pooler_layers", "qkv_bias",
               "qv_bias")


def _arch_mismatch(entry: ModelEntry, checkpoint: Any, ours: Any) -> str | None:
    """The architecture fields where the checkpoint's configuration differs from the model built here."""
    diffs = []
    for key in ARCH_FIELDS:
        if not hasattr(ours, key):
            continue
        theirs, mine = getattr(checkpoint, key, None), getattr(ours, key)
        if isinstance(theirs, list | tuple) or isinstance(mine, list | tuple):
            theirs = list(theirs) if isinstance(theirs, list | tuple) else theirs
            mine = list(mine) if isinstance(mine, list | tuple) else mine
        numbers = isinstance(theirs, float | int) and isinstance(mine, float | int)
        if theirs is not None and theirs != mine and not (numbers and math.isclose(theirs, mine)):
            diffs.append((key, theirs, mine))
    if not diffs:
        return None
    theirs_text = ", ".join(f"{k}={v}" for k, v, _ in diffs)
    mine_text = ", ".join(f"{k}={v}" for k, _, v in diffs)
    same = [e.name for e in ENTRIES if e.options["arch"] == entry.options["arch"]
            and all(e.options["config"].get(k, getattr(ours, k)) == v for k, v, _ in diffs
                    if k in e.options["config"])]
    hint = f"pass --model {same[0]}" if same and same[0] != entry.name else "pass --model-config with its values"
    return f"the checkpoint has {theirs_text}, {entry.name} here {mine_text}: {hint}"


def _resize_grid(table: torch.Tensor, grid: tuple[int, ...], new: tuple[int, ...], spatial_mode: str,
                 time_mode: str) -> torch.Tensor:
    """Positional embeddings ``[N, D]`` on a ``(T, H, W)`` or ``(H, W)`` grid resized to ``new``."""
    dim = table.shape[-1]
    if len(grid) == 2:
        x = table.reshape(1, *grid, dim).permute(0, 3, 1, 2)
        kwargs = {"align_corners": False} if spatial_mode in ("bilinear", "bicubic") else {}
        x = nn.functional.interpolate(x, size=new, mode=spatial_mode, **kwargs)
        return x.permute(0, 2, 3, 1).reshape(-1, dim)
    t, h, w = grid
    x = table.reshape(t, h, w, dim).permute(0, 3, 1, 2)  # frames as a batch: [T, D, H, W]
    if (h, w) != new[1:]:
        kwargs = {"align_corners": False} if spatial_mode in ("bilinear", "bicubic") else {}
        x = nn.functional.interpolate(x, size=new[1:], mode=spatial_mode, **kwargs)
    x = x.permute(1, 2, 3, 0)  # [D, H', W', T]
    if t != new[0]:
        size = x.shape
        kwargs = {"align_corners": False} if time_mode == "linear" else {}
        x = nn.functional.interpolate(x.reshape(1, -1, t), size=new[0], mode=time_mode, **kwargs)
        x = x.reshape(*size[:3], new[0])
    return x.permute(3, 1, 2, 0).reshape(-1, dim)


def _adapt_positions(arch: Arch, state: dict[str, torch.Tensor], checkpoint: Any, ours: Any) -> str | None:
    """Resize learned positional embeddings in ``state`` (backbone keys) from the checkpoint's clip to ours.

    TimeSformer: spatial grid and time table by nearest neighbour, as TimeSformer and transformers' own
    ``TimesformerEmbeddings`` resize them; ViViT: each frame's grid bicubic (transformers' ViViT and
    DINO interpolation), then linearly over time. VideoMAE's sinusoidal table is rebuilt from the
    configuration and V-JEPA 2 uses RoPE: nothing to resize.
    """
    if arch.model_type not in ("timesformer", "vivit"):
        return None
    side_src = int(checkpoint.image_size) // arch.space_patch(checkpoint)
    side_new = int(ours.image_size) // arch.space_patch(ours)
    changed = []
    key = "model.embeddings.position_embeddings"
    table = state[key]
    if arch.model_type == "timesformer":
        if side_src != side_new:
            grid = _resize_grid(table[0, 1:], (side_src, side_src), (side_new, side_new), "nearest", "nearest")
            state[key] = torch.cat([table[:, :1], grid[None]], dim=1)
            changed.append(f"space {side_src}x{side_src} -> {side_new}x{side_new}")
        time_key = "model.embeddings.time_embeddings"
        if time_key in state and state[time_key].shape[1] != ours.num_frames:
            times = state[time_key]
            state[time_key] = nn.functional.interpolate(times.transpose(1, 2), size=int(ours.num_frames),
                                                        mode="nearest").transpose(1, 2)
            changed.append(f"time {times.shape[1]} -> {ours.num_frames}")
    else:
        grid_src = (int(checkpoint.num_frames) // arch.time_patch(checkpoint), side_src, side_src)
        grid_new = (int(ours.num_frames) // arch.time_patch(ours), side_new, side_new)
        if grid_src != grid_new and table.shape[1] == 1 + math.prod(grid_src):
            grid = _resize_grid(table[0, 1:], grid_src, grid_new, "bicubic", "linear")
            state[key] = torch.cat([table[:, :1], grid[None]], dim=1)
            changed.append("x".join(map(str, grid_src)) + " -> " + "x".join(map(str, grid_new)))
    return ", ".join(changed) or None


def _safetensors_present(path: Path) -> bool:
    return any(path.glob("*.safetensors"))


def load_weights(entry: ModelEntry, network: nn.Module, path: Path, config: dict[str, Any]) -> str:
    """Fill ``network`` (this family's backbone) from the Hugging Face folder ``path`` (``config.json`` and
    ``model.safetensors``, or sharded safetensors with their index), read by the library's own
    ``from_pretrained``; the classifier (and V-JEPA 2's predictor) is dropped, positional embeddings
    are resized to this clip. Returns what was loaded."""
    from actcli.models.checkpoint import load_state

    arch = arch_of(entry)
    if not path.is_dir():
        raise UserError(f"{path} is not a Hugging Face model folder (config.json and model.safetensors); pass "
                        "the folder, hf:<repo>, kinetics or an actcli checkpoint")
    raw = _read_config(path)
    model_type = raw.get("model_type")
    if model_type != arch.model_type:
        others = [e.name for e in ENTRIES if e.options["arch"] == model_type]
        hint = f"pass --model {others[0]}" if others else "pass weights of a " + arch.paper + " checkpoint"
        raise UserError(f"{path} holds a {model_type!r} model (config.json model_type), not {arch.model_type!r} "
                        f"as {entry.name} needs: {hint}")
    if not _safetensors_present(path):
        pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt*")]
        extra = (f" ({pickled[0]} is not read: pickled weights can run code; convert it to safetensors, or use a "
                 "repo revision that has them, e.g. hf:<repo>@refs/pr/1)") if pickled else ""
        raise UserError(f"{path} has no model.safetensors{extra}")
    if not isinstance(network, HFBackbone):
        raise UserError(f"{path} holds Hugging Face weights but the model is not a Hugging Face encoder")
    transformers = _transformers()
    ours = network.model.config
    try:
        theirs = make_config(arch, raw, from_dict=True)
    except (TypeError, ValueError, KeyError, _strict_error()) as exc:
        raise UserError(f"{path / 'config.json'} is not a valid {arch.config_class} ({_config_error(exc)})") from None
    # A pretrained VideoMAE encoder ends in a layer norm; fine-tuning with mean pooling drops it for a new fc_norm
    # (VideoMAE's modeling_finetune.py: norm = Identity, fc_norm = LayerNorm when use_mean_pooling).
    drop_norm = arch.model_type == "videomae" and ours.use_mean_pooling and not theirs.use_mean_pooling
    if drop_norm:
        object.__setattr__(theirs, "use_mean_pooling", True)  # compare the rest; the library still loads its norm
    mismatch = _arch_mismatch(entry, theirs, ours)
    if drop_norm:
        object.__setattr__(theirs, "use_mean_pooling", False)
    if mismatch:
        raise UserError(f"weights {path} do not fit {entry.name}: {mismatch}")
    classifier = getattr(transformers, arch.classifier_class)
    try:
        with _quiet(), torch.device("cpu"):
            library, info = classifier.from_pretrained(
                str(path), config=theirs, dtype=torch.float32, use_safetensors=True, local_files_only=True,
                output_loading_info=True)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise UserError(f"weights {path} could not be read by transformers ({_first_line(exc)})") from None
    body = f"{arch.prefix}."
    missing = sorted(k for k in info.get("missing_keys", ()) if k.startswith(body)
                     and not k.startswith(f"{arch.prefix}.predictor."))
    if missing:
        raise UserError(f"weights {path} lack {len(missing)} encoder tensor(s), e.g. {missing[0]}: not a complete "
                        f"{arch.paper} checkpoint")
    not_loaded = {k.split(".")[0] for k in info.get("missing_keys", ()) if k.startswith(("pooler.", "fc_norm."))}
    state: dict[str, torch.Tensor] = {}
    for key, value in library.state_dict().items():
        if key.startswith(body):
            rest = key[len(body):]
            if rest.startswith("predictor."):
                continue
            state[f"model.{rest}"] = value
        elif key.startswith(("fc_norm.", "pooler.")):
            state[key] = value
    if drop_norm:
        state = {k: v for k, v in state.items() if not k.startswith("model.layernorm.")}
    own = network.state_dict()
    resized = _adapt_positions(arch, state, theirs, ours)
    pooling = {k.split(".")[0] for k in own if k.startswith(("pooler.", "fc_norm."))}
    fresh = sorted(name for name in pooling if name in not_loaded or not any(k.startswith(f"{name}.") for k in state))
    for name in fresh:  # the checkpoint has no pooler / fc_norm (a pretrained encoder): keep ours
        state.update({k: v for k, v in own.items() if k.startswith(f"{name}.")})
    del library
    load_state(network, state, path)
    notes = [f"{model_type}"]
    if resized:
        notes.append(f"positional embeddings resized {resized}")
    if drop_norm:
        notes.append("the encoder's final layer norm dropped for mean pooling")
    if fresh:
        notes.append(f"{' and '.join(fresh)} newly initialised (not in the checkpoint)")
    return f"backbone from {path} ({'; '.join(notes)})"
