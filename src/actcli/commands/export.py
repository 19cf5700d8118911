"""``actcli export``: a checkpoint to a TorchScript, ONNX or OpenVINO IR file, verified against PyTorch.

``--format openvino --int8`` also quantises the IR to int8 (NNCF, calibrated on training clips), then
measures the fp32 (and bf16, where the CPU computes it natively) and int8 models side by side: model-only
latency, interleaved, and top-1 on the test split; it prints the table and writes an ``export`` report.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from actcli import console as ui
from actcli.errors import UserError
from actcli.fileio import atomic_path
from actcli.models.checkpoint import clip_of, convention_of, model_from_checkpoint
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
PLAIN = {"soft_wrap": True, "highlight": False, "markup": False}


def _size(path: Path) -> str:
    size = path.stat().st_size
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        size += path.with_suffix(".bin").stat().st_size
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.0f} KiB"


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def _verify(model: torch.nn.Module, exported, fmt: str, weights: Path, out: Path) -> float:
    """Max logit difference of ``exported`` vs ``model`` on :data:`VERIFY_BATCH` random clips; a failure or a
    difference over :data:`TOLERANCE` is one :class:`UserError` line (nothing is written)."""
    try:
        difference = max_logit_difference(model, exported, batch=VERIFY_BATCH)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime, OpenVINO and TorchScript raise their own types
        raise UserError(f"the {fmt} export of {weights} fails on a batch of {VERIFY_BATCH} clips ({_reason(exc)}); "
                        "nothing written; try the other --format") from None
    if not difference <= TOLERANCE:  # also catches NaN
        raise UserError(f"the {fmt} export of {weights} does not match PyTorch (max logit difference "
                        f"{difference:.2e} > {TOLERANCE:.0e}); nothing written to {out}")
    return difference


def export(settings: Settings, weights: Path | None, experiment: str | None, fmt: str, out: Path | None,
           int8: bool = False, calibration_clips: int = 300, sources: dict[str, str] | None = None,
           report_file: Path | None = None) -> Path:
    """Export ``weights`` (default: best.pt of the latest run) to ``fmt``; returns the written file.

    The file is only put in place after the exported model, run on a random batch, matched
    the PyTorch model's logits to within :data:`TOLERANCE` (with ``int8``: after the fp32 IR did, and
    the int8 one ran on the same batch).
    """
    fmt = check_format(fmt)
    if int8 and fmt != "openvino":
        raise UserError("--int8 quantises OpenVINO IR files: add --format openvino")
    weights = weights or latest_checkpoint(settings.paths.outputs, experiment)
    model, checkpoint = model_from_checkpoint(weights)
    model.eval()
    spec = clip_of(checkpoint)
    out = out or weights.with_suffix(FORMATS[fmt])
    if fmt == "openvino" and out.suffix.lower() != ".xml":
        raise UserError(f"--out {out}: an OpenVINO IR is an .xml file (its weights go beside it as .bin); "
                        f"pass e.g. {out.with_suffix('.xml').name}")
    if out.exists() and (out.is_dir() or out.resolve() == weights.resolve()):
        raise UserError(f"--out {out} is {'a folder' if out.is_dir() else 'the checkpoint itself'}; "
                        f"pass a file name such as {weights.with_suffix(FORMATS[fmt]).name}")
    metadata = ExportMetadata.from_checkpoint(checkpoint, weights)
    example = torch.zeros(1, 3, spec.frames, spec.crop, spec.crop)
    ui.console.print(f"exporting {metadata.model_name} ({len(metadata.classes)} classes, clips {spec}) "
                     f"from {weights} to {fmt}" + (" (int8)" if int8 else ""), **PLAIN)
    if fmt == "openvino":
        return _export_openvino(settings, sources or {}, model, checkpoint, weights, out, metadata, example, int8,
                                calibration_clips, report_file)
    with atomic_path(out) as staging:
        export_model(model, example, staging, metadata, fmt)
        exported = load_exported(staging)
        difference = _verify(model, exported, fmt, weights, out)
    ui.console.print(f"exported: {out} ({_size(out)}, {exported.metadata.exporter})", **PLAIN)
    ui.console.print(f"verified: max |logit difference| vs PyTorch {difference:.2e} on {VERIFY_BATCH} random clips "
                     f"(tolerance {TOLERANCE:.0e})", **PLAIN)
    return out


def _export_openvino(settings: Settings, sources: dict[str, str], model: torch.nn.Module, checkpoint: dict,
                     weights: Path, out: Path, metadata: ExportMetadata, example: torch.Tensor, int8: bool,
                     calibration_clips: int, report_file: Path | None) -> Path:
    """The IR (fp32 weights), verified in fp32; with ``int8`` the quantised IR instead, measured side by side."""
    from actcli.models.openvino_export import (
        ConversionError,
        export_openvino,
        load_openvino,
        metadata_with,
        quantize_int8,
        to_openvino,
        unavailable_reason,
    )

    reason = unavailable_reason()
    if reason is not None:
        raise UserError(f"--format openvino: {reason}")
    try:
        converted, exporter = to_openvino(model, metadata.clip)
    except ConversionError as exc:
        raise UserError(f"OpenVINO cannot convert {metadata.model_name} ({exc}); use --format onnx or torchscript"
                        ) from None
    metadata = replace(metadata, exporter=exporter)
    if not int8:
        export_openvino(model, example, out, metadata, converted)
        exported = load_openvino(out, "32")
        try:
            difference = _verify(model, exported, "openvino", weights, out)
        except UserError:
            out.unlink(missing_ok=True)
            out.with_suffix(".bin").unlink(missing_ok=True)
            raise
        ui.console.print(f"exported: {out} + {out.with_suffix('.bin').name} ({_size(out)}, {exporter})", **PLAIN)
        ui.console.print(f"verified: max |logit difference| vs PyTorch {difference:.2e} on {VERIFY_BATCH} random "
                         f"clips in fp32 (tolerance {TOLERANCE:.0e})", **PLAIN)
        return out
    from actcli.models.openvino_export import OpenVINOModel

    fp32_difference = _verify(model, _WithClip(OpenVINOModel(converted, "32"), metadata.clip), "openvino", weights,
                              out)
    calibration, test_loader, split = _int8_data(settings, sources, checkpoint, weights, calibration_clips)
    with ui.progress() as bars:
        task = bars.add_task(f"int8: calibrating on {len(calibration.indices)} training clips (NNCF)", total=None)
        quantized = quantize_int8(converted, calibration, len(calibration.indices))
        bars.remove_task(task)
    staged_metadata = metadata_with(replace(metadata, exporter=f"{exporter} + nncf.quantize int8"),
                                    int8={"calibration_clips": len(calibration.indices), "calibration_split": "train",
                                          "preset": "performance"})
    export_openvino(model, example, out, staged_metadata, quantized)
    try:
        exported = load_openvino(out, "32")
        int8_logits = exported(torch.randn(VERIFY_BATCH, 3, metadata.clip.frames, metadata.clip.crop,
                                           metadata.clip.crop, generator=torch.Generator().manual_seed(0)))
        if not torch.isfinite(int8_logits).all():
            raise UserError(f"the int8 export of {weights} gives non-finite logits; nothing written")
    except Exception:
        out.unlink(missing_ok=True)
        out.with_suffix(".bin").unlink(missing_ok=True)
        raise
    variants = _int8_variants(converted, exported.runner, settings)
    metrics = _measure_int8(variants, test_loader, settings)
    from actcli.models.openvino_export import describe_precisions

    ui.console.print(f"exported: {out} + {out.with_suffix('.bin').name} ({_size(out)}, int8; constants "
                     f"{describe_precisions(exported.runner.model)})", **PLAIN)
    ui.console.print(f"verified: the fp32 IR matched PyTorch to {fp32_difference:.2e} (tolerance {TOLERANCE:.0e}); "
                     "the int8 IR ran on the same random clips", **PLAIN)
    _print_int8(metrics, split)
    return _write_int8_report(settings, metrics, weights, out, report_file, len(calibration.indices), split,
                              fp32_difference, checkpoint)


class _WithClip:
    """A runner with the ``clip`` :func:`~actcli.models.exported.max_logit_difference` reads."""

    def __init__(self, run, clip) -> None:
        self.run, self.clip = run, clip

    def __call__(self, clips: torch.Tensor) -> torch.Tensor:
        return self.run(clips)


class CalibrationClips:
    """Re-iterable ``float [1, 3, T, H, W]`` clips of a subset of the training split (for ``nncf.Dataset``,
    which may pass over it more than once); unreadable videos are left out."""

    def __init__(self, dataset, indices: list[int], workers: int) -> None:
        self.dataset, self.indices, self.workers = dataset, indices, workers

    def __iter__(self):
        from torch.utils.data import Subset

        from actcli.data.datasets import make_loader

        loader = make_loader(Subset(self.dataset, self.indices), 8, self.workers, False)
        for batch in loader:
            if batch["clips"] is not None:
                for clip in batch["clips"]:
                    yield clip[None].contiguous()


def _int8_data(settings: Settings, sources: dict[str, str], checkpoint: dict, weights: Path, count: int):
    """Calibration clips (``count`` training videos at random, a centred clip each) and the test loader."""
    from actcli.commands.model import _with_checkpoint_data
    from actcli.data.datasets import make_loader
    from actcli.pipeline import check_classes, clip_dataset, data_source, inputs_of

    modalities = tuple(checkpoint.get("modalities", ["rgb"]))
    if modalities != ("rgb",):
        raise UserError(f"--int8 quantises models of one RGB input; this one reads {'+'.join(modalities)}")
    settings = _with_checkpoint_data(settings, sources, checkpoint)
    try:
        source = data_source(settings)
    except UserError as exc:
        raise UserError(f"--int8 calibrates on the training videos and scores the test split: {exc}") from None
    check_classes(weights, checkpoint["classes"], source.classes)
    spec, inputs = clip_of(checkpoint), inputs_of(settings, ["rgb"], convention_of(checkpoint))
    train = clip_dataset(source, "train", spec, training=False, inputs=inputs)
    chosen = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:count].tolist()
    split = settings.test.split
    test = clip_dataset(source, split, spec, training=False, inputs=inputs)
    loader = make_loader(test, settings.test.batch_size, settings.data.workers, False)
    return CalibrationClips(train, sorted(chosen), settings.data.workers), loader, split


def _int8_variants(converted: Any, int8_runner, settings: Settings) -> dict[str, Any]:
    """The models compared: fp32, bf16 (where the CPU computes it natively) and int8 (run with OpenVINO's
    default bf16 hint where native, so its non-quantised layers are as fast as they get)."""
    from actcli.engine.inference import native_bf16
    from actcli.models.openvino_export import OpenVINOModel

    threads = settings.benchmark.threads
    variants = {"fp32": OpenVINOModel(converted, "32", threads)}
    best = "32"
    if native_bf16(torch.device("cpu")):
        variants["bf16"] = OpenVINOModel(converted, "bf16", threads)
        best = "bf16"
    variants["int8"] = OpenVINOModel(int8_runner.model, best, threads)
    return variants


def _measure_int8(variants: dict[str, Any], test_loader, settings: Settings) -> dict[str, Any]:
    """Top-1 of each variant on the test loader (one decoding pass feeds all) and model-only latency per
    sample, the variants interleaved run by run (:func:`actcli.engine.benchmark.time_runs`)."""
    from actcli.engine.benchmark import percentiles, time_runs

    correct, seen = dict.fromkeys(variants, 0), 0
    with ui.progress() as bars:
        task = bars.add_task("scoring fp32/bf16/int8 on the test split", total=len(test_loader))
        for batch in test_loader:
            if batch["clips"] is not None:
                clips = batch["clips"].contiguous()
                for name, runner in variants.items():
                    correct[name] += int((runner(clips).argmax(1) == batch["labels"]).sum())
                seen += len(batch["labels"])
            bars.advance(task)
        bars.remove_task(task)
        bench = settings.benchmark
        frames_crop = next(iter(variants.values())).model.inputs[0].partial_shape
        shape = [bench.batch_size, *[int(d.get_length()) for d in list(frames_crop)[1:]]]
        clips = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        steps = [(lambda r=runner: r(clips)) for runner in variants.values()]
        times = time_runs(steps, torch.device("cpu"), bench.warmup, bench.runs, bars, "latency, interleaved")
    rows = {}
    for (name, runner), spent in zip(variants.items(), times, strict=True):
        latency = percentiles([1000.0 * t / bench.batch_size for t in spent])
        rows[name] = {"precision_hint": runner.inference_precision(), "ms_per_sample": latency.model_dump(),
                      "top1": correct[name] / seen if seen else None}
    base = "bf16" if "bf16" in rows else "fp32"
    int8 = rows["int8"]
    speedup = rows[base]["ms_per_sample"]["p50"] / int8["ms_per_sample"]["p50"]
    change = (int8["top1"] - rows[base]["top1"]) if seen else None
    return {"variants": rows, "baseline": base, "test_clips": seen, "int8_speedup": speedup, "top1_change": change}


def _print_int8(metrics: dict[str, Any], split: str) -> None:
    rows = []
    for name, row in metrics["variants"].items():
        top1 = f"{row['top1']:.3f}" if row["top1"] is not None else "-"
        compute = f"i8 + {row['precision_hint']}" if name == "int8" else row["precision_hint"]
        rows.append([name, compute, f"{row['ms_per_sample']['p50']:.2f}",
                     f"{row['ms_per_sample']['p95']:.2f}", top1])
    ui.console.print(ui.table(f"OpenVINO fp32 / bf16 / int8 ({metrics['test_clips']} {split} clips)",
                              ["model", "compute", "p50 ms/sample", "p95 ms/sample", f"top-1 {split}"], rows))
    change = metrics["top1_change"]
    ui.console.print(f"int8 vs {metrics['baseline']}: {metrics['int8_speedup']:.2f}x faster (p50), top-1 "
                     + (f"{100 * change:+.1f} points" if change is not None else "not measured (no test clip)"),
                     **PLAIN)


def _write_int8_report(settings: Settings, metrics: dict[str, Any], weights: Path, out: Path,
                       report_file: Path | None, calibration: int, split: str, difference: float,
                       checkpoint: dict) -> Path:
    from dataclasses import asdict

    from actcli.report import ExportMetrics, make_report, write_report

    result = ExportMetrics(format="openvino", file=str(out), int8=True, calibration_clips=calibration,
                           test_split=split, test_clips=metrics["test_clips"], fp32_max_logit_difference=difference,
                           baseline=metrics["baseline"], variants=metrics["variants"],
                           int8_speedup=metrics["int8_speedup"], top1_change=metrics["top1_change"])
    config = {**settings.model_dump(mode="json"), "weights": str(weights), "clip": asdict(clip_of(checkpoint)),
              "runtime": "openvino"}
    path = report_file or out.with_name(f"report-export-{out.stem}.json")
    write_report(make_report("export", torch.device("cpu"), config, result, {"export": out}), path)
    ui.console.print(f"report: {path}", **PLAIN)
    return out
