"""Batch norm whose training statistics cover the global batch of every process, on CPU too.

``torch.nn.SyncBatchNorm`` refuses CPU tensors (its kernels are CUDA-only), so on gloo actcli
uses :class:`CpuSyncBatchNorm`: the per-channel sum and count, then the sum of squared
deviations, are summed over ranks with a differentiable all-reduce (:class:`_SumOverRanks`,
the gradient of a sum over ranks being the sum of the ranks' gradients), so the forward pass
and the gradients equal those of one process holding the whole global batch.
On CUDA, :func:`convert_sync_batchnorm` uses PyTorch's own class. Parameter and buffer names
are those of ``BatchNorm*d``, so checkpoints load into plain models.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


class _SumOverRanks(torch.autograd.Function):
    """``all_reduce(SUM)`` with gradient ``all_reduce(SUM)`` of the incoming gradients.

    ``torch.distributed.nn.functional.all_reduce`` does the same but is deprecated, and its
    replacement in ``_functional_collectives`` has no autograd.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        out = grad.clone()
        dist.all_reduce(out)
        return out


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over ranks, differentiable."""
    return _SumOverRanks.apply(tensor.contiguous())


class CpuSyncBatchNorm(_BatchNorm):
    """``BatchNorm*d`` over the global batch when a process group of several ranks exists."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        shape = [1, channels] + [1] * (x.dim() - 2)
        local_count = torch.full((1,), x.numel() / channels, dtype=x.dtype)
        totals = all_reduce(torch.cat([x.sum(dims), local_count]))  # [C sums, count]
        count = totals[-1]
        mean = totals[:channels] / count
        centred = x - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / count  # biased, as batch norm normalises with
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            with torch.no_grad():
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.mul_(1 - factor).add_(factor * mean.detach())
                self.running_var.mul_(1 - factor).add_(factor * unbiased.detach())
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every ``BatchNorm*d`` of ``model`` synchronised across ranks: PyTorch's class on CUDA,
    :class:`CpuSyncBatchNorm` elsewhere (weights and statistics kept)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _convert(model)


def _convert(module: nn.Module) -> nn.Module:
    if isinstance(module, _BatchNorm) and not isinstance(module, CpuSyncBatchNorm):
        out = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats)
        out.load_state_dict(module.state_dict())
        out.train(module.training)
        for parameter, original in zip(out.parameters(), module.parameters(), strict=True):
            parameter.requires_grad_(original.requires_grad)
        return out
    for name, child in module.named_children():
        module.add_module(name, _convert(child))
    return module

