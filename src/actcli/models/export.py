"""Exported models: TorchScript and ONNX files that carry their classes and clip spec.

An export is one self-contained file that runs without actcli's model code:

* TorchScript (``.ts``): ``torch.jit.trace`` of the model in eval mode, metadata in the
  archive's extra file ``actcli.json`` (``torch.jit.load(path, _extra_files=...)``);
* ONNX (``.onnx``): the ``torch.export``-based exporter (``dynamo=True``, needs
  ``onnxscript``), falling back to the legacy TorchScript-based one if it fails; metadata
  as JSON in the model's ``metadata_props`` under the key ``actcli``.

Both take ``float [B, 3, T, H, W]`` clips (``T`` = clip frames, ``H`` = ``W`` = crop,
normalised as :func:`actcli.data.transforms.eval_transform` does) with a dynamic batch
dimension and return logits ``[B, num_classes]``. :func:`load_exported` opens either kind
as an :class:`ExportedModel` (ONNX runs through onnxruntime's CPU provider).
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

import actcli
from actcli.data.video import ClipSpec
from actcli.errors import UserError
from actcli.fileio import atomic_path
from actcli.models.checkpoint import FORMAT as CHECKPOINT_FORMAT
from actcli.models.convention import PYTORCHVIDEO, Convention
from actcli.models.integrity import state_digest

EXPORT_FORMAT = "actcli-export/1"
FORMATS: dict[str, str] = {"torchscript": ".ts", "onnx": ".onnx", "openvino": ".xml"}
"""Export format -> default file suffix."""
METADATA_KEY = "actcli"
"""ONNX ``metadata_props`` key holding the metadata JSON."""
EXTRA_FILE = "actcli.json"
"""TorchScript extra file holding the metadata JSON."""
INPUT_NAME, OUTPUT_NAME = "clips", "logits"
ONNX_LEGACY_OPSET = 17

ExportFormat = Literal["torchscript", "onnx", "openvino"]
OnnxExporter = Literal["auto", "dynamo", "legacy"]


@dataclass(frozen=True)
class ExportMetadata:
    """What an exported file says about itself (stored as JSON inside the file)."""

    model_name: str
    clip: ClipSpec
    classes: tuple[str, ...]
    format: str = EXPORT_FORMAT
    convention: Convention = PYTORCHVIDEO
    weights_digest: str = ""  # SHA-256 of the exported weights (integrity.state_digest), checked on load
    exporter: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any], source: Path | None = None) -> ExportMetadata:
        """Metadata of an actcli checkpoint dict (as returned by ``model_from_checkpoint``)."""
        extra: dict[str, Any] = {"checkpoint_format": checkpoint.get("format", CHECKPOINT_FORMAT)}
        if source is not None:
            extra["source"] = str(source)
        if "epoch" in checkpoint:
            extra["epoch"] = checkpoint["epoch"]
        return cls(checkpoint["model"], ClipSpec(**checkpoint["clip"]), tuple(checkpoint["classes"]), extra=extra,
                   convention=Convention.from_dict(checkpoint.get("convention")))

    def to_json(self) -> str:
        data = {
            "format": self.format,
            "model": self.model_name,
            "clip": asdict(self.clip),
            "classes": list(self.classes),
            "exporter": self.exporter,
            "weights_digest": self.weights_digest,
            "actcli": actcli.__version__,
            "torch": torch.__version__.split("+")[0],
            "input": {
                "name": INPUT_NAME, "layout": "B,C,T,H,W", "dtype": "float32",
                "shape": [None, 3, self.clip.frames, self.clip.crop, self.clip.crop],
                "preprocessing": f"RGB / 255, short side resized to {self.convention.short_side(self.clip.crop)}, "
                                 f"centre crop {self.clip.crop}x{self.clip.crop}, then (x - mean) / std",
                "mean": list(self.convention.mean), "std": list(self.convention.std),
                "resize": self.convention.resize, "network_layout": self.convention.layout,
            },
            "output": {"name": OUTPUT_NAME, "shape": [None, len(self.classes)], "meaning": "logits"},
        }
        for key, value in self.extra.items():  # provenance (source, epoch); never overrides the above
            data.setdefault(key, value)
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | bytes, source: Path) -> ExportMetadata:
        """Parse embedded metadata; anything malformed is a one-line :class:`UserError`."""
        try:
            data = json.loads(text)
            if data.get("format") != EXPORT_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {EXPORT_FORMAT!r}")
            known = {"format", "model", "clip", "classes", "exporter", "weights_digest"}
            given = data.get("input", {})
            convention = (Convention(tuple(given["mean"]), tuple(given["std"]), float(given.get("resize", 1.0)),
                                     str(given.get("network_layout", "BCTHW"))) if "mean" in given else PYTORCHVIDEO)
            return cls(
                model_name=str(data["model"]),
                clip=ClipSpec(**{k: int(data["clip"][k]) for k in ("frames", "stride", "crop")}),
                classes=tuple(str(c) for c in data["classes"]),
                format=data["format"],
                exporter=str(data.get("exporter", "")),
                convention=convention,
                weights_digest=str(data.get("weights_digest", "")),
                extra={k: v for k, v in data.items() if k not in known},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{source} has unreadable actcli metadata ({exc}); export it again") from None


# ---------------------------------------------------------------------------- writing


class _Swish(nn.Module):
    """``x * sigmoid(x)`` as plain tensor ops (pytorchvideo's Swish is an autograd.Function,
    which ``torch.jit.trace`` records as a Python call that cannot be saved)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def _inference_copy(model: nn.Module) -> nn.Module:
    """A CPU, eval-mode, gradient-free copy of ``model`` with export-friendly activations."""
    from pytorchvideo.layers.swish import Swish

    net = copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format).eval()
    net.requires_grad_(False)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Swish):
                setattr(parent, name, _Swish())
    return net


