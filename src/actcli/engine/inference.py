"""The model as ``test``, ``predict`` and ``benchmark`` run it: a faster copy, same predictions.

:func:`prepare_for_inference` stacks these steps, each measured on this project's 2-core
Xeon (X3D-XS, native clip, batch 2; docs/performance.md):

* pytorchvideo's ``Swish`` (a Python autograd.Function) becomes ``nn.SiLU`` (one fused
  kernel, same formula);
* eval-mode BatchNorm is folded into the preceding convolution (``torch.fx`` fusion; models
  ``torch.fx`` cannot trace, SlowFast and MViT, keep their BatchNorm; networks without BatchNorm,
  the Hugging Face transformers, skip the step);
* channels-last-3d memory format on CPU;
* precision: ``auto`` picks bf16 where the hardware computes it natively (CPUs with AMX or
  AVX512-BF16, CUDA GPUs with bf16) and fp32 elsewhere. bf16 runs under autocast with the
  3D convolution and linear weights (MViT's attention and MLP: nearly all its compute) cast
  once, ahead of time; only the final classifier (the linear layer of every
  :class:`~actcli.models.zoo.ClassifierHead`) stays fp32, so scores are not rounded into
  ties. The steps then name ``bfloat16_autocast`` and ``fp32_classifier``. ``32`` keeps
  fp32 throughout.

In fp32 the outputs match the original model to float rounding (tested for every zoo model);
bf16 gave the same top-1 as fp32 on the demo's test and train splits.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from actcli.engine.recipe import autocast
from actcli.errors import UserError
from actcli.models.zoo import ClassifierHead
from actcli.pipeline import channels_last_3d

INFERENCE_PRECISIONS = ("auto", "32", "bf16", "16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bf16 in hardware (so bf16 autocast is faster, not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:  # private helpers, but the only way torch exposes these CPU features
            return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
        except AttributeError:
            return False
    return False


def inference_precision(requested: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where :func:`native_bf16`, else ``32``; ``16`` needs CUDA."""
    if requested not in INFERENCE_PRECISIONS:
        raise UserError(f"unknown precision {requested!r}; choose one of {', '.join(INFERENCE_PRECISIONS)}")
    if requested == "auto":
        return "bf16" if native_bf16(device) else "32"
    if requested == "16" and device.type != "cuda":
        raise UserError(f"--precision 16 needs a CUDA GPU (device is {device}); use --precision bf16 or 32")
    return requested


class AutocastModel(torch.nn.Module):
    """``model`` run under autocast at ``precision``; returns ``float32`` logits ``[B, K]``."""

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str) -> None:
        super().__init__()
        self.model, self.device, self.precision = model, device, precision

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            return self.model(clips).float()


class Fp32Linear(nn.Module):
    """A linear layer that stays in fp32 under autocast: classifier scores are not rounded to
    bf16 (which would tie many of them and change top-5 rankings)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.linear = linear.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.linear(x.float())


def classifier_linears(model: nn.Module) -> list[str]:
    """Qualified names of the final classifiers of ``model``: the ``nn.Linear`` layers inside
    :class:`~actcli.models.zoo.ClassifierHead` modules (one per head)."""
    return [f"{name}.{child_name}" if name else child_name
            for name, module in model.named_modules() if isinstance(module, ClassifierHead)
            for child_name, child in module.named_children() if isinstance(child, nn.Linear)]


def classifier_in_fp32(model: nn.Module, names: list[str]) -> None:
    """Wrap the ``nn.Linear`` layers called ``names`` (:func:`classifier_linears`) in
    :class:`Fp32Linear`, in place; every other layer computes at the autocast precision."""
    for name in names:
        parent_name, _, child_name = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child_name, Fp32Linear(getattr(parent, child_name)))


def swish_to_silu(model: nn.Module) -> None:
    """Replace pytorchvideo's ``Swish`` modules by ``nn.SiLU`` in place (same ``x * sigmoid(x)``)."""
    from pytorchvideo.layers.swish import Swish

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Swish):
                setattr(parent, name, nn.SiLU())


def fold_batch_norms(model: nn.Module) -> nn.Module | None:
    """``model`` (eval mode) with every conv -> BatchNorm pair folded into one conv, or None
    when ``torch.fx`` cannot trace it."""
    from torch.fx.experimental.optimization import fuse

    try:
        return fuse(model)
    except Exception:  # torch.fx raises many kinds (TraceError, RuntimeError, TypeError) on untraceable code
        return None


def has_batch_norm(model: nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer to fold (transformers have none: nothing to trace)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def prepare_for_inference(
    model: nn.Module, device: torch.device, precision: str
) -> tuple[nn.Module, list[str]]:
    """A faster copy of ``model`` for inference on ``device`` at ``precision`` (module docstring).

    Returns the copy (input ``float [B, C, T, H, W]``, output ``float32 [B, K]``) and the
    names of the steps applied, for reports.
    """
    net = copy.deepcopy(model).cpu().eval().requires_grad_(False)
    classifiers = classifier_linears(net)  # by name: BatchNorm folding (torch.fx) keeps names, not classes
    swish_to_silu(net)
    steps = ["silu"]
    folded = fold_batch_norms(net) if has_batch_norm(net) else None
    if folded is not None:
        net = folded
        steps.append("conv_bn_folded")
    net = net.to(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed clip shapes: let cuDNN pick its fastest kernels
        steps.append("cudnn_benchmark")
    if device.type == "cpu":
        net = channels_last_3d(net)
        steps.append("channels_last_3d")
    if precision != "32":
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        classifier_in_fp32(net, classifiers)
        fp32 = {id(m.linear) for m in net.modules() if isinstance(m, Fp32Linear)}
        for module in net.modules():
            if isinstance(module, nn.Conv3d | nn.Linear) and id(module) not in fp32:
                module.to(dtype)  # cast once here, not at every call under autocast
        net = AutocastModel(net, device, precision)
        steps.append(f"{dtype}".replace("torch.", "") + "_autocast")
        if classifiers:
            steps.append("fp32_classifier")
    return net, steps
