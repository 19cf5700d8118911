"""The model zoo: name -> pytorchvideo builder, native clip spec and Kinetics-400 weights.

Every model is wrapped in :class:`ActionModel`: a pytorchvideo network with its classifier
removed (``backbone``, clip -> pooled features) and a new ``head`` (dropout + linear) sized
to the dataset. Adding a model is one :data:`MODELS` entry.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch
from pytorchvideo.models.head import create_res_basic_head
from pytorchvideo.models.net import Net
from pytorchvideo.models.resnet import create_bottleneck_block, create_res_stage
from pytorchvideo.models.stem import create_res_basic_stem
from pytorchvideo.models.x3d import create_x3d
from torch import nn

from actcli.data.video import ClipSpec
from actcli.errors import UserError

KINETICS_ROOT = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
KINETICS_CLASSES = 400


@dataclass(frozen=True)
class ModelEntry:
    """One zoo model.

    ``build(spec)`` returns the pytorchvideo network for clips of ``spec`` with a
    Kinetics-400 classifier, so published checkpoints load into it unchanged.
    """

    name: str
    build: Callable[[ClipSpec], nn.Module]
    clip: ClipSpec
    weights_url: str | None


def _x3d(spec: ClipSpec, depth_factor: float) -> nn.Module:
    return create_x3d(
        input_clip_length=spec.frames,
        input_crop_size=spec.crop,
        model_num_class=KINETICS_CLASSES,
        depth_factor=depth_factor,
        head_activation=None,
    )


def _r3d_tiny(spec: ClipSpec) -> nn.Module:
    """A small 3D ResNet (full 3x3x3 convolutions, widths 16-128, ~0.4M parameters).

    Not a published model: it exists so a laptop CPU can train a useful model from scratch
    in minutes (demo, tests). Full 3D kernels pick up motion direction far sooner from
    random initialisation than X3D's channel-wise temporal convolutions.
    """
    stages = []
    dims = (16, 32, 64, 128)
    for i, (dim_in, dim_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        stages.append(
            create_res_stage(
                depth=1, dim_in=dim_in, dim_inner=dim_in, dim_out=dim_out,
                bottleneck=create_bottleneck_block,
                conv_a_kernel_size=(1, 1, 1), conv_a_stride=(1, 1, 1), conv_a_padding=(0, 0, 0),
                conv_b_kernel_size=(3, 3, 3), conv_b_padding=(1, 1, 1),
                conv_b_stride=(1 if i == 0 else 2, 2, 2),
            )
        )
    stem = create_res_basic_stem(
        in_channels=3, out_channels=dims[0], conv_kernel_size=(3, 5, 5), conv_padding=(1, 2, 2), pool=None
    )
    head = create_res_basic_head(
        in_features=dims[-1], out_features=KINETICS_CLASSES, pool=nn.AdaptiveAvgPool3d, output_size=(1, 1, 1)
    )
    return Net(blocks=nn.ModuleList([stem, *stages, head]))


MODELS: dict[str, ModelEntry] = {
    entry.name: entry
    for entry in (
        ModelEntry("x3d_xs", partial(_x3d, depth_factor=2.2), ClipSpec(4, 12, 160), f"{KINETICS_ROOT}/X3D_XS.pyth"),
        ModelEntry("x3d_s", partial(_x3d, depth_factor=2.2), ClipSpec(13, 6, 160), f"{KINETICS_ROOT}/X3D_S.pyth"),
        ModelEntry("x3d_m", partial(_x3d, depth_factor=2.2), ClipSpec(16, 5, 224), f"{KINETICS_ROOT}/X3D_M.pyth"),
        ModelEntry("x3d_l", partial(_x3d, depth_factor=5.0), ClipSpec(16, 5, 312), f"{KINETICS_ROOT}/X3D_L.pyth"),
        ModelEntry("r3d_tiny", _r3d_tiny, ClipSpec(8, 4, 64), None),
    )
}


def get_entry(name: str) -> ModelEntry:
    """The zoo entry for ``name``; an unknown name lists the known ones and the closest."""
    if name in MODELS:
        return MODELS[name]
    close = difflib.get_close_matches(name, MODELS, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise UserError(f"unknown model {name!r}{hint}; known models: {', '.join(MODELS)}")


class ActionModel(nn.Module):
    """A clip classifier: ``float [B, C, T, H, W]`` -> logits ``[B, num_classes]``.

    ``backbone`` maps a clip to pooled features ``[B, feature_dim]``; ``head`` is dropout
    plus a linear layer. With a frozen backbone, ``train()`` keeps the backbone in eval
    mode, so BatchNorm statistics and dropout inside it stay untouched.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))
        self.keep_eval: list[nn.Module] = []  # frozen parts, see actcli.models.freeze

    @property
    def num_classes(self) -> int:
        return self.head[-1].out_features

    def freeze_backbone(self) -> None:
        """Stop gradients into the backbone and keep it in eval mode from now on."""
        self.backbone.requires_grad_(False)
        self.keep_eval = [self.backbone]
        self.backbone.eval()

    def train(self, mode: bool = True) -> ActionModel:
        super().train(mode)
        for module in self.keep_eval:
            module.eval()
        return self

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(clips))


def strip_classifier(network: nn.Module) -> tuple[nn.Module, int]:
    """Remove a pytorchvideo network's dropout and final projection in place.

    Returns the network (now clip -> ``[B, feature_dim]``) and ``feature_dim``.
    """
    head = network.blocks[-1]
    feature_dim = head.proj.in_features
    head.proj = None
    head.dropout = None
    return network, feature_dim


def kinetics_state_without_classifier(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A pytorchvideo Kinetics state dict minus the 400-way projection, keyed for ``backbone``."""
    head_prefix = "blocks."
    drop = [k for k in state if k.startswith(head_prefix) and ".proj." in k]
    return {k: v for k, v in state.items() if k not in drop}


def build_model(name: str, spec: ClipSpec, num_classes: int, dropout: float = 0.5) -> ActionModel:
    """A randomly initialised :class:`ActionModel` for clips of ``spec``."""
    entry = get_entry(name)
    backbone, feature_dim = strip_classifier(entry.build(spec))
    return ActionModel(backbone, feature_dim, num_classes, dropout)
