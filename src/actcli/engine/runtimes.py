"""Which runtime runs a checkpoint for ``test``, ``predict`` and ``benchmark``: PyTorch, OpenVINO or ONNX Runtime.

``--runtime`` (``test.runtime``):

* ``torch``: :func:`actcli.engine.inference.prepare_for_inference` (SiLU, BatchNorm folded,
  channels-last, bf16 autocast where native);
* ``openvino``: the model converted to OpenVINO (:mod:`actcli.models.openvino_export`) and compiled
  for the CPU with precision hint ``f32`` or ``bf16`` (``--precision``; ``auto`` = bf16 on CPUs with
  AVX512-BF16 or AMX, as OpenVINO itself defaults);
* ``onnxruntime``: the model exported to ONNX (:func:`actcli.models.export.export_onnx`) and run by
  ONNX Runtime's CPU provider, fp32;
* ``auto`` (default): ``openvino`` on the CPU when it is installed and the model converts, ``torch``
  elsewhere (GPUs, MPS). On this project's 2-core Xeon OpenVINO ran X3D-XS 2.6x faster than the
  PyTorch path and was ahead on every model measured (docs/performance.md). A model OpenVINO cannot
  convert runs on ``torch`` after one warning line naming the reason; models with several inputs
  (rgb+audio, ...) always run on ``torch``.

Converting costs seconds to tens of seconds (tracing), so converted models are kept under
``<outputs>/cache/openvino/`` keyed by a digest of the weights, clip and versions (the newest
:data:`CACHE_ENTRIES` are kept), and OpenVINO's own compiled-model cache lives in its ``compiled/``.
Exported files run on their own runtime: TorchScript on torch, ONNX on ONNX Runtime (or OpenVINO with
``--runtime openvino``), OpenVINO IR on OpenVINO.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import actcli
from actcli.data.video import ClipSpec
from actcli.engine.inference import prepare_for_inference
from actcli.errors import UserError
from actcli.models.integrity import state_digest

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
CACHE_ENTRIES = 16
"""Converted models kept in the conversion cache (least recently used go first)."""


@dataclass
class RuntimeChoice:
    """The runtime that runs a model, its precision, the inference steps, and why it was chosen."""

    name: str
    precision: str
    steps: list[str] = field(default_factory=list)
    reason: str = ""

    def config(self) -> dict[str, Any]:
        """The report's config entries (``runtime`` also goes into the report's environment)."""
        return {"runtime": self.name, "runtime_reason": self.reason, "precision": self.precision,
                "inference_steps": self.steps}


def runtime_version(name: str) -> str:
    """The version of runtime ``name`` (``torch``, ``openvino``, ``onnxruntime``), or ``""``."""
    try:
        if name == "openvino":
            from actcli.models.openvino_export import version

            return version()
        if name == "onnxruntime":
            import onnxruntime

            return onnxruntime.__version__
        return torch.__version__.split("+")[0]
    except ImportError:
        return ""


def check_runtime(requested: str, device: torch.device) -> str:
    """``requested`` resolved for ``device``: ``auto`` -> ``openvino`` on the CPU where it runs, else
    ``torch``; an explicit runtime that cannot run here is one :class:`UserError` line."""
    from actcli.models.openvino_export import unavailable_reason

    if requested not in RUNTIMES:
        raise UserError(f"unknown runtime {requested!r}; choose one of {', '.join(RUNTIMES)}")
    if requested == "auto":
        return "openvino" if device.type == "cpu" and unavailable_reason() is None else "torch"
    if requested in ("openvino", "onnxruntime") and device.type != "cpu":
        raise UserError(f"--runtime {requested} runs on the CPU; use --device cpu, or --runtime torch on {device}")
    if requested == "openvino":
        reason = unavailable_reason()
        if reason is not None:
            raise UserError(f"--runtime openvino: {reason}; or use --runtime torch")
    return requested


def cache_key(model: nn.Module, model_name: str, clip: ClipSpec, runtime: str) -> str:
    """A digest naming a converted model: its weights, name, clip, the runtime's and actcli's versions."""
    text = json.dumps({"weights": state_digest(model.state_dict()), "model": model_name, "clip": str(clip),
                       "runtime": f"{runtime} {runtime_version(runtime)}", "actcli": actcli.__version__},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _prune(folder: Path, pattern: str) -> None:
    entries = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in entries[CACHE_ENTRIES:]:
        stale.unlink(missing_ok=True)
        stale.with_suffix(".bin").unlink(missing_ok=True)


def openvino_model(model: nn.Module, model_name: str, clip: ClipSpec, cache_dir: Path | None) -> tuple[Any, bool]:
    """``model`` as an ``openvino.Model``, from the conversion cache under ``cache_dir`` when it is there
    (returns ``(model, from_cache)``); raises :class:`~actcli.models.openvino_export.ConversionError`."""
    import openvino as ov

    from actcli.models.openvino_export import bin_path, core, to_openvino

    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{model_name}-{cache_key(model, model_name, clip, 'openvino')}.xml"
        if path.is_file() and bin_path(path).is_file():
            try:
                converted = core().read_model(str(path))
                path.touch()  # most recently used
                return converted, True
            except Exception:  # noqa: BLE001 - a damaged cache entry is converted again
                path.unlink(missing_ok=True)
    converted, _ = to_openvino(model, clip)
    if path is not None:
        try:
            from actcli.models.openvino_export import staging_ir

            with staging_ir(path) as staged:
                ov.save_model(converted, str(staged), compress_to_fp16=False)
            _prune(path.parent, "*.xml")
        except (UserError, OSError):
            pass  # a read-only outputs folder: run without the cache
    return converted, False


def onnxruntime_model(model: nn.Module, model_name: str, clip: ClipSpec, classes: list[str], threads: int | None,
                      cache_dir: Path | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``model`` exported to ONNX (cached like OpenVINO's conversions) and opened with ONNX Runtime."""
    import tempfile

    from actcli.models.export import ExportMetadata, export_onnx
    from actcli.models.exported import load_exported

    metadata = ExportMetadata(model_name, clip, tuple(classes))
    example = torch.zeros(1, 3, clip.frames, clip.crop, clip.crop)
    if cache_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(model, example, Path(tmp) / "model.onnx", metadata)
            return load_exported(path, threads=threads)
    path = Path(cache_dir) / f"{model_name}-{cache_key(model, model_name, clip, 'onnxruntime')}.onnx"
    if not path.is_file():
        export_onnx(model, example, path, metadata)
        _prune(path.parent, "*.onnx")
    path.touch()
    return load_exported(path, threads=threads)


