"""Partial freezing for fine-tuning: ``none``, ``backbone``, ``bn`` or ``until:<block>``.

Frozen parameters get ``requires_grad = False`` and the frozen modules are listed in
``model.keep_eval`` so :meth:`ActionModel.train` keeps them in eval mode: BatchNorm
statistics stay as loaded and dropout inside them stays off.
"""

from __future__ import annotations

from torch import nn

from actcli.errors import UserError


def backbone_blocks(backbone: nn.Module) -> list[tuple[str, nn.Module]]:
    """The backbone's blocks in forward order, named ``blocks.<i>`` (pytorchvideo ``Net``)
    or by their attribute names for other networks."""
    blocks = getattr(backbone, "blocks", None)
    if isinstance(blocks, nn.ModuleList | nn.Sequential):
        return [(f"blocks.{i}", block) for i, block in enumerate(blocks)]
    return list(backbone.named_children())


def _find_block(blocks: list[tuple[str, nn.Module]], wanted: str) -> int:
    names = [name for name, _ in blocks]
    for i, name in enumerate(names):
        if wanted in (name, name.rsplit(".", 1)[-1]):
            return i
    if wanted.lstrip("-").isdigit() and -len(blocks) <= int(wanted) < len(blocks):
        return int(wanted) % len(blocks)
    raise UserError(f"--freeze until:{wanted} names no block; blocks are {', '.join(names)} (or 0..{len(names) - 1})")


def _freeze(modules: list[nn.Module]) -> list[nn.Module]:
    for module in modules:
        module.requires_grad_(False)
        module.eval()
    return modules


def apply_freeze(model: nn.Module, mode: str) -> list[str]:
    """Freeze part of an :class:`~actcli.models.zoo.ActionModel`; returns what was frozen.

    Args:
        mode: ``none``; ``backbone`` (everything but the new head); ``bn`` (every BatchNorm
            layer, PySlowFast's "frozen BN"); ``until:<block>`` (backbone blocks from the
            first up to and including ``<block>``, by name such as ``blocks.3`` or index).
    """
    if mode == "none":
        frozen: list[nn.Module] = []
        names: list[str] = []
    elif mode == "backbone":
        frozen, names = [model.backbone], ["backbone"]
    elif mode == "bn":
        frozen = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        names = [f"{len(frozen)} BatchNorm layers"]
    elif mode.startswith("until:"):
        blocks = backbone_blocks(model.backbone)
        last = _find_block(blocks, mode.split(":", 1)[1])
        frozen = [block for _, block in blocks[: last + 1]]
        names = [name for name, _ in blocks[: last + 1]]
    else:
        raise UserError(f"unknown --freeze {mode!r}; use none, backbone, bn or until:<block>")
    model.keep_eval = _freeze(frozen)
    return names
