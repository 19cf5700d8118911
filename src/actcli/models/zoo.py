"""The model zoo: a flat table of models from three families, each wrapped in :class:`ActionModel`.

Families (:mod:`actcli.models.families`): ``pytorchvideo`` (X3D, SlowFast, MViT, ...),
``torchvision`` (R3D, R(2+1)D, S3D, MViT v1/v2, Video Swin) and ``huggingface`` (VideoMAE,
TimeSformer, ViViT, V-JEPA 2). Every model is a ``backbone`` (clip ``float [B, 3, T, H, W]`` ->
pooled features ``[B, feature_dim]``, whatever the network's own layout) and a new ``head``
(dropout + linear) sized to the dataset; its :class:`~actcli.models.convention.Convention` says
how clips are normalised for it.

Adding a model is one entry in its family's ``ENTRIES``; adding a family is one module.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

import torch
from torch import nn

from actcli.data.video import ClipSpec
from actcli.errors import UserError
from actcli.models.families import FAMILIES, ModelEntry, all_entries, family_module
from actcli.models.families.pytorchvideo import (  # noqa: F401 (re-exported: the names tests and tools use)
    kinetics_state_without_classifier,
    strip_classifier,
)
from actcli.models.freeze import keep_in_eval

MODELS: dict[str, ModelEntry] = {entry.name: entry for entry in all_entries()}
ACTIVATION_FACTOR = 20  # activations of a training step, as a multiple of its input clips' bytes (rough, on purpose)


def get_entry(name: str) -> ModelEntry:
    """The zoo entry for ``name``; an unknown name lists the families, their models and the closest name."""
    if name in MODELS:
        return MODELS[name]
    close = difflib.get_close_matches(name, MODELS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    listing = "; ".join(f"{family}: {', '.join(e.name for e in MODELS.values() if e.family == family)}"
                        for family in FAMILIES)
    raise UserError(f"unknown model {name!r}{hint}; known models by family: {listing}")


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


def check_clip(name: str, spec: ClipSpec, config: dict[str, Any] | None = None, batch_size: int = 1) -> None:
    """A :class:`UserError` saying what model ``name`` can take when it cannot take clips of ``spec``: the
    family's rules (patch sizes, ...), a batch that would not fit in this machine's memory, and a forward
    pass on the ``meta`` device (shapes only, no memory) that catches clips smaller than the kernels."""
    entry = get_entry(name)
    family_module(entry).check_clip(entry, spec, config or {})
    need = batch_size * 3 * spec.frames * spec.crop * spec.crop * 4 * ACTIVATION_FACTOR
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    if total and need > total:
        raise UserError(f"clips of {spec} in batches of {batch_size} need about {need / 2**30:.0f} GiB for {name}, "
                        f"more than this machine's {total / 2**30:.0f} GiB; lower --frames, --crop or --batch-size")
    from actcli.models.flops import build_on_meta

    try:
        network = build_on_meta(lambda clip: build_model(name, clip, 2, config=config), spec)
        with torch.no_grad():
            network(torch.empty(1, 3, spec.frames, spec.crop, spec.crop, device="meta"))
    except (RuntimeError, ValueError, IndexError, AssertionError) as exc:
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{name} cannot take clips of {spec} ({reason}); use a larger --frames / --crop, e.g. its "
                        f"native {entry.clip}") from None


def build_backbone(name: str, spec: ClipSpec, config: dict[str, Any] | None = None) -> tuple[nn.Module, int]:
    """Model ``name`` without its classifier, randomly initialised, for clips of ``spec``:
    ``(backbone, feature_dim)``; ``config`` overrides its architecture (``--model-config``)."""
    entry = get_entry(name)
    return family_module(entry).backbone(entry, spec, config or {})


def build_model(name: str, spec: ClipSpec, num_classes: int, dropout: float = 0.5,
                config: dict[str, Any] | None = None) -> ActionModel:
    """A randomly initialised :class:`ActionModel` for clips of ``spec``."""
    backbone, feature_dim = build_backbone(name, spec, config)
    return ActionModel(backbone, feature_dim, num_classes, dropout)