@contextmanager
def quiet_warnings() -> Iterator[None]:
    """Hide torch's deprecation and tracer chatter; the export is verified numerically instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield


def _check_example(example: torch.Tensor, metadata: ExportMetadata) -> torch.Tensor:
    clip = metadata.clip
    expected = (3, clip.frames, clip.crop, clip.crop)
    if example.dim() != 5 or tuple(example.shape[1:]) != expected:
        raise ValueError(f"example input must be [B, {', '.join(map(str, expected))}], got {list(example.shape)}")
    return example.detach().float().cpu().contiguous()


def export_torchscript(model: nn.Module, example: torch.Tensor, path: Path, metadata: ExportMetadata) -> Path:
    """Trace ``model`` (eval mode) on ``example`` and write it atomically with metadata to ``path``."""
    example = _check_example(example, metadata)
    net = _inference_copy(model)
    metadata = replace(metadata, exporter=f"torch.jit.trace (torch {torch.__version__.split('+')[0]})")
    with quiet_warnings(), torch.no_grad():
        traced = torch.jit.trace(net, (example,), check_trace=False)
        metadata = replace(metadata, weights_digest=state_digest(traced.state_dict()))
        with atomic_path(Path(path)) as tmp:
            torch.jit.save(traced, str(tmp), _extra_files={EXTRA_FILE: metadata.to_json()})
    return Path(path)


def _onnx_dynamo(net: nn.Module, example: torch.Tensor) -> Any:
    if example.shape[0] == 1:  # torch.export specialises size-1 dimensions: a batch of 1 can fix the batch
        example = example.expand(2, *example.shape[1:]).contiguous()  # (TimeSformer did, silently)
    program = torch.onnx.export(
        net, (example,), dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False, optimize=True,
        verbose=False, report=False,
    )
    return program.model_proto


def _onnx_legacy(net: nn.Module, example: torch.Tensor) -> Any:
    import onnx

    buffer = io.BytesIO()
    torch.onnx.export(
        net, (example,), buffer, dynamo=False, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, opset_version=ONNX_LEGACY_OPSET,
        do_constant_folding=True,
    )
    return onnx.load_from_string(buffer.getvalue())


def export_onnx(
    model: nn.Module, example: torch.Tensor, path: Path, metadata: ExportMetadata, exporter: OnnxExporter = "auto"
) -> Path:
    """Export ``model`` (eval mode) to ONNX with a dynamic batch dimension, atomically, with metadata.

    ``exporter``: ``dynamo`` (``torch.onnx.export(dynamo=True)``), ``legacy`` (the
    TorchScript-based exporter, deprecated by torch) or ``auto`` (dynamo, then legacy if
    dynamo raises). The one used is recorded in the metadata's ``exporter``.
    """
    example = _check_example(example, metadata)
    net = _inference_copy(model)
    version = torch.__version__.split("+")[0]
    with quiet_warnings(), torch.no_grad():
        if exporter == "legacy":
            proto, used = _onnx_legacy(net, example), f"torch.onnx legacy TorchScript-based (torch {version})"
        else:
            try:
                proto, used = _onnx_dynamo(net, example), f"torch.onnx dynamo (torch {version})"
            except Exception as exc:
                if exporter == "dynamo":
                    raise
                warnings.warn(f"dynamo ONNX export failed ({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                              "using the legacy exporter", RuntimeWarning, stacklevel=2)
                proto, used = _onnx_legacy(net, example), f"torch.onnx legacy TorchScript-based (torch {version})"
    metadata = replace(metadata, exporter=used, weights_digest=state_digest(onnx_weights(proto)))
    for entry in [p for p in proto.metadata_props if p.key == METADATA_KEY]:
        proto.metadata_props.remove(entry)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata.to_json()
    proto.doc_string = (f"actcli {metadata.model_name}: clips float[B, 3, {metadata.clip.frames}, "
                        f"{metadata.clip.crop}, {metadata.clip.crop}] -> logits [B, {len(metadata.classes)}]")
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return Path(path)


def onnx_weights(proto: Any) -> dict[str, torch.Tensor]:
    """An ONNX model's initializers (its weights) as tensors, by name."""
    from onnx import numpy_helper

    return {init.name: torch.from_numpy(numpy_helper.to_array(init).copy()) for init in proto.graph.initializer}


def export_model(
    model: nn.Module, example: torch.Tensor, path: Path, metadata: ExportMetadata, fmt: str
) -> Path:
    """Dispatch to :func:`export_torchscript`, :func:`export_onnx` or
    :func:`actcli.models.openvino_export.export_openvino` by ``fmt``."""
    fmt = check_format(fmt)
    if fmt == "openvino":
        from actcli.models.openvino_export import export_openvino

        return export_openvino(model, example, path, metadata)
    writer = export_torchscript if fmt == "torchscript" else export_onnx
    return writer(model, example, path, metadata)


def check_format(fmt: str) -> ExportFormat:
    """``fmt`` normalised to ``torchscript``, ``onnx`` or ``openvino``; anything else is a :class:`UserError`."""
    name = fmt.strip().lower()
    if name not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; use --format torchscript, onnx or openvino")
    return name  # type: ignore[return-value]
