"""Model-only inference latency: eager fp32 pytorchvideo (reference) vs actcli's options.

One process, same random input, interleaved rounds so machine noise hits every variant
alike. Variants, all on X3D-XS (by default) at its native clip, batch 2, CPU:

* reference: eager fp32, default (NCDHW) memory format, ``torch.no_grad``;
* channels_last: channels-last-3d memory + ``inference_mode`` (actcli's PyTorch default);
* torchscript_frozen: TorchScript trace, ``torch.jit.freeze`` + ``optimize_for_inference``;
* onnxruntime: the model exported with ``actcli export`` run by ONNX Runtime.

Prints per-sample p50 milliseconds and the speed-up over the reference as JSON.
Usage: python benchmarks/inference.py [--model x3d_xs] [--batch 2] [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from actcli.models.export import ExportMetadata, export_onnx
from actcli.models.exported import load_exported
from actcli.models.zoo import MODELS, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="x3d_xs")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    spec = MODELS[args.model].clip
    torch.manual_seed(0)
    model = build_model(args.model, spec, 400).eval()
    clips = torch.randn(args.batch, 3, spec.frames, spec.crop, spec.crop)
    channels_last = torch.channels_last_3d

    fast = build_model(args.model, spec, 400).eval()
    fast.load_state_dict(model.state_dict())
    fast = fast.to(memory_format=channels_last)
    clips_cl = clips.contiguous(memory_format=channels_last)

    with torch.no_grad():
        traced = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(
            _plain(model), clips, check_trace=False)))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, clips, path, ExportMetadata(args.model, spec, tuple(str(i) for i in range(400))))
        onnx = load_exported(path)

        def reference():
            with torch.no_grad():
                return model(clips)

        def cl():
            with torch.inference_mode():
                return fast(clips_cl)

        def ts():
            with torch.inference_mode():
                return traced(clips)

        variants = {"reference_eager_fp32": reference, "channels_last": cl, "torchscript_frozen": ts,
                    "onnxruntime": lambda: onnx(clips)}
        for run in variants.values():  # warm-up
            run()
            run()
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, run in variants.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    ms = {name: 1000 * statistics.median(values) / args.batch for name, values in times.items()}
    print(json.dumps({
        "model": f"{args.model} {spec}", "batch": args.batch, "threads": torch.get_num_threads(),
        "p50_ms_per_sample": {k: round(v, 1) for k, v in ms.items()},
        "speedup_vs_reference": {k: round(ms["reference_eager_fp32"] / v, 2) for k, v in ms.items()},
    }, indent=2))


def _plain(model: torch.nn.Module) -> torch.nn.Module:
    """A copy whose pytorchvideo Swish (an autograd.Function) is a traceable module."""
    from actcli.models.export import _inference_copy

    return _inference_copy(model)


if __name__ == "__main__":
    main()
