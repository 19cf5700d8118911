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
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

import actcli
from actcli.data.transforms import MEAN, STD
from actcli.data.video import ClipSpec
from actcli.errors import UserError
from actcli.fileio import atomic_path
from actcli.models.checkpoint import FORMAT as CHECKPOINT_FORMAT

EXPORT_FORMAT = "actcli-export/1"
FORMATS: dict[str, str] = {"torchscript": ".ts", "onnx": ".onnx"}
"""Export format -> default file suffix."""
METADATA_KEY = "actcli"
"""ONNX ``metadata_props`` key holding the metadata JSON."""
EXTRA_FILE = "actcli.json"
"""TorchScript extra file holding the metadata JSON."""
INPUT_NAME, OUTPUT_NAME = "clips", "logits"
ONNX_LEGACY_OPSET = 17

ExportFormat = Literal["torchscript", "onnx"]
OnnxExporter = Literal["auto", "dynamo", "legacy"]


@dataclass(frozen=True)
class ExportMetadata:
    """What an exported file says about itself (stored as JSON inside the file)."""

    model_name: str
    clip: ClipSpec
    classes: tuple[str, ...]
    format: str = EXPORT_FORMAT
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
        return cls(checkpoint["model"], ClipSpec(**checkpoint["clip"]), tuple(checkpoint["classes"]), extra=extra)

    def to_json(self) -> str:
        data = {
            "format": self.format,
            "model": self.model_name,
            "clip": asdict(self.clip),
            "classes": list(self.classes),
            "exporter": self.exporter,
            "actcli": actcli.__version__,
            "torch": torch.__version__.split("+")[0],
            "input": {
                "name": INPUT_NAME, "layout": "B,C,T,H,W", "dtype": "float32",
                "shape": [None, 3, self.clip.frames, self.clip.crop, self.clip.crop],
                "preprocessing": f"RGB / 255, short side resized to {self.clip.crop}, centre crop "
                                 f"{self.clip.crop}x{self.clip.crop}, then (x - mean) / std",
                "mean": list(MEAN), "std": list(STD),
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
            known = {"format", "model", "clip", "classes", "exporter"}
            return cls(
                model_name=str(data["model"]),
                clip=ClipSpec(**{k: int(data["clip"][k]) for k in ("frames", "stride", "crop")}),
                classes=tuple(str(c) for c in data["classes"]),
                format=data["format"],
                exporter=str(data.get("exporter", "")),
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
def _quiet() -> Iterator[None]:
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
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(net, (example,), check_trace=False)
        with atomic_path(Path(path)) as tmp:
            torch.jit.save(traced, str(tmp), _extra_files={EXTRA_FILE: metadata.to_json()})
    return Path(path)


def _onnx_dynamo(net: nn.Module, example: torch.Tensor) -> Any:
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
    with _quiet(), torch.no_grad():
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
    metadata = replace(metadata, exporter=used)
    for entry in [p for p in proto.metadata_props if p.key == METADATA_KEY]:
        proto.metadata_props.remove(entry)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata.to_json()
    proto.doc_string = (f"actcli {metadata.model_name}: clips float[B, 3, {metadata.clip.frames}, "
                        f"{metadata.clip.crop}, {metadata.clip.crop}] -> logits [B, {len(metadata.classes)}]")
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return Path(path)


def export_model(
    model: nn.Module, example: torch.Tensor, path: Path, metadata: ExportMetadata, fmt: str
) -> Path:
    """Dispatch to :func:`export_torchscript` or :func:`export_onnx` by ``fmt``."""
    fmt = check_format(fmt)
    writer = export_torchscript if fmt == "torchscript" else export_onnx
    return writer(model, example, path, metadata)


def check_format(fmt: str) -> ExportFormat:
    """``fmt`` normalised to ``torchscript`` or ``onnx``; anything else is a :class:`UserError`."""
    name = fmt.strip().lower()
    if name not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; use --format torchscript or --format onnx")
    return name  # type: ignore[return-value]


# ---------------------------------------------------------------------------- reading


class ExportedModel:
    """An exported file, callable like the model: ``float [B, 3, T, H, W]`` -> logits ``[B, K]``.

    ``classes``, ``clip``, ``model_name`` come from the embedded metadata; ``format`` is
    ``torchscript`` or ``onnx``. Logits come back on the device of the input tensor.
    """

    def __init__(self, path: Path, fmt: ExportFormat, metadata: ExportMetadata,
                 run: Callable[[torch.Tensor], torch.Tensor], module: torch.jit.ScriptModule | None = None) -> None:
        self.path = path
        self.format: ExportFormat = fmt
        self.metadata = metadata
        self._run = run
        self._module = module
        self.device = torch.device("cpu")

    @property
    def classes(self) -> list[str]:
        return list(self.metadata.classes)

    @property
    def clip(self) -> ClipSpec:
        return self.metadata.clip

    @property
    def model_name(self) -> str:
        return self.metadata.model_name

    @property
    def num_classes(self) -> int:
        return len(self.metadata.classes)

    def eval(self) -> ExportedModel:
        """No-op (exports are always in inference mode); for drop-in use where a model is expected."""
        return self

    def to(self, device: torch.device | str) -> ExportedModel:
        """Move a TorchScript export to ``device``; ONNX runs on the CPU only."""
        device = torch.device(device)
        if self.format == "onnx":
            if device.type != "cpu":
                raise UserError(f"ONNX exports run on the CPU (onnxruntime); use --device cpu for {self.path}")
        elif self._module is not None:
            with _quiet():
                self._module.to(device)
        self.device = device
        return self

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        clip = self.metadata.clip
        expected = (3, clip.frames, clip.crop, clip.crop)
        if clips.dim() != 5 or tuple(clips.shape[1:]) != expected:
            raise ValueError(f"{self.path} takes clips [B, {', '.join(map(str, expected))}], "
                             f"got {list(clips.shape)}")
        return self._run(clips).to(clips.device)

    def __repr__(self) -> str:
        return (f"ExportedModel({self.model_name}, {self.format}, {len(self.metadata.classes)} classes, "
                f"clip {self.clip}, {self.path})")


def _zip_names(path: Path) -> list[str] | None:
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None


def _has_actcli_extra(names: list[str]) -> bool:
    return any(n == f"extra/{EXTRA_FILE}" or n.endswith(f"/extra/{EXTRA_FILE}") for n in names)


def _load_torchscript(path: Path, names: list[str], device: torch.device | str) -> ExportedModel:
    if not _has_actcli_extra(names):
        if any("/code/" in n or n.startswith("code/") for n in names):
            raise UserError(f"{path} is a TorchScript file but not an actcli export (no {EXTRA_FILE}); "
                            "export it with `actcli export`")
        raise UserError(f"{path} is a PyTorch checkpoint, not an exported model; use it as --weights of "
                        f"`actcli export` to make a .ts or .onnx file")
    extra = {EXTRA_FILE: ""}
    try:
        with _quiet():
            module = torch.jit.load(str(path), map_location=torch.device(device), _extra_files=extra)
    except (RuntimeError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable TorchScript file: {str(exc).splitlines()[0]}") from None
    metadata = ExportMetadata.from_json(extra[EXTRA_FILE], path)
    module.eval()

    def run(clips: torch.Tensor) -> torch.Tensor:
        target = next(iter(module.parameters()), torch.empty(0)).device
        with torch.inference_mode():
            return module(clips.to(target).float())

    exported = ExportedModel(path, "torchscript", metadata, run, module)
    exported.device = torch.device(device)
    return exported


def _load_onnx(path: Path, threads: int | None) -> ExportedModel:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path} is neither a TorchScript nor an ONNX model ({reason[:200]})") from None
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise UserError(f"{path} is an ONNX model but not an actcli export (no '{METADATA_KEY}' metadata); "
                        "export it with `actcli export --format onnx`")
    metadata = ExportMetadata.from_json(props[METADATA_KEY], path)
    input_name = session.get_inputs()[0].name

    def run(clips: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(clips.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(session.run(None, {input_name: array})[0])

    return ExportedModel(path, "onnx", metadata, run)


def load_exported(path: Path, device: torch.device | str = "cpu", threads: int | None = None) -> ExportedModel:
    """Open an actcli TorchScript or ONNX export (the kind is read from the content, not the suffix).

    ``device`` places a TorchScript export (ONNX always runs on the CPU); ``threads`` sets
    onnxruntime's intra-op threads (TorchScript follows ``torch.set_num_threads``).
    Missing, unreadable or foreign files raise a one-line :class:`UserError`.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"exported model {path} not found; pass an existing .ts or .onnx file")
    names = _zip_names(path)
    if names is not None:
        return _load_torchscript(path, names, device)
    exported = _load_onnx(path, threads)
    return exported.to(device)


def is_exported(path: Path) -> bool:
    """True for a path that should be opened with :func:`load_exported` instead of as a checkpoint.

    A ``.ts`` or ``.onnx`` suffix is enough (even if the file is missing, so that
    :func:`load_exported` reports it); otherwise the content decides: a TorchScript archive
    with actcli metadata, or an ONNX model with actcli metadata.
    """
    path = Path(path)
    if path.suffix.lower() in FORMATS.values():
        return True
    if not path.is_file():
        return False
    names = _zip_names(path)
    if names is not None:
        return _has_actcli_extra(names)
    try:
        with open(path, "rb") as handle:
            if handle.read(1) != b"\x08":  # an ONNX ModelProto starts with ir_version (field 1, varint)
                return False
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX: protobuf decode errors, unreadable file
        return False
    return any(p.key == METADATA_KEY for p in model.metadata_props)


@torch.inference_mode()
def max_logit_difference(model: nn.Module, exported: ExportedModel, batch: int = 2, seed: int = 0) -> float:
    """Max absolute logit difference between ``model`` (in eval mode) and ``exported`` on random clips."""
    clip = exported.clip
    generator = torch.Generator().manual_seed(seed)
    clips = torch.randn(batch, 3, clip.frames, clip.crop, clip.crop, generator=generator)
    training = model.training
    try:
        device = next(iter(model.parameters()), torch.empty(0)).device
        reference = model.eval()(clips.to(device)).float().cpu()
    finally:
        model.train(training)
    return float((reference - exported(clips).float().cpu()).abs().max())
