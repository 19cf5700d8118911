"""Model-only inference latency: actcli's default path against OpenVINO standalone and eager PyTorch.

One process, same random input, interleaved rounds so machine noise hits every variant
alike. Variants, all on X3D-XS (by default) at its native clip, batch 2, CPU:

* reference_eager_fp32: eager fp32 pytorchvideo, default (NCDHW) memory format, ``torch.no_grad``
  (the prototype's way);
* openvino_standalone: the peer a user would pick for CPU inference: the pytorchvideo network
  exported to ONNX with ``torch.onnx.export`` (defaults: a fixed batch), compiled by OpenVINO
  with its defaults (``Core().compile_model(path, "CPU")``: all cores, latency hint, bf16 on CPUs
  with AVX512-BF16 or AMX) and called as its tutorials do (``compiled(inputs)``);
* actcli_default: what ``actcli test`` / ``predict`` / ``benchmark`` run here
  (:func:`actcli.engine.runtimes.prepare_runtime` with ``--runtime auto --precision auto``);
* actcli_openvino_fp32: the same runtime with ``--precision 32``;
* actcli_int8: the converted model quantised by NNCF (as ``actcli export --format openvino --int8``),
  calibrated on ``--calibration`` clips of generated synthetic videos, run with OpenVINO's bf16 hint for
  its non-quantised layers (accuracy: docs/performance.md, measured on the demo's test split);
* actcli_torch_fp32 / actcli_torch_bf16: ``--runtime torch`` (``prepare_for_inference``: SiLU,
  BatchNorm folded, channels-last, bf16 autocast with pre-cast weights where native);
* onnxruntime: the model exported with ``actcli export`` run by ONNX Runtime. Its thread pool
  spins after each run and would slow whatever runs next, so it runs last in each round and
  the rounds are 0.2 s apart.

Also measured: the machine's matmul peak (a 2048^3 ``torch.mm`` in fp32 and bf16, best of a few),
and the FLOP floor of the model (its counted FLOPs per clip, :func:`actcli.models.flops.model_cost`,
over that peak). Prints per-sample p50 milliseconds, ratios and the distance from the floor as JSON.
Usage: python benchmarks/inference.py [--model x3d_xs] [--batch 2] [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from actcli.engine.inference import inference_precision, native_bf16, prepare_for_inference
from actcli.engine.runtimes import prepare_runtime
from actcli.models.export import ExportMetadata, _inference_copy, export_onnx
from actcli.models.exported import load_exported
from actcli.models.flops import model_cost
from actcli.models.zoo import MODELS, build_model
from actcli.report import cpu_name


def matmul_peak(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of the best of ``repeats`` ``size``-cubed ``torch.mm`` calls in ``dtype``."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def openvino_standalone(model: torch.nn.Module, clips: torch.Tensor, folder: Path):
    """The network exported to ONNX with torch's defaults and compiled by OpenVINO with its defaults."""
    import openvino as ov

    path = folder / "standalone.onnx"
    with torch.no_grad():
        try:
            torch.onnx.export(model, (clips,), str(path))
        except Exception:  # noqa: BLE001 - pytorchvideo's Swish is an autograd.Function some exporters refuse
            torch.onnx.export(_inference_copy(model), (clips,), str(path))
    compiled = ov.Core().compile_model(str(path), "CPU")
    array = clips.numpy()
    return lambda: compiled(array)[0], compiled