def prepare_runtime(
    model: nn.Module,
    device: torch.device,
    precision: str,
    requested: str = "auto",
    *,
    model_name: str,
    clip: ClipSpec,
    classes: list[str] | None = None,
    single_input: bool = True,
    threads: int | None = None,
    cache_dir: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[Any, RuntimeChoice]:
    """``model`` ready for inference on the runtime ``requested`` resolves to (module docstring).

    ``precision`` is the resolved inference precision (:func:`~actcli.engine.inference.inference_precision`);
    ``single_input`` is False for models reading several modalities (they run on torch). Returns a callable
    (``float [B, 3, T, H, W]`` -> ``float32 [B, K]``, with ``eval()``) and the :class:`RuntimeChoice`.
    """
    name = check_runtime(requested, device)
    reason = "requested" if requested != "auto" else ("OpenVINO on the CPU (auto)" if name == "openvino"
                                                      else f"PyTorch on {device.type} (auto)")
    if name != "torch" and not single_input:
        if requested != "auto":
            raise UserError(f"--runtime {requested} runs models of one RGB input; this one reads several "
                            "modalities: use --runtime torch")
        name, reason = "torch", "several inputs: PyTorch (auto)"
    if name == "openvino":
        from actcli.models.openvino_export import ConversionError, OpenVINOModel

        if precision not in ("32", "bf16"):
            raise UserError(f"--runtime openvino runs in precision 32 or bf16, not {precision}")
        try:
            converted, cached = openvino_model(model, model_name, clip, cache_dir)
        except ConversionError as exc:
            if requested != "auto":
                raise UserError(f"OpenVINO cannot convert {model_name} ({exc}); use --runtime torch") from None
            if warn is not None:
                warn(f"OpenVINO cannot convert {model_name} ({str(exc)[:200]}); running it on PyTorch")
            name, reason = "torch", f"OpenVINO conversion failed: {str(exc)[:200]}"
        else:
            runner = OpenVINOModel(converted, precision, threads,
                                   Path(cache_dir) / "compiled" if cache_dir is not None else None)
            steps = ["openvino", "converted_from_cache" if cached else "converted",
                     f"precision_hint_{'f32' if precision == '32' else 'bf16'}", "static_batch"]
            return runner, RuntimeChoice("openvino", precision, steps, reason)
    if name == "onnxruntime":
        if precision != "32" and requested != "auto" and warn is not None:
            warn(f"ONNX Runtime runs in fp32 here; --precision {precision} is not used")
        runner = onnxruntime_model(model, model_name, clip, classes or [str(i) for i in range(2)], threads,
                                   cache_dir)
        return runner, RuntimeChoice("onnxruntime", "32", ["onnxruntime", "onnx_export"], reason)
    prepared, steps = prepare_for_inference(model, device, precision)
    return prepared, RuntimeChoice("torch", precision, steps, reason)
