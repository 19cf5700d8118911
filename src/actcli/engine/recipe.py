"""The optimisation recipe: parameter groups, optimizer, LR schedule, mixed precision, gradient
checkpointing, and the recipe defaults of each model family.

Weight decay applies to weights of convolutions and linear layers only; biases and
normalisation parameters (1-d tensors) are not decayed, as in PySlowFast and timm. The new
classifier head can learn faster than the pretrained backbone (``head_lr_mult``), and with
``layer_decay`` below 1 every backbone block learns slower than the one after it (BEiT/VideoMAE).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from functools import partial

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from actcli.errors import UserError
from actcli.models.freeze import backbone_blocks, before_blocks
from actcli.settings import Settings, TrainSettings


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that map features to class scores, as ``model.head_parameters()`` states
    them (:class:`~actcli.models.zoo.ClassifierHead`, ActionModel, MultiModalModel); none for a
    module that states none."""
    stated = getattr(model, "head_parameters", None)
    return list(stated()) if callable(stated) else []


def video_backbones(model: nn.Module) -> list[nn.Module]:
    """The networks in front of the head: an ActionModel's ``backbone``, a multimodal model's
    encoders; none for a head trained alone (cached features)."""
    encoders = getattr(model, "encoders", None)
    if isinstance(encoders, nn.ModuleDict):
        return list(encoders.values())
    backbone = getattr(model, "backbone", None)
    return [backbone] if isinstance(backbone, nn.Module) else []


def layer_ids(model: nn.Module) -> dict[int, tuple[int, int]]:
    """``id(param) -> (layer, L)`` for every backbone parameter: with the backbone's ``L`` blocks
    (:func:`~actcli.models.freeze.backbone_blocks`), what runs before block 0
    (:func:`~actcli.models.freeze.before_blocks`) is layer 0, block ``i`` layer ``i + 1``, and what
    follows the last block (a final norm) layer ``L + 1``. A network without a separate stem has its
    stem as block 0. Parameters missing here (the head) count as layer ``L + 1`` too."""
    out: dict[int, tuple[int, int]] = {}
    for backbone in video_backbones(model):
        blocks = backbone_blocks(backbone)
        count = len(blocks)
        for _, module in before_blocks(backbone):
            for param in module.parameters():
                out.setdefault(id(param), (0, count))
        for i, (_, block) in enumerate(blocks):
            for param in block.parameters():
                out.setdefault(id(param), (i + 1, count))
        for param in backbone.parameters():
            out.setdefault(id(param), (count + 1, count))
    return out


def param_groups(model: nn.Module, settings: TrainSettings) -> list[dict]:
    """Parameter groups: (backbone | head) x (decayed | not decayed), and with ``layer_decay`` below 1
    one backbone pair per layer; empty ones dropped. Each group states its ``lr_scale`` (the layer
    decay factor, 1 without it).

    "Head" is decided by the module (:func:`head_parameters`), not by parameter names, so
    late-fusion heads, fusion weights and a head trained alone on cached features all get
    ``lr x head_lr_mult``.

    Layer-wise LR decay ``F`` (BEiT's and VideoMAE's fine-tuning, ``param_groups_lrd`` /
    ``LayerDecayValueAssigner`` in github.com/MCG-NJU/VideoMAE ``optim_factory.py`` and
    ``run_class_finetuning.py``: scales ``F ** (L + 1 - layer_id)``): with ``L`` backbone blocks,
    block ``i`` learns at ``lr x F^(L - i)``, what runs before block 0 at ``lr x F^(L + 1)``, and what
    follows the last block and the head at ``lr`` (the head then x ``head_lr_mult``), see
    :func:`layer_ids`. A multimodal model decays each encoder over its own blocks.
    """
    head = {id(p) for p in head_parameters(model)}
    layered = settings.layer_decay != 1.0
    layers = layer_ids(model) if layered else {}
    groups: dict[tuple[bool, int, int, bool], list[torch.nn.Parameter]] = {}
    for param in model.parameters():
        if not param.requires_grad:
            continue
        is_head = id(param) in head
        layer, count = (-1, 0) if is_head or id(param) not in layers else layers[id(param)]
        groups.setdefault((is_head, layer, count, param.ndim > 1), []).append(param)
    several = len({count for _, layer, count, _ in groups if layer >= 0}) > 1  # encoders of different depths
    out = []
    for key, params in sorted(groups.items()):
        is_head, layer, count, decay = key
        scale = settings.layer_decay ** (count + 1 - layer) if layer >= 0 else 1.0
        part = ("head" if is_head else "backbone" if layer < 0
                else f"layer_{layer}" + (f"_of_{count}" if several else ""))
        out.append({
            "params": params,
            "lr": settings.lr * scale * (settings.head_lr_mult if is_head else 1.0),
            "lr_scale": scale,
            "weight_decay": settings.weight_decay if decay else 0.0,
            "name": f"{part}/{'decay' if decay else 'no_decay'}",
        })
    if not out:
        raise UserError("nothing to train: every parameter is frozen; use a lighter --freeze")
    return out


