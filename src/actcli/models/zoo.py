"""The model zoo: name -> pytorchvideo network, native clip spec and Kinetics-400 weights.

Every model is wrapped in :class:`ActionModel`: a pytorchvideo network with its classifier
removed (``backbone``, clip ``float [B, 3, T, H, W]`` -> pooled features ``[B, feature_dim]``)
and a new ``head`` (dropout + linear) sized to the dataset. Every network takes ONE clip
tensor; two-pathway networks (SlowFast) split it themselves
(:class:`~actcli.models.builders.SlowFastNet`).

Adding a model is one :data:`MODELS` entry: a name, a builder ``ClipSpec -> nn.Module``
(usually a pytorchvideo hub function through one of :mod:`actcli.models.builders`), the
clip spec it was published with and the URL of its Kinetics-400 checkpoint.
:func:`strip_classifier` and :func:`classifier_prefix` know the heads of those networks.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from pytorchvideo.models import hub
from pytorchvideo.models.accelerator.mobile_cpu.efficient_x3d import EfficientX3d
from pytorchvideo.models.head import ResNetBasicHead, VisionTransformerBasicHead
from torch import nn

from actcli.data.video import ClipSpec
from actcli.errors import UserError
from actcli.models.builders import Builder, efficient, mvit, pooled, r3d_tiny, slowfast, x3d
from actcli.models.freeze import keep_in_eval

KINETICS_ROOT = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"


@dataclass(frozen=True)
class ModelEntry:
    """One zoo model.

    ``build(spec)`` returns the pytorchvideo network for clips of ``spec`` (``float
    [B, 3, spec.frames, spec.crop, spec.crop]`` -> Kinetics-400 logits ``[B, 400]``), laid
    out so published checkpoints load into it unchanged. ``clip`` is the spec the Kinetics
    weights were trained with; ``weights_url`` is ``None`` for models without them.
    """

    name: str
    build: Builder
    clip: ClipSpec
    weights_url: str | None

    @property
    def weights_cache(self) -> Path | None:
        """Where the Kinetics-400 checkpoint is (or would be) cached: the torch hub cache."""
        if self.weights_url is None:
            return None
        return Path(torch.hub.get_dir()) / "checkpoints" / Path(self.weights_url).name


def _k400(file_name: str) -> str:
    return f"{KINETICS_ROOT}/{file_name}"


MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry("x3d_xs", partial(x3d, depth_factor=2.2), ClipSpec(4, 12, 160), _k400("X3D_XS.pyth")),
        ModelEntry("x3d_s", partial(x3d, depth_factor=2.2), ClipSpec(13, 6, 160), _k400("X3D_S.pyth")),
        ModelEntry("x3d_m", partial(x3d, depth_factor=2.2), ClipSpec(16, 5, 224), _k400("X3D_M.pyth")),
        ModelEntry("x3d_l", partial(x3d, depth_factor=5.0), ClipSpec(16, 5, 312), _k400("X3D_L.pyth")),
        ModelEntry("efficient_x3d_xs", partial(efficient, hub.efficient_x3d_xs), ClipSpec(4, 12, 160),
                   _k400("efficient_x3d_xs_original_form.pyth")),
        ModelEntry("slow_r50", partial(pooled, hub.slow_r50), ClipSpec(8, 8, 224), _k400("SLOW_8x8_R50.pyth")),
        ModelEntry("slowfast_r50", partial(slowfast, hub.slowfast_r50, alpha=4), ClipSpec(32, 2, 224),
                   _k400("SLOWFAST_8x8_R50.pyth")),
        ModelEntry("c2d_r50", partial(pooled, hub.c2d_r50), ClipSpec(8, 8, 224), _k400("C2D_8x8_R50.pyth")),
        ModelEntry("i3d_r50", partial(pooled, hub.i3d_r50), ClipSpec(8, 8, 224), _k400("I3D_8x8_R50.pyth")),
        ModelEntry("r2plus1d_r50", partial(pooled, hub.r2plus1d_r50), ClipSpec(16, 4, 224),
                   _k400("R2PLUS1D_16x4_R50.pyth")),
        ModelEntry("csn_r101", partial(pooled, hub.csn_r101), ClipSpec(32, 2, 224), _k400("CSN_32x2_R101.pyth")),
        ModelEntry("mvit_base_16x4", partial(mvit, hub.mvit_base_16x4), ClipSpec(16, 4, 224),
                   _k400("MVIT_B_16x4.pyth")),
        ModelEntry("r3d_tiny", r3d_tiny, ClipSpec(8, 4, 64), None),
    )
}


def get_entry(name: str) -> ModelEntry:
    """The zoo entry for ``name``; an unknown name lists the known ones and the closest."""
    if name in MODELS:
        return MODELS[name]
    close = difflib.get_close_matches(name, MODELS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise UserError(f"unknown model {name!r}{hint}; known models: {', '.join(MODELS)}")


class ClassifierHead(nn.Sequential):
    """Dropout and the final linear classifier: features ``[B, D]`` -> logits ``[B, K]``.

    The module that maps features to class scores wherever it sits (an ActionModel's
    ``head``, a head per modality, or trained alone on cached features): ``head_lr_mult``
    applies to its parameters (:func:`actcli.engine.recipe.param_groups`) and its linear
    layer stays fp32 at bf16 inference (:func:`actcli.engine.inference.classifier_in_fp32`).
    Parameter names are a plain ``nn.Sequential``'s (``0``, ``1.weight``, ``1.bias``).
    """

    def __init__(self, in_features: int, num_classes: int, dropout: float) -> None:
        super().__init__(nn.Dropout(dropout), nn.Linear(in_features, num_classes))

    def head_parameters(self) -> list[nn.Parameter]:
        """All of them: this module is a head."""
        return list(self.parameters())


class ActionModel(nn.Module):
    """A clip classifier: ``float [B, C, T, H, W]`` -> logits ``[B, num_classes]``.

    ``backbone`` maps a clip to pooled features ``[B, feature_dim]``; ``head`` is a
    :class:`ClassifierHead` (dropout plus a linear layer). A frozen backbone stays in eval
    mode through ``train()`` (:func:`actcli.models.freeze.keep_in_eval`), so BatchNorm
    statistics and dropout inside it stay untouched.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = ClassifierHead(feature_dim, num_classes, dropout)

    @property
    def num_classes(self) -> int:
        return self.head[-1].out_features

    def head_parameters(self) -> list[nn.Parameter]:
        """The parameters that map features to class scores (those of ``head``)."""
        return self.head.head_parameters()

    def freeze_backbone(self) -> None:
        """Stop gradients into the backbone and keep it in eval mode from now on."""
        keep_in_eval(self.backbone)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(clips))


def strip_classifier(network: nn.Module) -> tuple[nn.Module, int]:
    """Remove a zoo network's classifier (dropout, final projection, activation) in place.

    Handles every head in the zoo: pytorchvideo ``Net``s ending in a ``ResNetBasicHead``
    (ResNet, X3D, SlowFast, CSN, R(2+1)D; the projection is ``blocks.<last>.proj``), MViT's
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


def build_model(name: str, spec: ClipSpec, num_classes: int, dropout: float = 0.5) -> ActionModel:
    """A randomly initialised :class:`ActionModel` for clips of ``spec``."""
    entry = get_entry(name)
    backbone, feature_dim = strip_classifier(entry.build(spec))
    return ActionModel(backbone, feature_dim, num_classes, dropout)
