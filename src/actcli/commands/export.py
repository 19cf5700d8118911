"""``actcli export``: a checkpoint to a TorchScript or ONNX file, verified against PyTorch."""

from __future__ import annotations

from pathlib import Path

import torch

from actcli import console as ui
from actcli.errors import UserError
from actcli.fileio import atomic_path
from actcli.models.checkpoint import clip_of, model_from_checkpoint
from actcli.models.export import (
    FORMATS,
    ExportMetadata,
    check_format,
    export_model,
)
from actcli.models.exported import load_exported, max_logit_difference
from actcli.runs import latest_checkpoint
from actcli.settings import Settings

TOLERANCE = 1e-4
"""Largest max-abs logit difference between the checkpoint and its export that passes."""
VERIFY_BATCH = 2
"""Clips in the verification batch (more than one, so the dynamic batch dimension is checked)."""


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def export(settings: Settings, weights: Path | None, experiment: str | None, fmt: str, out: Path | None) -> Path:
    """Export ``weights`` (default: best.pt of the latest run) to ``fmt``; returns the written file.

    The file is only put in place after the exported model, run on a random batch, matched
    the PyTorch model's logits to within :data:`TOLERANCE`.
    """
    fmt = check_format(fmt)
    weights = weights or latest_checkpoint(settings.paths.outputs, experiment)
    model, checkpoint = model_from_checkpoint(weights)
    model.eval()
    spec = clip_of(checkpoint)
    out = out or weights.with_suffix(FORMATS[fmt])
    if out.exists() and (out.is_dir() or out.resolve() == weights.resolve()):
        raise UserError(f"--out {out} is {'a folder' if out.is_dir() else 'the checkpoint itself'}; "
                        f"pass a file name such as {weights.with_suffix(FORMATS[fmt]).name}")
    metadata = ExportMetadata.from_checkpoint(checkpoint, weights)
    example = torch.zeros(1, 3, spec.frames, spec.crop, spec.crop)
    ui.console.print(f"exporting {metadata.model_name} ({len(metadata.classes)} classes, clips {spec}) "
                     f"from {weights} to {fmt}", soft_wrap=True, highlight=False, markup=False)
    with atomic_path(out) as staging:
        export_model(model, example, staging, metadata, fmt)
        exported = load_exported(staging)
        try:
            difference = max_logit_difference(model, exported, batch=VERIFY_BATCH)
        except Exception as exc:  # noqa: BLE001 - onnxruntime and TorchScript raise their own types
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"the {fmt} export of {weights} fails on a batch of {VERIFY_BATCH} clips ({reason}); "
                "nothing written; try the other --format"
            ) from None
        if not difference <= TOLERANCE:  # also catches NaN
            raise UserError(
                f"the {fmt} export of {weights} does not match PyTorch (max logit difference {difference:.2e} "
                f"> {TOLERANCE:.0e}); nothing written to {out}"
            )
    plain = {"soft_wrap": True, "highlight": False, "markup": False}
    ui.console.print(f"exported: {out} ({_size(out)}, {exported.metadata.exporter})", **plain)
    ui.console.print(f"verified: max |logit difference| vs PyTorch {difference:.2e} on {VERIFY_BATCH} random clips "
                     f"(tolerance {TOLERANCE:.0e})", **plain)
    return out
