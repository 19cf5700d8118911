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
from actcli.models.integrity import check_structure, seal, verify
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
    write_torch(path, seal(payload))


ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTOCOL = 0x80


def _kind_of_file(path: Path) -> str:
    """``empty``, ``torchscript`` (an exported TorchScript archive), ``zip`` (torch.save's format),
    ``pickle`` (torch's legacy format) or ``other``, from the first bytes and the zip's member names."""
    import zipfile

    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head:
        return "empty"
    if head == ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return "zip"
        return "torchscript" if any("/code/" in n or n.endswith("constants.pkl") for n in names) else "zip"
    return "pickle" if head[0] == PICKLE_PROTOCOL else "other"


def _is_onnx_export(path: Path) -> bool:
    from actcli.models.exported import is_exported

    return is_exported(path)


def load_file(path: Path) -> dict[str, Any]:
    """``torch.load`` with ``weights_only=True``; every failure is one accurate :class:`UserError` line."""
    if path.is_dir():
        raise UserError(f"weights {path} is a folder; pass a checkpoint file (a folder is read only as Hugging Face "
                        "weights by train --weights)")
    if not path.is_file():
        raise UserError(f"weights file {path} not found; pass an existing --weights PATH")
    kind = _kind_of_file(path)
    if kind == "empty":
        raise UserError(f"{path} is empty (0 bytes): an interrupted copy or write; use another checkpoint")
    if kind == "torchscript":
        raise UserError(f"{path} is an exported TorchScript model, not a checkpoint; exported files go to "
                        "`actcli test`, `predict` and `benchmark` (--weights), checkpoints to export/train")
    if kind == "other" and path.suffix.lower() == ".xml":
        raise UserError(f"{path} is an exported OpenVINO IR, not a checkpoint; exported files go to "
                        "`actcli test`, `predict` and `benchmark` (--weights), checkpoints to export/train")
    if kind == "other" and _is_onnx_export(path):
        raise UserError(f"{path} is an exported ONNX model, not a checkpoint; exported files go to "
                        "`actcli test`, `predict` and `benchmark` (--weights), checkpoints to export/train")
    if kind == "other":
        raise UserError(f"{path} is not a PyTorch checkpoint (neither a torch.save zip archive nor a pickle); "
                        "pass a best.pt / last.pt or published weights")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc):
            name = str(exc).split("Unsupported global:", 1)[1].strip().split()[1] if "GLOBAL" in str(exc) else ""
            raise UserError(f"refused to load {path}: it holds objects other than tensors and plain data "
                            f"({name or 'a Python class'}), which could run code; load only files you trust with "
                            "torch.load yourself") from None
        raise UserError(f"{path} is not a readable PyTorch checkpoint (damaged: its pickle data cannot be read); "
                        "use another checkpoint") from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError, IndexError) as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a readable PyTorch checkpoint (damaged or truncated: {reason}); "
                        "use another checkpoint") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a checkpoint (expected a dict, got {type(data).__name__})")
    return data


def load_checkpoint(path: Path, training: bool = False) -> dict[str, Any]:
    """An actcli checkpoint, checked once: the format, every part (:func:`check_structure`; with ``training``
    the state ``--resume`` needs), the digest and finite weights (:func:`verify`)."""
    data = load_file(path)
    if not is_actcli_checkpoint(data):
        raise UserError(
            f"{path} is not an actcli checkpoint (no 'format': '{FORMAT}'); "
            "use a best.pt or last.pt from outputs/runs/"
        )
    check_structure(data, path, training)
    verify(data, path)
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
    data = load_checkpoint(path)
    if data.get("kind") == "sequence":
        raise UserError(f"{path} is a {data['model']} sequence model over feature sequences, not a clip model: "
                        "`actcli test` scores it; predict, benchmark and export take clip models")
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
            check_structure(data, path)
            verify(data, path)
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

