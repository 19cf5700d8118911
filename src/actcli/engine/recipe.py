"""The optimisation recipe: parameter groups, optimizer, LR schedule, mixed precision.

Weight decay applies to weights of convolutions and linear layers only; biases and
normalisation parameters (1-d tensors) are not decayed, as in PySlowFast and timm. The new
classifier head can learn faster than the pretrained backbone (``head_lr_mult``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn

from actcli.errors import UserError
from actcli.settings import TrainSettings


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that map features to class scores, as ``model.head_parameters()`` states
    them (:class:`~actcli.models.zoo.ClassifierHead`, ActionModel, MultiModalModel); none for a
    module that states none."""
    stated = getattr(model, "head_parameters", None)
    return list(stated()) if callable(stated) else []


def param_groups(model: nn.Module, settings: TrainSettings) -> list[dict]:
    """Up to four groups: (backbone | head) x (decayed | not decayed); empty ones dropped.

    "Head" is decided by the module (:func:`head_parameters`), not by parameter names, so
    late-fusion heads, fusion weights and a head trained alone on cached features all get
    ``lr x head_lr_mult``.
    """
    head = {id(p) for p in head_parameters(model)}
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for param in model.parameters():
        if not param.requires_grad:
            continue
        is_head = id(param) in head
        decay = param.ndim > 1
        groups.setdefault((is_head, decay), []).append(param)
    out = []
    for (is_head, decay), params in sorted(groups.items()):
        out.append({
            "params": params,
            "lr": settings.lr * (settings.head_lr_mult if is_head else 1.0),
            "weight_decay": settings.weight_decay if decay else 0.0,
            "name": f"{'head' if is_head else 'backbone'}/{'decay' if decay else 'no_decay'}",
        })
    if not out:
        raise UserError("nothing to train: every parameter is frozen; use a lighter --freeze")
    return out


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """SGD (momentum 0.9, Nesterov) or AdamW over :func:`param_groups`."""
    groups = param_groups(model, settings)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=settings.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=settings.lr)


def lr_factor(step: int, total_steps: int, warmup_steps: int, settings: TrainSettings, steps_per_epoch: int) -> float:
    """Multiplier of the peak LR at optimizer step ``step`` (0-based).

    Linear warm-up over ``warmup_steps``, then cosine decay to 0 at ``total_steps``, or a
    drop by ``step_gamma`` every ``step_every`` epochs.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if settings.schedule == "step":
        return settings.step_gamma ** (step // (settings.step_every * steps_per_epoch))
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(optimizer: torch.optim.Optimizer, settings: TrainSettings, steps_per_epoch: int):
    """A per-optimizer-step :class:`~torch.optim.lr_scheduler.LambdaLR` for :func:`lr_factor`."""
    total = settings.epochs * steps_per_epoch
    warmup = max(1, round(settings.warmup * total)) if settings.warmup > 0 else 0
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, warmup, settings, steps_per_epoch)
    )


def check_precision(precision: str, device: torch.device) -> None:
    """16-bit floats train only on GPUs; bf16 works on CPU and recent GPUs."""
    if precision == "16" and device.type != "cuda":
        raise UserError(f"--precision 16 needs a CUDA GPU (device is {device}); use --precision bf16 or 32")


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """``torch.autocast`` for ``bf16``/``16``; nothing for ``32``."""
    if precision == "32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def make_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """Loss scaling for float16 on CUDA; a disabled scaler (a no-op) otherwise."""
    return torch.amp.GradScaler(device.type, enabled=precision == "16" and device.type == "cuda")
