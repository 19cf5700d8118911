"""Model cost by counting: parameters and FLOPs per clip, without memory or real compute.

Networks are built and run on PyTorch's ``meta`` device (tensors with shapes but no
data) under :class:`torch.utils.flop_counter.FlopCounterMode`, which counts the FLOPs of
matrix multiplications, convolutions and attention from their shapes. It counts a
multiply-add as 2 FLOPs, so the "GFLOPs" of papers and model zoos (multiply-adds, MACs)
are half of :attr:`ModelCost.gflops`. Pooling, normalisation and activations are not
counted (a few percent at most). Counting every model of the zoo takes a few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from actcli.data.video import ClipSpec
from actcli.models.builders import Builder
from actcli.models.families import ModelEntry


@dataclass(frozen=True)
class ModelCost:
    """Parameters of the network with its Kinetics-400 classifier, FLOPs for one clip."""

    params: int
    flops: int

    @property
    def params_m(self) -> float:
        """Parameters in millions."""
        return self.params / 1e6

    @property
    def gflops(self) -> float:
        """Counted FLOPs / 1e9 (a multiply-add counts 2)."""
        return self.flops / 1e9


def build_on_meta(build: Builder, spec: ClipSpec) -> nn.Module:
    """``build(spec)`` in eval mode with every tensor on the ``meta`` device.

    Builders that need real values while building (MViT reads ``linspace(...).item()``)
    are built on the CPU and moved.
    """
    try:
        with torch.device("meta"):
            network = build(spec)
    except (RuntimeError, NotImplementedError):
        network = build(spec).to("meta")
    return network.eval()


def clip_flops(network: nn.Module, spec: ClipSpec) -> int:
    """FLOPs of ``network`` on one clip ``[1, 3, spec.frames, spec.crop, spec.crop]``
    (run on the network's device; use a ``meta`` network for an instant count)."""
    device = next(network.parameters()).device
    clip = torch.empty(1, 3, spec.frames, spec.crop, spec.crop, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        network(clip)
    return counter.get_total_flops()


def drop_batchnorm(network: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer by an identity, in place.

    The FLOP count stays the same (FlopCounterMode counts no normalisation) but is twice as
    fast: the counter decomposes each BatchNorm call into a dozen elementwise operations.
    """
    for name, child in network.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(network, name, nn.Identity())
        else:
            drop_batchnorm(child)
    return network


def model_cost(entry: ModelEntry, spec: ClipSpec | None = None) -> ModelCost:
    """Parameters and FLOPs per clip of a zoo network (with a 400-way classifier) at ``spec``, by
    default the clip spec it was published with."""
    from actcli.models.zoo import build_model

    spec = spec or entry.clip
    network = build_on_meta(lambda clip: build_model(entry.name, clip, 400), spec)
    params = sum(p.numel() for p in network.parameters())
    return ModelCost(params=params, flops=clip_flops(drop_batchnorm(network), spec))
