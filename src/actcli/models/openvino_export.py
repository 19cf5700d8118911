"""OpenVINO: models converted to OpenVINO's IR, IR files with actcli's metadata, int8 quantisation (NNCF).

* **Conversion** (:func:`to_openvino`): the eval-mode model (pytorchvideo's ``Swish`` as plain
  ``x * sigmoid(x)``, as for the other exports) traced with ``torch.jit.trace`` and converted with
  ``openvino.convert_model``, batch dimension dynamic; if that fails, ``torch.export`` and
  ``convert_model`` of the exported program. Input ``clips`` ``float [B, 3, T, H, W]``, output
  ``logits`` ``[B, K]``, exactly like the TorchScript and ONNX exports.
* **IR files** (``.xml`` + ``.bin`` beside it): :func:`save_ir` writes both atomically (a staging
  folder beside the target, the ``.bin`` renamed first), weights in fp32 (no fp16 compression).
  The metadata JSON (:class:`~actcli.models.export.ExportMetadata`: classes, clip, convention,
  preprocessing) is the model's ``rt_info`` entry ``actcli``; its ``weights_digest`` is the SHA-256
  of the ``.bin`` file (every weight byte), checked by :func:`load_ir`.
* **Running** (:class:`OpenVINOModel`): compiled for the CPU with a static batch (a dynamic batch ran
  1.9x slower in bf16 here), one compiled model per batch size met, ``INFERENCE_PRECISION_HINT``
  ``f32`` or ``bf16`` (OpenVINO's own default on CPUs with AVX512-BF16 or AMX), threads as torch's.
* **int8** (:func:`quantize_int8`): ``nncf.quantize`` (post-training, the ``PERFORMANCE`` preset:
  symmetric int8 weights and activations) calibrated on clips from the training split.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from actcli.data.video import ClipSpec
from actcli.errors import UserError
from actcli.models.export import INPUT_NAME, OUTPUT_NAME, ExportMetadata, _inference_copy, quiet_warnings

SUFFIX = ".xml"
"""An IR's model file; its weights are the ``.bin`` file of the same name."""
RT_INFO_KEY = "actcli"
"""The ``rt_info`` entry of the IR holding the metadata JSON."""
PRECISION_HINTS = {"32": "f32", "bf16": "bf16"}
"""actcli inference precision -> OpenVINO ``INFERENCE_PRECISION_HINT``."""
COMPILED_PER_MODEL = 4
"""Compiled models (one per batch size) kept per :class:`OpenVINOModel`."""


class ConversionError(Exception):
    """OpenVINO could not convert a model; the message says why, in one line."""


def unavailable_reason() -> str | None:
    """Why OpenVINO cannot run here (not installed, no CPU plugin), or None when it can."""
    try:
        import openvino as ov
    except ImportError as exc:
        return f"openvino is not installed ({exc}); pip install openvino"
    try:
        if "CPU" not in ov.Core().available_devices:
            return "OpenVINO's CPU plugin is not available"
    except Exception as exc:  # noqa: BLE001 - plugin loading raises RuntimeError or its own types
        return f"OpenVINO does not start ({_first_line(exc)})"
    return None


def version() -> str:
    """OpenVINO's version, short (``2026.4.1``)."""
    import openvino as ov

    return ov.__version__.split("-")[0]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


_CORE: Any = None


def core() -> Any:
    """One ``openvino.Core`` per process (creating one loads the plugins)."""
    global _CORE
    if _CORE is None:
        import openvino as ov

        _CORE = ov.Core()
    return _CORE


# ---------------------------------------------------------------------------- conversion


def _name_ports(model: Any) -> Any:
    model.inputs[0].get_tensor().set_names({INPUT_NAME})
    model.outputs[0].get_tensor().set_names({OUTPUT_NAME})
    return model


