"""The pytorchvideo family: X3D, SlowFast, Slow, C2D, I3D, R(2+1)D, CSN, MViT (2019-2021) and r3d_tiny.

Networks come from pytorchvideo's model builders (:mod:`actcli.models.builders`) with the layout
of their published checkpoints; ``--weights kinetics`` loads the Kinetics-400 ``.pyth`` files of
pytorchvideo's model zoo (``{"model_state": ...}``), cached in the torch hub cache. Convention:
Kinetics mean 0.45 and std 0.225, short side resized to the crop.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import Any

import torch
from pytorchvideo.models import hub
from pytorchvideo.models.accelerator.mobile_cpu.efficient_x3d import EfficientX3d
from pytorchvideo.models.head import ResNetBasicHead, VisionTransformerBasicHead
from torch import nn

from actcli.data.video import ClipSpec
from actcli.errors import UserError
from actcli.models.builders import efficient, mvit, pooled, r3d_tiny, slowfast, x3d
from actcli.models.families import ModelEntry

KINETICS_ROOT = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
ZOO = "pytorchvideo model zoo (github.com/facebookresearch/pytorchvideo, MODEL_ZOO.md)"


def _entry(name: str, build, clip: ClipSpec, file_name: str | None, top1: float | None = None) -> ModelEntry:
    url = f"{KINETICS_ROOT}/{file_name}" if file_name else None
    accuracy = f"Kinetics-400 top-1 {top1:.1f} ({ZOO})" if top1 is not None else None
    return ModelEntry(name, build, clip, url, accuracy=accuracy)


ENTRIES: tuple[ModelEntry, ...] = (
    _entry("x3d_xs", partial(x3d, depth_factor=2.2), ClipSpec(4, 12, 160), "X3D_XS.pyth", 69.1),
    _entry("x3d_s", partial(x3d, depth_factor=2.2), ClipSpec(13, 6, 160), "X3D_S.pyth", 73.3),
    _entry("x3d_m", partial(x3d, depth_factor=2.2), ClipSpec(16, 5, 224), "X3D_M.pyth", 75.9),
    _entry("x3d_l", partial(x3d, depth_factor=5.0), ClipSpec(16, 5, 312), "X3D_L.pyth", 77.4),
    _entry("efficient_x3d_xs", partial(efficient, hub.efficient_x3d_xs), ClipSpec(4, 12, 160),
           "efficient_x3d_xs_original_form.pyth", 68.5),
    _entry("slow_r50", partial(pooled, hub.slow_r50), ClipSpec(8, 8, 224), "SLOW_8x8_R50.pyth", 74.6),
    _entry("slowfast_r50", partial(slowfast, hub.slowfast_r50, alpha=4), ClipSpec(32, 2, 224),
           "SLOWFAST_8x8_R50.pyth", 76.9),
    _entry("c2d_r50", partial(pooled, hub.c2d_r50), ClipSpec(8, 8, 224), "C2D_8x8_R50.pyth", 71.5),
    _entry("i3d_r50", partial(pooled, hub.i3d_r50), ClipSpec(8, 8, 224), "I3D_8x8_R50.pyth", 73.3),
    _entry("r2plus1d_r50", partial(pooled, hub.r2plus1d_r50), ClipSpec(16, 4, 224), "R2PLUS1D_16x4_R50.pyth", 76.0),
    _entry("csn_r101", partial(pooled, hub.csn_r101), ClipSpec(32, 2, 224), "CSN_32x2_R101.pyth", 77.0),
    _entry("mvit_base_16x4", partial(mvit, hub.mvit_base_16x4), ClipSpec(16, 4, 224), "MVIT_B_16x4.pyth", 78.9),
    _entry("r3d_tiny", r3d_tiny, ClipSpec(8, 4, 64), None),
)


def strip_classifier(network: nn.Module) -> tuple[nn.Module, int]:
    """Remove a pytorchvideo network's classifier (dropout, final projection, activation) in place.

    Handles every head in the family: ``Net``s ending in a ``ResNetBasicHead`` (ResNet, X3D,
    SlowFast, CSN, R(2+1)D; the projection is ``blocks.<last>.proj``), MViT's
    ``VisionTransformerBasicHead`` (``head.proj``) and ``EfficientX3d`` (``projection``).

    Returns the network (now clip ``float [B, 3, T, H, W]`` -> features ``[B, feature_dim]``)
    and ``feature_dim``.
    """
    if isinstance(network, EfficientX3d):
        feature_dim = network.projection.model.in_features
        network.projection = nn.Identity()  # features [B, 1, 1, 1, D] -> averaged/flattened to [B, D]
        network.act = nn.Identity()
        if hasattr(network, "dropout"):
            del network.dropout
        return network, feature_dim
    blocks = getattr(network, "blocks", None)
    head = blocks[-1] if isinstance(blocks, nn.ModuleList) and len(blocks) else None
    if isinstance(head, ResNetBasicHead):
        feature_dim = head.proj.in_features
        head.proj = head.dropout = head.activation = None  # pooled [B, D, 1, 1, 1] -> output_pool -> [B, D]
        return network, feature_dim
    head = getattr(network, "head", None)
    if isinstance(head, VisionTransformerBasicHead):
        feature_dim = head.proj.in_features
        head.proj = nn.Identity()  # the head always calls proj; cls token [B, D] passes through
        head.dropout = head.activation = None
        return network, feature_dim
    raise TypeError(f"no known classifier head on {type(network).__name__}; teach strip_classifier about it")


def classifier_prefix(state: dict[str, torch.Tensor]) -> str | None:
    """Key prefix of the 400-way projection in a pytorchvideo Kinetics state dict.

    ``projection.model.`` (EfficientX3d), ``head.proj.`` (MViT, whose transformer blocks
    have ``blocks.<i>.proj`` layers of their own) or ``blocks.<last>.proj.`` (``Net``s).
    """
    if any(k.startswith("projection.model.") for k in state):
        return "projection.model."
    if "head.proj.weight" in state:
        return "head.proj."
    blocks = [int(m[1]) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))]
    return f"blocks.{max(blocks)}.proj." if blocks else None


def kinetics_state_without_classifier(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A pytorchvideo Kinetics state dict minus the 400-way projection, keyed for ``backbone``."""
    prefix = classifier_prefix(state)
    return {k: v for k, v in state.items() if prefix is None or not k.startswith(prefix)}


