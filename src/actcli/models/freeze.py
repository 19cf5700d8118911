"""Partial freezing for fine-tuning: ``none``, ``backbone``, ``bn`` or ``until:<block>``.

Frozen modules get ``requires_grad = False`` and stay in eval mode through every later
``train()`` call, whichever module it is called on (:func:`keep_in_eval`): BatchNorm
statistics stay as loaded and dropout inside them stays off. This works for any
``nn.Module``: :class:`~actcli.models.zoo.ActionModel`,
:class:`~actcli.models.multimodal.MultiModalModel` and each of its encoders.
"""

from __future__ import annotations

from functools import partial

from torch import nn

from actcli.errors import UserError


def _train_frozen(module: nn.Module, mode: bool = True) -> nn.Module:
    """``nn.Module.train`` of a frozen module: eval mode, whatever ``mode`` asks for."""
    del mode
    return nn.Module.train(module, False)


def keep_in_eval(module: nn.Module) -> nn.Module:
    """Freeze ``module`` in place: no gradients, and eval mode now and after every ``train()``.

    ``nn.Module.train`` calls ``train`` on each child, so replacing the frozen module's own
    ``train`` holds for calls on any module above it (the model, an encoder, DDP, EMA). A
    ``partial`` rather than a bound method, so deep copies (EMA, the inference copy) and
    pickles keep it, bound to the copy.
    """
    module.requires_grad_(False)
    module.train = partial(_train_frozen, module)  # type: ignore[method-assign]
    module.eval()
    return module


def backbone_blocks(backbone: nn.Module) -> list[tuple[str, nn.Module]]:
    """The backbone's blocks in forward order, named ``blocks.<i>`` (pytorchvideo ``Net``)
    or by their attribute names for other networks."""
    blocks = getattr(backbone, "blocks", None)
    if isinstance(blocks, nn.ModuleList | nn.Sequential):
        return [(f"blocks.{i}", block) for i, block in enumerate(blocks)]
    return list(backbone.named_children())


def before_blocks(backbone: nn.Module) -> list[tuple[str, nn.Module]]:
    """The backbone's children registered before its ``blocks`` list: what runs in front of
    block 0 (MViT: ``patch_embed``, ``cls_positional_encoding`` with the cls token); none for
    networks that are only ``blocks`` (pytorchvideo ``Net``) or have no ``blocks`` list. A backbone
    that wraps another library's network says it itself with a ``before_blocks()`` method."""
    if callable(getattr(backbone, "before_blocks", None)):
        return list(backbone.before_blocks())
    if not isinstance(getattr(backbone, "blocks", None), nn.ModuleList | nn.Sequential):
        return []
    children = list(backbone.named_children())
    names = [name for name, _ in children]
    return children[: names.index("blocks")]


def _find_block(blocks: list[tuple[str, nn.Module]], wanted: str) -> int:
    names = [name for name, _ in blocks]
    for i, name in enumerate(names):
        if wanted in (name, name.rsplit(".", 1)[-1]):
            return i
    if wanted.lstrip("-").isdigit() and -len(blocks) <= int(wanted) < len(blocks):
        return int(wanted) % len(blocks)
    raise UserError(f"--freeze until:{wanted} names no block; blocks are {', '.join(names)} (or 0..{len(names) - 1})")


def _backbones(model: nn.Module) -> dict[str, nn.Module]:
    """Everything that is not the head: ``backbone`` (ActionModel) or each modality's encoder."""
    if isinstance(getattr(model, "encoders", None), nn.ModuleDict):
        return {f"encoders.{name}": encoder for name, encoder in model.encoders.items()}
    return {"backbone": model.backbone}


def apply_freeze(model: nn.Module, mode: str) -> list[str]:
    """Freeze part of an :class:`~actcli.models.zoo.ActionModel` or
    :class:`~actcli.models.multimodal.MultiModalModel`; returns what was frozen.

    Args:
        mode: ``none``; ``backbone`` (everything but the new head: the backbone, or every
            modality's encoder); ``bn`` (every BatchNorm layer, PySlowFast's "frozen BN");
            ``until:<block>`` (ActionModel: backbone blocks from the first up to and including
            ``<block>``, by name such as ``blocks.3`` or index, and every backbone part that
            runs before block 0, see :func:`before_blocks`).
    """
    if mode == "none":
        frozen: list[tuple[str, nn.Module]] = []
    elif mode == "backbone":
        frozen = list(_backbones(model).items())
    elif mode == "bn":
        frozen = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    elif mode.startswith("until:"):
        backbone = getattr(model, "backbone", None)
        if backbone is None:
            raise UserError(f"--freeze {mode} applies to single-modality models; use none, backbone or bn")
        blocks = backbone_blocks(backbone)
        last = _find_block(blocks, mode.split(":", 1)[1])
        frozen = before_blocks(backbone) + blocks[: last + 1]
    else:
        raise UserError(f"unknown --freeze {mode!r}; use none, backbone, bn or until:<block>")
    for _, module in frozen:
        keep_in_eval(module)
    if mode == "bn":
        return [f"{len(frozen)} BatchNorm layers"]
    return [name for name, _ in frozen]
