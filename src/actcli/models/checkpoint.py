"""Checkpoints that describe themselves, and loading of starting weights.

An actcli checkpoint is a plain dict (loadable with ``weights_only=True``)::

    {"format": "actcli/1", "model": "x3d_xs", "clip": {"frames", "stride", "crop"},
     "convention": {"mean", "std", "resize", "layout"}, "model_config": {...},
     "classes": [...], "settings": {...}, "state_dict": {...}, "epoch": int, ...}

so ``test``, ``predict``, ``benchmark`` and ``export`` need only ``--weights``. ``convention`` is
how clips are normalised for the model (absent in checkpoints from before conventions:
pytorchvideo's); ``model_config`` the architecture overrides it was built with (``--model-config``).
"""

from __future__ import annotations

import pickle
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from actcli.data.video import ClipSpec
from actcli.errors import UserError
from actcli.fileio import write_torch
from actcli.models.convention import Convention
from actcli.models.families import family_module
from actcli.models.zoo import ActionModel, get_entry

FORMAT = "actcli/1"


def save_checkpoint(
    path: Path,
    model: ActionModel | dict[str, torch.Tensor],
    *,
    model_name: str,
    clip: ClipSpec,
    classes: list[str],
    settings: dict[str, Any],
    **extra: Any,
) -> None:
    """Write an actcli checkpoint atomically (a crash mid-write keeps the previous file).

    ``model`` is the model or its state dict (e.g. the EMA weights).
    """
    payload = {
        "format": FORMAT,
        "model": model_name,
        "clip": asdict(clip),
        "classes": list(classes),
        "settings": settings,
        "state_dict": model if isinstance(model, dict) else model.state_dict(),
        **extra,
    }
    write_torch(path, payload)


def load_file(path: Path) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``; errors become one-line :class:`UserError`."""
    if not path.is_file():
        raise UserError(f"weights file {path} not found; pass an existing --weights PATH")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).splitlines()[0]
        raise UserError(
            f"refused to load {path}: it holds objects other than tensors and plain data, "
            f"which could run code ({reason})"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise UserError(f"{path} is not a readable PyTorch checkpoint: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a checkpoint (expected a dict, got {type(data).__name__})")
    return data


def is_actcli_checkpoint(data: dict[str, Any]) -> bool:
    return data.get("format") == FORMAT


def clip_of(checkpoint: dict[str, Any]) -> ClipSpec:
    return ClipSpec(**checkpoint["clip"])


def convention_of(checkpoint: dict[str, Any]) -> Convention:
    """The input convention a checkpoint's model was trained with."""
    return Convention.from_dict(checkpoint.get("convention"))


def model_from_checkpoint(path: Path, dropout: float = 0.5) -> tuple[ActionModel, dict[str, Any]]:
    """Rebuild the model an actcli checkpoint was trained as and load its weights."""
    data = load_file(path)
    if not is_actcli_checkpoint(data):
        raise UserError(
            f"{path} is not an actcli checkpoint (no 'format': '{FORMAT}'); "
            "use a best.pt or last.pt from outputs/runs/"
        )
    from actcli.models.multimodal import build_any

    model = build_any(data["model"], clip_of(data), len(data["classes"]), dropout,
                      list(data.get("modalities", ["rgb"])), data.get("fusion", "late"), data.get("feature_dim"),
                      data.get("model_config") or {})
    load_state(model, data["state_dict"], path)
    return model, data


def load_state(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path | str) -> None:
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        parts = []
        if mismatched:
            k = mismatched[0]
            parts.append(f"shape of {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}")
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[0]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[0]}")
        raise UserError(f"weights {source} do not fit this model: {'; '.join(parts)}")
    module.load_state_dict(state)


def weights_path(model_name: str, weights: str) -> Path:
    """The local file or folder ``--weights`` names for model ``model_name`` (``kinetics`` and ``hf:``
    resolved by the model's family, downloading into its cache once)."""
    entry = get_entry(model_name)
    return family_module(entry).resolve(entry, weights)


def kinetics_weights_path(model_name: str) -> Path:
    """The cached published weights of a zoo model (``--weights kinetics``), downloaded once."""
    return weights_path(model_name, "kinetics")


def load_initial_weights(
    model: ActionModel, model_name: str, weights: str, classes: list[str], config: dict[str, Any] | None = None
) -> str:
    """Load ``weights`` (``kinetics``, ``hf:<repo>``, a file or a folder) into a freshly built model before training.

    Published weights in their publisher's format (pytorchvideo zoo files, torchvision state dicts,
    Hugging Face folders) fill the backbone and leave the new head random. An actcli checkpoint of
    the same classes fills the whole model; one trained on other classes (transfer learning) fills
    only the backbone.

    Returns a short description of what was loaded, for the report.
    """
    entry = get_entry(model_name)
    path = weights_path(model_name, weights)
    video_backbone = _video_backbone(model, path)
    if path.is_file():
        data = load_file(path)
        if is_actcli_checkpoint(data):
            if data["model"] != model_name:
                raise UserError(f"{path} holds a {data['model']} model, not {model_name}; pass --model {data['model']}")
            if list(data["classes"]) == list(classes):
                load_state(model, data["state_dict"], path)
                return f"actcli checkpoint {path}"
            prefix = "backbone."
            backbone_state = {k[len(prefix):]: v for k, v in data["state_dict"].items() if k.startswith(prefix)}
            load_state(video_backbone, backbone_state, path)
            return f"backbone from actcli checkpoint {path} (its {len(data['classes'])}-class head replaced)"
    elif not path.exists():
        raise UserError(f"weights {path} not found; pass an existing --weights PATH, kinetics or hf:<repo>")
    return family_module(entry).load_weights(entry, video_backbone, path, config or {})


def _video_backbone(model: torch.nn.Module, source: Path) -> torch.nn.Module:
    """The RGB backbone that starting weights fill: ``backbone``, or a multimodal model's rgb encoder."""
    if hasattr(model, "backbone"):
        return model.backbone
    encoders = getattr(model, "encoders", {})
    if "rgb" not in encoders:
        raise UserError(f"{source} holds video weights but --modalities has no rgb; drop --weights or add rgb")
    return encoders["rgb"]