STOCHASTIC_DEPTH = {"mvit_base_16x4": hub.mvit_base_16x4}
"""The networks of this family with stochastic depth: name -> hub builder taking ``droppath_rate_block``
(the deepest block's rate; pytorchvideo rises it linearly from 0 over the blocks, default 0)."""


def check_clip(entry: ModelEntry, spec: ClipSpec, config: dict[str, Any]) -> None:
    others = {k: v for k, v in config.items() if k != "drop_path"}
    if others:
        raise UserError(f"--model-config: {entry.name} ({entry.family}) takes no architecture overrides (Hugging Face "
                        "models and Swin3D do)")
    if config.get("drop_path") and entry.name not in STOCHASTIC_DEPTH:
        raise UserError(f"--drop-path: {entry.name} has no stochastic depth (of the pytorchvideo models only "
                        f"{', '.join(STOCHASTIC_DEPTH)} has); drop the option")
    if entry.name.startswith("mvit") and (spec.frames % 2 or spec.crop % 4):
        raise UserError(f"{entry.name} takes an even number of frames and a crop divisible by 4 (2x4x4 patches), "
                        f"not {spec}")


def backbone(entry: ModelEntry, spec: ClipSpec, config: dict[str, Any]) -> tuple[nn.Module, int]:
    """The network without its classifier; ``config["drop_path"]`` (MViT) sets its stochastic depth."""
    check_clip(entry, spec, config)
    if config.get("drop_path") is not None and entry.name in STOCHASTIC_DEPTH:
        hub_builder = partial(STOCHASTIC_DEPTH[entry.name], droppath_rate_block=float(config["drop_path"]))
        return strip_classifier(mvit(hub_builder, spec))
    return strip_classifier(entry.build(spec))


def weights_cache(entry: ModelEntry) -> Path | None:
    """Where the Kinetics-400 checkpoint is (or would be) cached: the torch hub cache."""
    if entry.weights_url is None:
        return None
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(entry.weights_url).name


def published_weights(entry: ModelEntry) -> Path:
    """The cached Kinetics-400 checkpoint, downloaded once; offline: one line naming ``--weights PATH``."""
    from actcli.net import DownloadError, download

    cache = weights_cache(entry)
    if cache is None:
        raise UserError(f"{entry.name} has no published Kinetics-400 weights; train it from scratch or pass "
                        "--weights PATH")
    if cache.is_file():
        return cache
    try:  # pytorchvideo publishes no checksums: the size is verified, then loading checks the content
        download(entry.weights_url, cache)
    except DownloadError as exc:
        raise UserError(f"{exc}; Kinetics-400 weights for {entry.name} could not be fetched: download the file "
                        "where you are online and pass --weights PATH") from None
    return cache


def resolve(entry: ModelEntry, source: str) -> Path:
    """The local file ``--weights source`` names: ``kinetics`` -> the cached published checkpoint."""
    if source.startswith("hf:"):
        raise UserError(f"{entry.name} is a pytorchvideo model: hf: weights are for Hugging Face models; "
                        "pass --weights kinetics or a file")
    return published_weights(entry) if source == "kinetics" else Path(source)


def load_weights(entry: ModelEntry, network: nn.Module, path: Path, config: dict[str, Any]) -> str:
    """pytorchvideo zoo files (``{"model_state": ...}``) and bare state dicts fill the backbone (the 400-way
    projection dropped)."""
    from actcli.models.checkpoint import load_file, load_state

    data = load_file(path)
    state = data.get("model_state", data)
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} holds no state dict ('model_state' or tensors at top level)")
    load_state(network, kinetics_state_without_classifier(state), path)
    return f"backbone from {path}"
