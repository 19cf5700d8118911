"""Checkpoints that prove they are whole: a digest of their tensors, finite weights, a checked structure.

A checkpoint with a few flipped bytes inside a tensor still unpickles; without a digest it loads
and predicts ``nan`` or garbage. :func:`seal` writes a SHA-256 of every tensor (name, dtype, shape
and bytes, in a fixed order) plus the model name, clip and classes into the payload;
:func:`verify` recomputes it on load, refuses non-finite weights, and :func:`check_structure`
validates the parts each command needs (one place, one wording). Files written before digests
existed load without the digest check.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from actcli.errors import UserError

DIGEST_KEY = "digest"
DESCRIBED = ("model", "clip", "classes")  # metadata covered by the digest besides the tensors


def _tensors(value: Any, path: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor inside nested dicts, lists and tuples, with its path, in a fixed order."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            yield from _tensors(value[key], f"{path}/{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _tensors(item, f"{path}/{i}")


def tensor_digest(payload: dict[str, Any]) -> str:
    """SHA-256 over the payload's tensors (path, dtype, shape, bytes) and its ``model``, ``clip``, ``classes``."""
    digest = hashlib.sha256()
    digest.update(json.dumps({k: payload.get(k) for k in DESCRIBED}, sort_keys=True, default=str).encode())
    for path, tensor in _tensors({k: v for k, v in payload.items() if k != DIGEST_KEY}):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{path}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        if flat.numel():
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's tensors alone (an export's weights: TorchScript ``state_dict()``, ONNX
    initializers as tensors)."""
    return tensor_digest({"state_dict": dict(state)})


def seal(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with its :func:`tensor_digest` under ``"digest"``."""
    return {**payload, DIGEST_KEY: tensor_digest(payload)}


def first_nonfinite(state: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor of ``state`` holding a NaN or an infinity, or None."""
    for name, tensor in state.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return name
    return None


def verify(data: dict[str, Any], path: Path) -> None:
    """A :class:`UserError` naming ``path`` if its digest does not match its content or its weights are not
    finite. Files without a digest (written by older versions) skip the first check."""
    stored = data.get(DIGEST_KEY)
    if stored is not None and stored != tensor_digest(data):
        raise UserError(f"{path} is damaged: its content does not match the digest written with it (bytes changed "
                        "on disk or in a copy); use another checkpoint, e.g. the run's other one, or retrain")
    state = data.get("state_dict")
    bad = first_nonfinite(state) if isinstance(state, dict) else None
    if bad is not None:
        raise UserError(f"{path} holds non-finite weights (NaN or infinity in {bad}); use another checkpoint "
                        "(training may have diverged: lower --lr)")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_structure(data: dict[str, Any], path: Path, training: bool = False) -> None:
    """One :class:`UserError` line saying which part of an actcli checkpoint is missing or malformed:
    ``model`` (a name), ``classes`` (names), ``clip`` (positive frames, stride, crop), ``state_dict``
    (tensors), and with ``training`` the training state ``last.pt`` carries for ``--resume``."""
    problems: list[str] = []
    if not isinstance(data.get("model"), str) or not data.get("model"):
        problems.append("'model' (the model name)")
    classes = data.get("classes")
    if not isinstance(classes, list | tuple) or not classes or not all(isinstance(c, str) for c in classes):
        problems.append("'classes' (the class names)")
    clip = data.get("clip")
    if not isinstance(clip, dict) or not all(_is_int(clip.get(k)) and clip[k] >= 1 for k in ("frames", "stride",
                                                                                               "crop")):
        problems.append("'clip' (frames, stride and crop, each at least 1)")
    state = data.get("state_dict")
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        problems.append("'state_dict' (the weights)")
    if training:
        if not isinstance(data.get("settings"), dict):
            problems.append("'settings' (the run's settings)")
        parts = data.get("training")
        needed = ("model", "optimizer", "scheduler", "scaler", "state", "rng")
        if not isinstance(parts, dict) or any(k not in parts for k in needed):
            have = sorted(parts) if isinstance(parts, dict) else []
            problems.append(f"'training' (the state --resume needs: {', '.join(needed)}; found "
                            f"{', '.join(have) or 'none'})")
    if problems:
        raise UserError(f"{path} is not a complete actcli checkpoint: missing or malformed {'; '.join(problems)}; "
                        "use a best.pt or last.pt written by `actcli train`")


