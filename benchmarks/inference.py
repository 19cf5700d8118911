"""Model-only inference latency: eager fp32 pytorchvideo (reference) vs actcli's options.

One process, same random input, interleaved rounds so machine noise hits every variant
alike. Variants, all on X3D-XS (by default) at its native clip, batch 2, CPU:

* reference: eager fp32, default (NCDHW) memory format, ``torch.no_grad``;
* channels_last: channels-last-3d memory + ``inference_mode`` (one trick alone);
* actcli_fp32: ``prepare_for_inference(..., "32")``: SiLU, BatchNorm folded, channels-last;
* actcli_bf16: the same plus bf16 autocast with pre-cast weights (actcli's ``auto`` on CPUs
  with AMX / AVX512-BF16; skipped elsewhere);
* torchscript_frozen: TorchScript trace, ``torch.jit.freeze`` + ``optimize_for_inference``;
* onnxruntime: the model exported with ``actcli export`` run by ONNX Runtime. Its thread pool
  spins after each run and would slow whatever runs next, so it runs last in each round and
  the others first wait 0.2 s.

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

from actcli.engine.inference import native_bf16, prepare_for_inference
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

    cpu = torch.device("cpu")
    actcli_fp32, _ = prepare_for_inference(model, cpu, "32")
    actcli_bf16, _ = prepare_for_inference(model, cpu, "bf16")

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

        def prepared(net):
            def run():
                with torch.inference_mode():
                    return net(clips_cl)
            return run

        variants = {"reference_eager_fp32": reference, "channels_last": cl, "actcli_fp32": prepared(actcli_fp32)}
        if native_bf16(cpu):
            variants["actcli_bf16"] = prepared(actcli_bf16)
        variants |= {"torchscript_frozen": ts, "onnxruntime": lambda: onnx(clips)}
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