def calibration_clips(spec, count: int) -> list[torch.Tensor]:
    """``count`` clips of generated synthetic videos, transformed as at test time: ``float [1, 3, T, H, W]``."""
    from actcli.data.synthetic import MOTIONS, SyntheticSpec, render_clip
    from actcli.data.transforms import eval_transform
    from actcli.data.video import centre_clip_start, clip_indices

    transform = eval_transform(spec.crop)
    video = SyntheticSpec(frames=max(32, spec.frames * spec.stride), width=spec.crop * 4 // 3, height=spec.crop)
    clips = []
    for i in range(count):
        frames = torch.from_numpy(render_clip(MOTIONS[i % len(MOTIONS)], 1 + i // len(MOTIONS), 1, video))
        frames = frames.permute(0, 3, 1, 2)
        start = centre_clip_start(len(frames), spec.frames, spec.stride)
        clips.append(transform(frames[clip_indices(len(frames), spec.frames, spec.stride, start)])[None])
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="x3d_xs")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--no-onnxruntime", action="store_true", help="leave ONNX Runtime out")
    parser.add_argument("--calibration", type=int, default=32, help="int8: calibration clips (0: no int8 row)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    spec = MODELS[args.model].clip
    torch.manual_seed(0)
    model = build_model(args.model, spec, 400).eval()
    clips = torch.randn(args.batch, 3, spec.frames, spec.crop, spec.crop)
    clips_cl = clips.contiguous(memory_format=torch.channels_last_3d)
    cpu = torch.device("cpu")
    auto = inference_precision("auto", cpu)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        standalone, compiled = openvino_standalone(model, clips, folder)
        standalone_setup = time.perf_counter() - started
        started = time.perf_counter()
        default, choice = prepare_runtime(model, cpu, auto, "auto", model_name=args.model, clip=spec,
                                          cache_dir=folder / "cache")
        default_setup = time.perf_counter() - started
        ov_fp32, _ = prepare_runtime(model, cpu, "32", "openvino", model_name=args.model, clip=spec,
                                     cache_dir=folder / "cache")
        if args.calibration:
            from actcli.models.openvino_export import OpenVINOModel, quantize_int8

            quantized = quantize_int8(default.model, calibration_clips(spec, args.calibration), args.calibration)
            int8 = OpenVINOModel(quantized, auto)
        torch_fp32, _ = prepare_for_inference(model, cpu, "32")
        torch_bf16, _ = prepare_for_inference(model, cpu, "bf16") if native_bf16(cpu) else (None, None)

        def reference():
            with torch.no_grad():
                return model(clips)

        def torch_path(net):
            def run():
                with torch.inference_mode():
                    return net(clips_cl)
            return run

        def actcli_openvino(net):
            def run():
                with torch.inference_mode():
                    return net(clips)
            return run

        variants = {"reference_eager_fp32": reference, "openvino_standalone": standalone,
                    "actcli_default": actcli_openvino(default), "actcli_openvino_fp32": actcli_openvino(ov_fp32),
                    "actcli_torch_fp32": torch_path(torch_fp32)}
        if args.calibration:
            variants["actcli_int8"] = actcli_openvino(int8)
        if torch_bf16 is not None:
            variants["actcli_torch_bf16"] = torch_path(torch_bf16)
        if not args.no_onnxruntime:
            path = folder / "model.onnx"
            export_onnx(model, clips, path, ExportMetadata(args.model, spec, tuple(str(i) for i in range(400))))
            onnx = load_exported(path)
            variants["onnxruntime"] = lambda: onnx(clips)
        with torch.no_grad():
            reference_out = model(clips)
        agreement = {name: float((torch.as_tensor(np.asarray(run())) - reference_out).abs().max())
                     for name, run in variants.items()}
        for run in variants.values():  # warm-up
            run()
            run()
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            time.sleep(0.2)  # let ONNX Runtime's spinning threads of the previous round go idle
            for name, run in variants.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
        standalone_hint = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    gflops = model_cost(MODELS[args.model]).gflops
    ms = {name: 1000 * statistics.median(values) / args.batch for name, values in times.items()}
    floor = {k: 1000 * gflops / v for k, v in peak.items()}  # ms per clip at the matmul peak
    print(json.dumps({
        "model": f"{args.model} {spec}", "batch": args.batch, "threads": torch.get_num_threads(),
        "cpu": cpu_name(), "python": platform.python_version(), "torch": torch.__version__.split("+")[0],
        "openvino": __import__("openvino").__version__.split("-")[0],
        "actcli_default_runtime": f"{choice.name} precision {choice.precision}",
        "openvino_standalone_precision": standalone_hint,
        "setup_seconds": {"openvino_standalone_onnx_export_and_compile": round(standalone_setup, 1),
                          "actcli_default_convert_and_compile": round(default_setup, 1)},
        "p50_ms_per_sample": {k: round(v, 2) for k, v in ms.items()},
        "speedup_vs_reference": {k: round(ms["reference_eager_fp32"] / v, 2) for k, v in ms.items()},
        "actcli_default_vs_openvino_standalone": round(ms["openvino_standalone"] / ms["actcli_default"], 3),
        **({"int8_vs_actcli_default": round(ms["actcli_default"] / ms["actcli_int8"], 3)} if args.calibration else {}),
        "max_abs_logit_difference_vs_eager": {k: float(f"{v:.2e}") for k, v in agreement.items()},
        "flop_floor": {
            "gflops_per_clip": round(gflops, 3),
            "matmul_peak_gflops": {k: round(v, 1) for k, v in peak.items()},
            "floor_ms_per_clip": {k: round(v, 3) for k, v in floor.items()},
            "actcli_default_over_floor": {k: round(ms["actcli_default"] / v, 1) for k, v in floor.items()},
            "openvino_standalone_over_floor": {k: round(ms["openvino_standalone"] / v, 1) for k, v in floor.items()},
        },
    }, indent=2))


if __name__ == "__main__":
    main()