def make_optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """SGD (momentum 0.9, Nesterov) or AdamW (betas 0.9, 0.999, eps 1e-8: torch's defaults, which
    VideoMAE's fine-tuning passes too) over :func:`param_groups`."""
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


# --- gradient checkpointing ---------------------------------------------------------------------------


@contextlib.contextmanager
def _statistics_kept(block: nn.Module) -> Iterator[None]:
    """Undo what a recomputed forward pass does to the block's BatchNorm running statistics (they
    were updated once already, in the first forward pass)."""
    norms = [m for m in block.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]
    saved = [(m, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, mean, var, count in saved:
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)


def _recompute_contexts(block: nn.Module) -> tuple[contextlib.AbstractContextManager, ...]:
    """``checkpoint``'s ``context_fn``: nothing around the forward pass, statistics kept around the recomputation."""
    return contextlib.nullcontext(), _statistics_kept(block)


def _checkpointed_forward(block: nn.Module, forward, *args, **kwargs):
    """``block``'s own ``forward`` under :func:`torch.utils.checkpoint.checkpoint` (non-reentrant, RNG
    state preserved so dropout and drop path draw the same masks) while it trains with gradients;
    plainly otherwise (eval, no_grad, a frozen block kept in eval mode)."""
    if not (block.training and torch.is_grad_enabled()):
        return forward(block, *args, **kwargs)
    return checkpoint(forward, block, *args, use_reentrant=False, context_fn=partial(_recompute_contexts, block),
                      **kwargs)


def checkpoint_blocks(backbone: nn.Module) -> int:
    """Make every block of ``backbone`` that has parameters (:func:`~actcli.models.freeze.backbone_blocks`)
    recompute its activations in the backward pass instead of storing them; returns how many.

    The block's ``forward`` is replaced on the instance by a ``partial`` (deep copies such as the EMA
    rebind it to the copy, as :func:`~actcli.models.freeze.keep_in_eval` does); parameter names and
    state dicts are unchanged. BatchNorm running statistics are restored after the recomputation,
    so they move exactly as without checkpointing.
    """
    done = 0
    for _, block in backbone_blocks(backbone):
        if "forward" in vars(block) or not any(True for _ in block.parameters()):
            continue  # already wrapped, or nothing to train (pooling)
        block.forward = partial(_checkpointed_forward, block, type(block).forward)  # type: ignore[method-assign]
        done += 1
    return done


def enable_gradient_checkpointing(model: nn.Module, model_name: str) -> int:
    """Gradient checkpointing for the backbone(s) of ``model`` (zoo model ``model_name``): the family's
    own ``enable_gradient_checkpointing(backbone)`` when its module has one (Hugging Face models: the
    library's), else :func:`checkpoint_blocks`. Returns the number of blocks wrapped by actcli."""
    from actcli.models.families import family_module
    from actcli.models.zoo import get_entry

    hook = getattr(family_module(get_entry(model_name)), "enable_gradient_checkpointing", None)
    done = 0
    encoders = getattr(model, "encoders", None)
    video = ([encoders[m] for m in ("rgb", "motion") if m in encoders] if isinstance(encoders, nn.ModuleDict)
             else video_backbones(model))
    for backbone in video:
        if hook is not None:
            hook(backbone)
        else:
            done += checkpoint_blocks(backbone)
    return done


# --- recipe defaults per family ---------------------------------------------------------------------------

TRANSFORMER_BASE_LR = 1e-3
"""The transformer recipe's peak LR per 256 clips of global batch (linear scaling rule)."""

RECIPES: dict[str, dict[str, object]] = {
    # Today's defaults (settings.py), for the CNNs of every family and all of pytorchvideo's models.
    "cnn": {},
    # VideoMAE fine-tuning (github.com/MCG-NJU/VideoMAE run_class_finetuning.py, argparse defaults): AdamW
    # with betas (0.9, 0.999), lr 1e-3 x batch / 256, weight decay 0.05, layer decay 0.75, drop path 0.1,
    # mixup 0.8, cutmix 1.0, label smoothing 0.1, repeated augmentation 2 (--num_sample), RandAugment
    # (--aa rand-m7-n4-mstd0.5-inc1; here torchvision's RandAugment). mmaction2's MViT / Video Swin
    # configs use the same AdamW, weight decay, mixup, cutmix and smoothing.
    "transformer": {
        "train.optimizer": "adamw",
        "train.lr": TRANSFORMER_BASE_LR,  # x global batch / 256, see family_recipe
        "train.weight_decay": 0.05,
        "train.layer_decay": 0.75,
        "model.drop_path": 0.1,
        "train.mixup": 0.8,
        "train.cutmix": 1.0,
        "train.label_smoothing": 0.1,
        "train.repeated_aug": 2,
        "data.auto_augment": "randaugment",
    },
}
"""Recipe defaults by kind of network: flat setting keys -> value, applied where the user set nothing."""

MIXING = ("train.mixup", "train.cutmix")
CLIP_AUGMENTATION = ("train.repeated_aug", "data.auto_augment")


def recipe_name(entry) -> str:
    """``transformer`` or ``cnn`` for a zoo entry: ``entry.options["recipe"]`` when the family states it;
    else every Hugging Face model and torchvision's MViT and Video Swin are transformers, the rest
    (pytorchvideo's models, its MViT included, and torchvision's CNNs) keep today's defaults."""
    stated = entry.options.get("recipe")
    if stated is not None:
        return str(stated)
    if entry.family == "huggingface" or entry.family == "torchvision" and entry.name.startswith(("mvit", "swin3d")):
        return "transformer"
    return "cnn"


def mixing_refusal(settings: Settings) -> str | None:
    """Why ``train.mixup`` / ``train.cutmix`` cannot apply to this run (None: they can)."""
    from actcli.data.registry import dataset_info

    if dataset_info(settings.data.dataset).name == "ek100":
        return "EK100 trains two heads (verb and noun) on hard labels"
    if settings.data.modalities != "rgb":
        return "they blend RGB clips, not several modalities"
    if settings.model.freeze == "backbone" and not settings.data.augment:
        return "the head trains on cached backbone features [B, D] (--freeze backbone --no-augment), not clips"
    return None


def family_recipe(settings: Settings, sources: Mapping[str, str], world_size: int = 1) -> tuple[Settings, dict]:
    """``settings`` with the recipe defaults of ``model.name``'s family (:data:`RECIPES`,
    :func:`recipe_name`) filled in wherever ``sources`` says the value is still the default, and the
    values that changed. The transformer LR scales with the global batch (``batch_size x accumulate x
    world_size``) over 256. Augmentation defaults are skipped where they cannot apply (mixing:
    :func:`mixing_refusal`; repeated augmentation and auto-augment: ``--no-augment``), and drop path
    for entries with ``options["drop_path"] = False``.

    The transformer recipe is a *fine-tuning* recipe (VideoMAE's, for pretrained weights): a model
    trained from random initialisation (no ``--weights``) keeps today's defaults instead. Measured on
    the synthetic dataset, a narrow ``videomae_small`` from scratch reached 0.958 test top-1 with AdamW
    at 1e-3 (weight decay 0.05, label smoothing 0.1) and stayed at chance (0.125) with the fine-tuning
    recipe (docs/models.md)."""
    from actcli.models.zoo import get_entry

    entry = get_entry(settings.model.name)
    recipe = dict(RECIPES[recipe_name(entry)] if settings.model.weights else RECIPES["cnn"])
    if "train.lr" in recipe:
        train = settings.train
        recipe["train.lr"] = float(recipe["train.lr"]) * train.batch_size * train.accumulate * world_size / 256
    if mixing_refusal(settings) is not None:
        for key in MIXING:
            recipe.pop(key, None)
    if not settings.data.augment:
        for key in CLIP_AUGMENTATION:
            recipe.pop(key, None)
    if entry.options.get("drop_path") is False:
        recipe.pop("model.drop_path", None)
    return fill_defaults(settings, sources, recipe)


def fill_defaults(settings: Settings, sources: Mapping[str, str], values: Mapping[str, object]
                  ) -> tuple[Settings, dict]:
    """``settings`` with ``values`` (``"section.key"`` -> value) wherever ``sources`` says the user left the
    default, and the values filled in."""
    applied = {key: value for key, value in values.items() if sources.get(key, "default") == "default"}
    if not applied:
        return settings, {}
    tree = settings.model_dump()
    for key, value in applied.items():
        section, name = key.split(".")
        tree[section][name] = value
    return Settings.model_validate(tree), applied
