"""Network builders for the zoo: ``ClipSpec -> nn.Module`` with a Kinetics-400 classifier.

Each returns the pytorchvideo network with the layout of its published checkpoint (same
parameter names and shapes), taking ONE clip ``float [B, 3, T, H, W]`` (``T`` =
``spec.frames``, ``H`` = ``W`` = ``spec.crop``) and returning logits ``[B, 400]``.
Pooling is global wherever the architecture allows, so a network built for the native
clip spec also runs on smaller clips (tests, quick experiments).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pytorchvideo.models.head import create_res_basic_head
from pytorchvideo.models.net import Net
from pytorchvideo.models.resnet import create_bottleneck_block, create_res_stage
from pytorchvideo.models.stem import create_res_basic_stem
from pytorchvideo.models.x3d import create_x3d
from torch import nn

from actcli.data.video import ClipSpec
from actcli.errors import UserError

KINETICS_CLASSES = 400

Builder = Callable[[ClipSpec], nn.Module]
"""Clip spec -> network with a Kinetics-400 classifier (see the module docstring)."""
HubBuilder = Callable[..., nn.Module]
"""A ``pytorchvideo.models.hub`` function (called with ``pretrained=False``)."""


def x3d(spec: ClipSpec, depth_factor: float) -> nn.Module:
    """X3D (``create_x3d`` as the pytorchvideo hub builds it); its head pools over a fixed
    ``spec.frames x ceil(spec.crop / 32)^2`` window, so it is built for one clip spec."""
    return create_x3d(
        input_clip_length=spec.frames,
        input_crop_size=spec.crop,
        model_num_class=KINETICS_CLASSES,
        depth_factor=depth_factor,
        head_activation=None,
    )


def pooled(hub_builder: HubBuilder, spec: ClipSpec) -> nn.Module:
    """A pytorchvideo hub ResNet-style network (Slow, C2D, I3D, CSN, R(2+1)D) whose head
    pools globally (``AdaptiveAvgPool3d``) instead of over the fixed window of the native
    clip spec: the same result at that spec (the window covers the whole final feature
    map), and any other clip size works. No parameters depend on ``spec``."""
    del spec
    return hub_builder(pretrained=False, head_pool=nn.AdaptiveAvgPool3d)


def efficient(hub_builder: HubBuilder, spec: ClipSpec) -> nn.Module:
    """An ``EfficientX3d`` (pytorchvideo.models.accelerator); it pools globally already."""
    del spec
    return hub_builder(pretrained=False)


def slow_frames(frames: int, alpha: int) -> torch.Tensor:
    """``long [ceil(frames / alpha)]``: the fast pathway's frames the slow pathway takes, evenly spaced
    from the first to the last, ``torch.linspace(0, T - 1, n).long()`` as pytorchvideo's ``PackPathway``
    (PySlowFast's ``pack_pathway_output``, which the Kinetics weights were trained with) picks them.

    ``n = T // alpha`` there; here ``ceil(T / alpha)``, the length the fast->slow fusion convolutions
    (temporal stride ``alpha``, padded) give, so any ``T`` runs; the same when ``alpha`` divides ``T``."""
    return torch.linspace(0, frames - 1, -(-frames // alpha)).long()


class SlowFastNet(nn.Module):
    """A pytorchvideo SlowFast ``Net`` fed one clip instead of a ``[slow, fast]`` list.

    ``forward(clips)``: ``float [B, C, T, H, W]`` -> pathways ``[slow, fast]`` with ``fast``
    the clip itself (``T`` frames) and ``slow`` its frames :func:`slow_frames` (``[B, C,
    ceil(T / alpha), H, W]``; for T = 32, alpha = 4: frames 0, 4, 8, 13, 17, 22, 26, 31) -> the
    network's blocks -> ``[B, 400]`` (or features once the classifier is stripped). Parameters
    keep the ``Net``'s names (``blocks.<i>...``), so pytorchvideo checkpoints load unchanged and
    the rest of actcli passes one tensor.
    """

    def __init__(self, net: Net, alpha: int) -> None:
        super().__init__()
        self.alpha = alpha
        self.blocks = net.blocks

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        index = slow_frames(clips.shape[2], self.alpha).to(clips.device)
        x: list[torch.Tensor] | torch.Tensor = [clips.index_select(2, index), clips]
        for block in self.blocks:
            x = block(x)
        return x


def slowfast(hub_builder: HubBuilder, spec: ClipSpec, alpha: int) -> nn.Module:
    """A pytorchvideo hub SlowFast network with global head pooling, wrapped in
    :class:`SlowFastNet`; ``spec`` is the fast pathway's clip (slow: ``ceil(frames / alpha)`` of its frames)."""
    del spec
    return SlowFastNet(hub_builder(pretrained=False, head_pool=nn.AdaptiveAvgPool3d), alpha)


def mvit(hub_builder: HubBuilder, spec: ClipSpec) -> nn.Module:
    """A pytorchvideo hub MViT for clips of ``spec``: its positional embeddings have one entry
    per ``2 x 4 x 4`` patch, so their shapes (and the checkpoint that fits) depend on ``spec``."""
    if spec.frames % 2 or spec.crop % 4:
        raise UserError(f"MViT needs an even number of frames and a crop divisible by 4 (2x4x4 patches), not {spec}")
    return hub_builder(pretrained=False, spatial_size=spec.crop, temporal_size=spec.frames)


def r3d_tiny(spec: ClipSpec) -> nn.Module:
    """A small 3D ResNet (full 3x3x3 convolutions, widths 16-128, ~0.2M parameters).

    Not a published model: it exists so a laptop CPU can train a useful model from scratch
    in minutes (demo, tests). Full 3D kernels pick up motion direction far sooner from
    random initialisation than X3D's channel-wise temporal convolutions.
    """
    del spec
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
