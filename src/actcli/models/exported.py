"""Loading exported TorchScript / ONNX files and running them like the model they came from.

Writing lives in :mod:`actcli.models.export`; this module reads what it wrote.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from actcli.data.video import ClipSpec
from actcli.errors import UserError
from actcli.models.export import (
    EXTRA_FILE,
    FORMATS,
    METADATA_KEY,
    ExportFormat,
    ExportMetadata,
    onnx_weights,
    quiet_warnings,
)
from actcli.models.integrity import first_nonfinite, state_digest

# ---------------------------------------------------------------------------- reading


class ExportedModel:
    """An exported file, callable like the model: ``float [B, 3, T, H, W]`` -> logits ``[B, K]``.

    ``classes``, ``clip``, ``model_name`` come from the embedded metadata; ``format`` is
    ``torchscript``, ``onnx`` or ``openvino``; ``runtime`` what runs it (``torch``, ``onnxruntime``,
    ``openvino``) at ``precision``. Logits come back on the device of the input tensor.
    """

    runtime = "torch"
    precision = "32"

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
    def convention(self):
        """How clips are resized and normalised for this model (stored in the file)."""
        return self.metadata.convention

    @property
    def num_classes(self) -> int:
        return len(self.metadata.classes)

    def eval(self) -> ExportedModel:
        """No-op (exports are always in inference mode); for drop-in use where a model is expected."""
        return self

    def to(self, device: torch.device | str) -> ExportedModel:
        """Move a TorchScript export to ``device``; ONNX runs on the CPU only."""
        device = torch.device(device)
        if self.format in ("onnx", "openvino"):
            if device.type != "cpu":
                kind = "ONNX" if self.format == "onnx" else "OpenVINO"
                raise UserError(f"{kind} exports run on the CPU ({self.runtime}); use --device cpu for {self.path}")
        elif self._module is not None:
            with quiet_warnings():
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
        with quiet_warnings():
            module = torch.jit.load(str(path), map_location=torch.device(device), _extra_files=extra)
    except (RuntimeError, OSError, ValueError) as exc:
        raise UserError(f"{path} is not a readable TorchScript file: {str(exc).splitlines()[0]}") from None
    metadata = ExportMetadata.from_json(extra[EXTRA_FILE], path)
    check_weights(path, metadata, module.state_dict())
    module.eval()

    def run(clips: torch.Tensor) -> torch.Tensor:
        target = next(iter(module.parameters()), torch.empty(0)).device
        with torch.inference_mode():
            return module(clips.to(target).float())

    exported = ExportedModel(path, "torchscript", metadata, run, module)
    exported.device = torch.device(device)
    return exported


def check_weights(path: Path, metadata: ExportMetadata, weights: dict[str, torch.Tensor]) -> None:
    """One :class:`UserError` line if an export's weights differ from the digest written at export time, or
    are not finite (exports from before digests skip the first check)."""
    if metadata.weights_digest and state_digest(weights) != metadata.weights_digest:
        raise UserError(f"{path} is damaged: its weights do not match the digest written at export time (bytes "
                        "changed on disk or in a copy); export it again")
    bad = first_nonfinite(weights)
    if bad is not None:
        raise UserError(f"{path} holds non-finite weights (NaN or infinity in {bad}); export it again from a "
                        "good checkpoint")


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
    import onnx

    check_weights(path, metadata, onnx_weights(onnx.load(str(path), load_external_data=False)))
    input_name = session.get_inputs()[0].name

    def run(clips: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(clips.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(session.run(None, {input_name: array})[0])

    exported = ExportedModel(path, "onnx", metadata, run)
    exported.runtime = "onnxruntime"
    return exported


def load_exported(path: Path, device: torch.device | str = "cpu", threads: int | None = None,
                  precision: str = "auto", runtime: str = "auto", cache_dir: Path | None = None) -> ExportedModel:
    """Open an actcli TorchScript, ONNX or OpenVINO IR export (the kind is read from the content; an IR is its
    ``.xml``).

    ``device`` places a TorchScript export (ONNX and IR run on the CPU); ``threads`` sets onnxruntime's
    or OpenVINO's threads (TorchScript follows ``torch.set_num_threads``). An IR runs on OpenVINO at
    ``precision`` (``auto``: bf16 where the CPU computes it natively); an ONNX file runs on ONNX Runtime
    (fp32), or on OpenVINO with ``runtime="openvino"``; ``cache_dir`` holds OpenVINO's compiled models.
    Missing, unreadable or foreign files raise a one-line :class:`UserError`.
    """
    path = Path(path)
    from actcli.models.openvino_export import is_ir, load_openvino

    if path.suffix.lower() == ".xml" or (path.is_file() and is_ir(path)):
        return load_openvino(path, precision, threads, cache_dir).to(device)
    if not path.is_file():
        raise UserError(f"exported model {path} not found; pass an existing .ts, .onnx or .xml file")
    names = _zip_names(path)
    if names is not None:
        return _load_torchscript(path, names, device)
    if runtime == "openvino":
        return load_openvino(path, precision, threads, cache_dir, fmt="onnx").to(device)
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
