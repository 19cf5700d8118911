"""The measurement behind ``--runtime auto``: PyTorch's inference copy against OpenVINO, model by model.

For each model (native clip unless ``--clip`` overrides, batch ``--batch``, CPU, ``--precision auto``:
bf16 where the CPU computes it natively), the two runtimes ``actcli test`` can use are timed interleaved,
round by round:

* torch: :func:`actcli.engine.inference.prepare_for_inference` (SiLU, BatchNorm folded, channels-last,
  bf16 autocast with pre-cast weights);
* openvino: :func:`actcli.engine.runtimes.prepare_runtime` with ``--runtime openvino`` (converted,
  compiled with a static batch, precision hint as above).

Prints p50 ms per sample, the ratio torch / openvino (above 1: OpenVINO faster), the conversion
seconds and OpenVINO's largest logit difference from the eager fp32 model as JSON. A model OpenVINO
cannot convert or run is listed with the reason (``not_supported``) instead.
Usage: python benchmarks/runtimes.py [--models x3d_xs,x3d_s,r3d_tiny,r2plus1d_18 | all] [--clip 8x2@32]
       [--rounds 10]
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
    names = list(MODELS) if args.models == "all" else args.models.split(",")
    for name in names:
        if args.clip:
            frames, rest = args.clip.split("x")
            stride, crop = rest.split("@")
            spec = ClipSpec(int(frames), int(stride), int(crop))
        else:
            spec = MODELS[name].clip
        try:
            rows[f"{name} {spec}"] = measure(name, spec, args.batch, args.rounds, cpu, precision)
        except Exception as exc:  # noqa: BLE001 - the reason is the result
            rows[f"{name} {spec}"] = {"not_supported": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        print(json.dumps({f"{name} {spec}": rows[f"{name} {spec}"]}), flush=True)
    print(json.dumps({"cpu": cpu_name(), "threads": torch.get_num_threads(), "batch": args.batch,
                      "precision": precision, "models": rows}, indent=2))


def measure(name: str, spec: ClipSpec, batch: int, rounds: int, cpu: torch.device, precision: str) -> dict:
    """Both runtimes on ``name`` at ``spec``; raises when OpenVINO cannot take the model."""
    torch.manual_seed(0)
    model = build_model(name, spec, 400).eval()
    clips = torch.randn(batch, 3, spec.frames, spec.crop, spec.crop)
    with tempfile.TemporaryDirectory() as tmp:
        torch_net, _ = prepare_for_inference(model, cpu, precision)
        started = time.perf_counter()
        ov_net, choice = prepare_runtime(model, cpu, precision, "openvino", model_name=name, clip=spec,
                                         cache_dir=Path(tmp))
        converted = time.perf_counter() - started
        if choice.name != "openvino":
            raise RuntimeError(choice.reason)
        cl = clips.contiguous(memory_format=torch.channels_last_3d)
        runs = {"torch": lambda n=torch_net, x=cl: n(x), "openvino": lambda n=ov_net, x=clips: n(x)}
        times: dict[str, list[float]] = {k: [] for k in runs}
        with torch.inference_mode():
            difference = float((ov_net(clips).float() - model(clips).float()).abs().max())
            for run in runs.values():
                run()
                run()
            for _ in range(rounds):
                for key, run in runs.items():
                    start = time.perf_counter()
                    run()
                    times[key].append(time.perf_counter() - start)
    ms = {k: 1000 * statistics.median(v) / batch for k, v in times.items()}
    return {"p50_ms_per_sample": {k: round(v, 2) for k, v in ms.items()},
            "torch_over_openvino": round(ms["torch"] / ms["openvino"], 2),
            "openvino_convert_compile_s": round(converted, 1), "max_abs_logit_difference": float(f"{difference:.2e}")}


if __name__ == "__main__":
    main()