def to_openvino(model: nn.Module, clip: ClipSpec) -> tuple[Any, str]:
    """``model`` (eval mode) as an ``openvino.Model`` taking ``float [B, 3, T, H, W]`` clips of ``clip`` with
    a dynamic batch; returns it and the converter used. Raises :class:`ConversionError` with the reason."""
    import openvino as ov

    net = _inference_copy(model)
    example = torch.zeros(2, 3, clip.frames, clip.crop, clip.crop)
    shape = ov.PartialShape([-1, 3, clip.frames, clip.crop, clip.crop])
    ov_version = version()
    reasons = []
    with quiet_warnings(), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            traced = torch.jit.trace(net, (example,), check_trace=False)
            converted = ov.convert_model(traced, example_input=(example,), input=[shape])
            return _name_ports(converted), f"torch.jit.trace + openvino.convert_model (OpenVINO {ov_version})"
        except Exception as exc:  # noqa: BLE001 - the tracer and the frontend raise many kinds
            reasons.append(f"TorchScript: {_first_line(exc)}")
        try:
            program = torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
            converted = ov.convert_model(program)
            converted.reshape({converted.inputs[0]: shape})
            return _name_ports(converted), f"torch.export + openvino.convert_model (OpenVINO {ov_version})"
        except Exception as exc:  # noqa: BLE001
            reasons.append(f"torch.export: {_first_line(exc)}")
    raise ConversionError("; ".join(reasons))


# ---------------------------------------------------------------------------- IR files


def bin_path(xml: Path) -> Path:
    """The weights file of IR ``xml``."""
    return Path(xml).with_suffix(".bin")


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _save(model: Any, xml: Path) -> None:
    import openvino as ov

    ov.save_model(model, str(xml), compress_to_fp16=False)


@contextmanager
def staging_ir(target: Path) -> Iterator[Path]:
    """Yield an ``.xml`` path in a staging folder beside ``target``; on success move its ``.bin`` then its
    ``.xml`` to ``target`` (so a reader never sees a new ``.xml`` with an old ``.bin``); on failure leave
    ``target`` untouched. The staging folder is removed either way."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise UserError(f"cannot write {target}: {exc.strerror or exc}; nothing was written") from None
    try:
        staged = folder / f"model{SUFFIX}"
        yield staged
        os.replace(bin_path(staged), bin_path(target))
        os.replace(staged, target)
    except OSError as exc:
        raise UserError(f"cannot write {target}: {exc.strerror or exc}; free disk space or choose another --out"
                        ) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save_ir(model: Any, xml: Path, metadata: ExportMetadata) -> ExportMetadata:
    """Write ``model`` to ``xml`` + ``.bin`` (in place: use :func:`staging_ir` for atomic writes) with
    ``metadata`` (its ``weights_digest`` set to the ``.bin``'s SHA-256) in its ``rt_info``; returns the
    metadata written."""
    xml = Path(xml)
    _save(model, xml)  # the weights first: their digest goes into the metadata
    metadata = replace(metadata, weights_digest=file_digest(bin_path(xml)))
    model.set_rt_info(metadata.to_json(), [RT_INFO_KEY])
    _save(model, xml)
    if file_digest(bin_path(xml)) != metadata.weights_digest:  # serialisation is deterministic; check anyway
        raise RuntimeError(f"OpenVINO wrote different weights for {xml} on a second save")
    return metadata


def is_ir(path: Path) -> bool:
    """Whether ``path`` looks like an OpenVINO IR (``.xml`` suffix, or XML whose root is ``<net``)."""
    path = Path(path)
    if path.suffix.lower() == SUFFIX:
        return True
    try:
        with open(path, "rb") as handle:
            head = handle.read(256).lstrip()
    except OSError:
        return False
    return head.startswith(b"<?xml") and b"<net" in head


def read_ir(path: Path) -> tuple[Any, ExportMetadata]:
    """An actcli IR file as ``(openvino.Model, metadata)``; a missing, foreign or damaged file (weights not
    matching the digest) is one :class:`UserError` line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"exported model {path} not found; pass an existing .xml file")
    weights = bin_path(path)
    if not weights.is_file():
        raise UserError(f"{path} is an OpenVINO IR without its weights file {weights.name}; copy both files")
    reason = unavailable_reason()
    if reason is not None:
        raise UserError(f"{path} is an OpenVINO IR, which needs OpenVINO: {reason}")
    try:
        model = core().read_model(str(path))
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses of its own
        raise UserError(f"{path} is not a readable OpenVINO IR ({_first_line(exc)})") from None
    if not model.has_rt_info([RT_INFO_KEY]):
        raise UserError(f"{path} is an OpenVINO IR but not an actcli export (no '{RT_INFO_KEY}' metadata); "
                        "export it with `actcli export --format openvino`")
    metadata = ExportMetadata.from_json(model.get_rt_info([RT_INFO_KEY]).astype(str), path)
    if metadata.weights_digest and file_digest(weights) != metadata.weights_digest:
        raise UserError(f"{path} is damaged: its weights ({weights.name}) do not match the digest written at export "
                        "time (bytes changed on disk or in a copy); export it again")
    return model, metadata


