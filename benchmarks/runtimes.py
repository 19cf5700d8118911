"""The measurement behind ``--runtime auto``: PyTorch's inference copy against OpenVINO, model by model.

For each model (native clip unless ``--clip`` overrides, batch ``--batch``, CPU, ``--precision auto``:
bf16 where the CPU computes it natively), the two runtimes ``actcli test`` can use are timed interleaved,
round by round:

* torch: :func:`actcli.engine.inference.prepare_for_inference` (SiLU, BatchNorm folded, channels-last,
  bf16 autocast with pre-cast weights);
* openvino: :func:`actcli.engine.runtimes.prepare_runtime` with ``--runtime openvino`` (converted,
  compiled with a static batch, precision hint as above).

Prints p50 ms per sample, the ratio torch / openvino (above 1: OpenVINO faster) and the conversion
seconds as JSON.
Usage: python benchmarks/runtimes.py [--models x3d_xs,x3d_s,r3d_tiny,r2plus1d_18] [--rounds 10]
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

from actcli.data.video import ClipSpec
from actcli.engine.inference import inference_precision, prepare_for_inference
from actcli.engine.runtimes import prepare_runtime
from actcli.models.zoo import MODELS, build_model
from actcli.report import cpu_name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="x3d_xs,x3d_s,r3d_tiny,r2plus1d_18")
    parser.add_argument("--clip", default="", help="FRAMESxSTRIDE@CROP for every model, e.g. 8x4@112")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    cpu = torch.device("cpu")
    precision = inference_precision("auto", cpu)
    rows = {}
    for name in args.models.split(","):
        if args.clip:
            frames, rest = args.clip.split("x")
            stride, crop = rest.split("@")
            spec = ClipSpec(int(frames), int(stride), int(crop))
        else:
            spec = MODELS[name].clip
        torch.manual_seed(0)
        model = build_model(name, spec, 400).eval()
        clips = torch.randn(args.batch, 3, spec.frames, spec.crop, spec.crop)
        with tempfile.TemporaryDirectory() as tmp:
            torch_net, _ = prepare_for_inference(model, cpu, precision)
            started = time.perf_counter()
            ov_net, _ = prepare_runtime(model, cpu, precision, "openvino", model_name=name, clip=spec,
                                        cache_dir=Path(tmp))
            converted = time.perf_counter() - started
            cl = clips.contiguous(memory_format=torch.channels_last_3d)
            runs = {"torch": lambda n=torch_net, x=cl: n(x), "openvino": lambda n=ov_net, x=clips: n(x)}
            times: dict[str, list[float]] = {k: [] for k in runs}
            with torch.inference_mode():
                for run in runs.values():
                    run()
                    run()
                for _ in range(args.rounds):
                    for key, run in runs.items():
                        start = time.perf_counter()
                        run()
                        times[key].append(time.perf_counter() - start)
        ms = {k: 1000 * statistics.median(v) / args.batch for k, v in times.items()}
        rows[f"{name} {spec}"] = {"p50_ms_per_sample": {k: round(v, 2) for k, v in ms.items()},
                                  "torch_over_openvino": round(ms["torch"] / ms["openvino"], 2),
                                  "openvino_convert_compile_s": round(converted, 1)}
        print(json.dumps({f"{name} {spec}": rows[f"{name} {spec}"]}), flush=True)
    print(json.dumps({"cpu": cpu_name(), "threads": torch.get_num_threads(), "batch": args.batch,
                      "precision": precision, "models": rows}, indent=2))


if __name__ == "__main__":
    main()