def weights_nonfinite(model: Any) -> str | None:
    """The name of the first floating-point constant of ``model`` holding a NaN or an infinity, or None."""
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant":
            continue
        data = op.get_data()
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            return op.get_friendly_name()
    return None


# ---------------------------------------------------------------------------- running


class OpenVINOModel:
    """An ``openvino.Model`` compiled for the CPU, callable like the network: ``float [B, 3, T, H, W]``
    -> ``float32`` logits ``[B, K]`` (a torch tensor on the input's device).

    Each batch size is compiled once, with a static shape (kept for the last :data:`COMPILED_PER_MODEL`
    sizes); ``precision`` is ``32`` or ``bf16`` (the ``INFERENCE_PRECISION_HINT``; an int8 model
    computes its quantised layers in int8 either way). ``cache_dir`` enables OpenVINO's compiled-model
    cache there.
    """

    wants_contiguous = True  # numpy needs contiguous clips: channels-last input would be copied on every call

    def __init__(self, model: Any, precision: str = "32", threads: int | None = None,
                 cache_dir: Path | None = None) -> None:
        if precision not in PRECISION_HINTS:
            raise UserError(f"OpenVINO runs in precision 32 or bf16, not {precision!r}")
        self.model, self.precision = model, precision
        self.threads = threads or torch.get_num_threads()
        self.cache_dir = cache_dir
        self._compiled: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self.training = False

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[self.precision],
                                  "INFERENCE_NUM_THREADS": int(self.threads), "PERFORMANCE_HINT": "LATENCY"}
        if self.cache_dir is not None:
            Path(self.cache_dir).mkdir(parents=True, exist_ok=True)
            config["CACHE_DIR"] = str(self.cache_dir)
        return config

    def compiled(self, shape: tuple[int, ...]) -> Any:
        """The compiled model for inputs of ``shape`` (compiled on first use)."""
        if shape in self._compiled:
            self._compiled.move_to_end(shape)
            return self._compiled[shape]
        static = self.model.clone()
        static.reshape({static.inputs[0]: list(shape)})
        try:
            compiled = core().compile_model(static, "CPU", self.config)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises its own RuntimeError subclasses
            raise UserError(f"OpenVINO cannot compile the model for clips {list(shape)} ({_first_line(exc)})"
                            ) from None
        request = compiled.create_infer_request()
        self._compiled[shape] = (compiled, request)
        while len(self._compiled) > COMPILED_PER_MODEL:
            self._compiled.popitem(last=False)
        return self._compiled[shape]

    def run_numpy(self, array: np.ndarray) -> np.ndarray:
        """Logits for a contiguous ``float32`` array (a fresh array, not OpenVINO's buffer)."""
        _, request = self.compiled(tuple(array.shape))
        request.infer({0: array}, share_inputs=True)
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        array = np.ascontiguousarray(clips.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self.run_numpy(array)).to(clips.device)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self(clips)

    def eval(self) -> OpenVINOModel:
        return self

    def train(self, mode: bool = True) -> OpenVINOModel:
        if mode:
            raise UserError("an OpenVINO model runs inference only")
        return self

    def to(self, device: torch.device | str) -> OpenVINOModel:
        if torch.device(device).type != "cpu":
            raise UserError(f"OpenVINO runs on the CPU here; use --device cpu (or --runtime torch for {device})")
        return self

    def parameters(self) -> Iterator[torch.Tensor]:
        return iter(())

    def inference_precision(self) -> str:
        """The precision OpenVINO reports for the last compiled model (``f32``, ``bf16``), or the hint."""
        if not self._compiled:
            return PRECISION_HINTS[self.precision]
        compiled, _ = next(reversed(self._compiled.values()))
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        return hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)


# ---------------------------------------------------------------------------- int8


def quantize_int8(model: Any, clips: Iterable[torch.Tensor], count: int) -> Any:
    """``model`` quantised to int8 by NNCF's post-training quantisation, calibrated on ``count`` clips
    (``clips`` yields ``float [1, 3, T, H, W]`` batches); the fp32 ``model`` is left unchanged."""
    try:
        import nncf
    except ImportError as exc:
        raise UserError(f"--int8 needs NNCF ({exc}); pip install nncf") from None
    import logging

    logging.getLogger("nncf").setLevel(logging.ERROR)
    dataset = nncf.Dataset(clips, lambda clip: np.ascontiguousarray(clip.numpy(), dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nncf.quantize(model.clone(), dataset, subset_size=count, preset=nncf.QuantizationPreset.PERFORMANCE,
                             target_device=nncf.TargetDevice.CPU)


def describe_precisions(model: Any) -> dict[str, int]:
    """How many constants of each element type ``model`` holds (``{'i8': 53, 'f32': 70}``): int8 weights
    show as ``i8``."""
    counts: dict[str, int] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Constant":
            name = op.get_element_type().get_type_name()
            counts[name] = counts.get(name, 0) + 1
    return counts


def metadata_with(metadata: ExportMetadata, **extra: Any) -> ExportMetadata:
    """``metadata`` with ``extra`` entries added (JSON-serialisable provenance)."""
    json.dumps(extra)
    return replace(metadata, extra={**metadata.extra, **extra})


# ---------------------------------------------------------------------------- export and load


def export_openvino(model: nn.Module, example: torch.Tensor, path: Path, metadata: ExportMetadata,
                    converted: Any = None) -> Path:
    """Convert ``model`` (or take ``converted``, an ``openvino.Model`` of it, e.g. quantised) and write the IR
    ``path`` (+ ``.bin``) atomically with ``metadata``; the batch dimension stays dynamic."""
    from actcli.models.export import _check_example

    _check_example(example, metadata)
    if converted is None:
        try:
            converted, exporter = to_openvino(model, metadata.clip)
        except ConversionError as exc:
            raise UserError(f"OpenVINO cannot convert {metadata.model_name} ({exc}); use --format onnx or "
                            "torchscript") from None
        metadata = replace(metadata, exporter=exporter)
    with staging_ir(Path(path)) as staged:
        save_ir(converted, staged, metadata)
    return Path(path)


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``bf16`` on CPUs that compute it natively (AVX512-BF16, AMX; OpenVINO's own default), else
    ``32``; ``16`` is refused (CUDA only)."""
    from actcli.engine.inference import inference_precision

    return inference_precision(precision, torch.device("cpu"))


def load_openvino(path: Path, precision: str = "auto", threads: int | None = None, cache_dir: Path | None = None,
                  fmt: str = "openvino"):
    """Open an actcli IR (or, with ``fmt="onnx"``, an actcli ONNX file: OpenVINO reads ONNX too) as an
    :class:`~actcli.models.exported.ExportedModel` run by :class:`OpenVINOModel` at ``precision``."""
    from actcli.models.exported import ExportedModel, check_weights

    path = Path(path)
    if fmt == "onnx":
        import onnx

        from actcli.models.export import METADATA_KEY, onnx_weights

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError and others
            raise UserError(f"{path} is neither a TorchScript nor an ONNX model ({_first_line(exc)})") from None
        props = {p.key: p.value for p in proto.metadata_props}
        if METADATA_KEY not in props:
            raise UserError(f"{path} is an ONNX model but not an actcli export (no '{METADATA_KEY}' metadata); "
                            "export it with `actcli export --format onnx`")
        metadata = ExportMetadata.from_json(props[METADATA_KEY], path)
        check_weights(path, metadata, onnx_weights(proto))
        model = core().read_model(str(path))
    else:
        model, metadata = read_ir(path)
        bad = weights_nonfinite(model)
        if bad is not None:
            raise UserError(f"{path} holds non-finite weights (NaN or infinity in {bad}); export it again from a "
                            "good checkpoint")
    runner = OpenVINOModel(model, resolve_precision(precision), threads, cache_dir)

    def run(clips: torch.Tensor) -> torch.Tensor:
        return runner(clips)

    exported = ExportedModel(path, fmt, metadata, run)  # type: ignore[arg-type]
    exported.runtime, exported.precision, exported.runner = "openvino", runner.precision, runner
    return exported
