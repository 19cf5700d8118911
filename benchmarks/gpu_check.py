"""GPU readiness: one JSON line of what actcli does on one CUDA GPU, in under 5 minutes (run by gpu_check.sh).

Phases, each bounded by a shared deadline (``--budget`` seconds; a phase that would start too late is
reported as skipped):

1. ``training``: X3D-S (13x6@160) and ``videomae_base`` (16x4@224, when the zoo has it) training steps
   in bf16 autocast with channels-last memory, in clips/s three ways: the model alone (random clips
   already on the GPU), the loader alone (actcli's loader on generated videos, ``--workers`` processes)
   and both together; ``bottleneck`` says which limits (the loader when it delivers fewer clips/s than
   the model consumes).
2. ``inference``: p50/p95 ms per batch at batch 1 and 8 for both, as ``actcli test`` runs them on CUDA
   (``--runtime auto`` = torch there: BatchNorm folded, cuDNN benchmark, bf16 autocast).
3. ``demo_top1``: r3d_tiny trained for a few epochs on the demo's synthetic dataset on the GPU, then
   its test split scored in fp32 and in bf16: top-1 of each.
4. ``decoding``: one 8x8 clip from a 1080p H.264 MP4, read by torchcodec on the GPU (NVDEC,
   ``--decoder torchcodec-cuda``) and on the CPU, ms per clip.

Without a CUDA GPU it prints ``{"gpu": null, ...}`` with the reason (and the decoder's one-line
fallback) in a few seconds; ``--device cpu`` runs every phase on the CPU with tiny sizes, to check the
script itself.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        return self.end - time.perf_counter()


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(0.95 * len(ordered)) - 1))
    return {"p50": round(statistics.median(ordered), 3), "p95": round(ordered[rank], 3)}


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cli(folder: Path, *args: str) -> None:
    """``actcli ARGS`` in this process, in ``folder``; a failure raises with the end of its output."""
    from typer.testing import CliRunner

    from actcli.cli import app

    os.chdir(folder)
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exit_code != 0:
        raise RuntimeError(f"actcli {args[0]} failed: {result.output[-400:]}")


def make_videos(folder: Path, classes: int, clips: int, frames: int, width: int, height: int) -> Path:
    """The demo's synthetic dataset (smaller when asked), annotated: returns its root."""
    from actcli.data.synthetic import SyntheticSpec, generate

    root = folder / "data" / "synthetic"
    generate(root, SyntheticSpec(classes=classes, groups=max(3, clips // 2), clips_per_class=clips, frames=frames,
                                 width=width, height=height))
    cli(folder, "annotate", "--dataset", "synthetic", "--root", str(root))
    return root


def settings_for(folder: Path, root: Path, **extra):
    from actcli.settings import load_settings

    os.chdir(folder)
    settings, _ = load_settings(None, {"data.dataset": "synthetic", "data.root": str(root), **extra})
    return settings


NARROW = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128}
"""--device cpu: Hugging Face models this narrow (the script is checked, not the model)."""


def config_for(name: str, small: bool) -> dict:
    from actcli.models.zoo import get_entry

    return dict(NARROW) if small and get_entry(name).family == "huggingface" else {}


def training_phase(name: str, spec, device, batch: int, steps: int, workers: int, root: Path, folder: Path,
                   small: bool = False) -> dict:
    """Clips/s of bf16 channels-last training steps: model alone, loader alone, together."""
    import torch
    import torch.nn.functional as F

    from actcli.data.datasets import make_loader
    from actcli.engine.recipe import autocast
    from actcli.models.zoo import build_model, get_entry
    from actcli.pipeline import clip_dataset, clips_to_device, data_source, inputs_of

    settings = settings_for(folder, root)
    source = data_source(settings)
    model = build_model(name, spec, len(source.classes), config=config_for(name, small))
    model = model.to(device).to(memory_format=torch.channels_last_3d)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def channels_last(x):
        return x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last_3d)

    def step(clips, labels):
        with autocast(device, "bf16"):
            loss = F.cross_entropy(model(clips), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    clips = channels_last(torch.randn(batch, 3, spec.frames, spec.crop, spec.crop))
    labels = torch.randint(0, len(source.classes), (batch,), device=device)
    for _ in range(3):
        step(clips, labels)
    sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step(clips, labels)
    sync(device)
    model_rate = steps * batch / (time.perf_counter() - started)

    inputs = inputs_of(settings, ["rgb"], get_entry(name).convention)
    dataset = clip_dataset(source, "train", spec, training=True, inputs=inputs)
    loader = make_loader(dataset, batch, workers, True, 0, pin_memory=device.type == "cuda")
    seen, started = 0, time.perf_counter()
    for batch_data in loader:
        seen += len(batch_data["labels"])
    loader_rate = seen / (time.perf_counter() - started)
    seen, started = 0, time.perf_counter()
    for batch_data in loader:
        step(clips_to_device(batch_data["clips"], device).contiguous(memory_format=torch.channels_last_3d)
             if device.type == "cuda" else batch_data["clips"], batch_data["labels"].to(device))
        seen += len(batch_data["labels"])
    sync(device)
    together = seen / (time.perf_counter() - started)
    return {"clip": str(spec), "batch": batch, "precision": "bf16 autocast", "memory_format": "channels_last_3d",
            "clips_per_s": {"model_only": round(model_rate, 1), "loader_only": round(loader_rate, 1),
                            "together": round(together, 1)},
            "workers": workers, "bottleneck": "loader" if loader_rate < model_rate else "gpu"}


def inference_phase(name: str, spec, device, runs: int, small: bool = False) -> dict:
    """p50/p95 ms per batch at batch 1 and 8, the way ``actcli test`` prepares the model on this device."""
    import torch

    from actcli.engine.inference import inference_precision
    from actcli.engine.runtimes import prepare_runtime
    from actcli.models.zoo import build_model
    from actcli.pipeline import clips_to_device

    model = build_model(name, spec, 400, config=config_for(name, small)).to(device).eval()
    precision = inference_precision("auto", device)
    net, choice = prepare_runtime(model, device, precision, "auto", model_name=name, clip=spec)
    out = {"runtime": choice.name, "precision": precision}
    for batch in (1, 8):
        clips = clips_to_device(torch.randn(batch, 3, spec.frames, spec.crop, spec.crop), device)
        times = []
        with torch.inference_mode():
            for i in range(runs + 3):
                sync(device)
                started = time.perf_counter()
                net(clips)
                sync(device)
                if i >= 3:
                    times.append(1000 * (time.perf_counter() - started))
        out[f"batch_{batch}_ms"] = percentiles(times)
    return out


def demo_phase(device, root: Path, folder: Path, epochs: int, workers: int) -> dict:
    """r3d_tiny trained on the synthetic demo set, test split top-1 in fp32 and bf16."""
    from actcli.report import read_report

    common = ["--dataset", "synthetic", "--root", str(root), "--device", device.type]

    def run(*args: str) -> None:
        cli(folder, *args)

    run("train", *common, "--model", "r3d_tiny", "--epochs", str(epochs), "--lr", "0.005", "--dropout", "0.2",
        "--workers", str(workers), "--experiment", "gpu-demo")
    out = {"epochs": epochs}
    for precision in ("32", "bf16"):
        report = folder / f"test-{precision}.json"
        run("test", "--experiment", "gpu-demo", "--precision", precision, "--workers", str(workers), "--device",
            device.type, "--report", str(report))
        metrics = read_report(report)
        out[f"top1_{'fp32' if precision == '32' else 'bf16'}"] = metrics.metrics["top1"]
        out["test_clips"] = metrics.metrics["clips"]
        out["runtime"] = metrics.environment.runtime
    out["same_top1"] = out["top1_fp32"] == out["top1_bf16"]
    return out


def decoding_phase(folder: Path, runs: int, small: bool) -> dict:
    """ms per 8x8 clip from a 1080p H.264 MP4 (small: 320x240): torchcodec on CUDA (NVDEC) and on the CPU."""
    import numpy as np

    from actcli.data.torchcodec_video import read_clip_torchcodec
    from actcli.data.video import clip_indices, clip_span, probe, read_clip, resolve_decoder

    path = folder / "clip.mp4"
    write_h264(path, 320 if small else 1920, 240 if small else 1080, 4)
    info = probe(path)
    rng = np.random.default_rng(0)
    starts = [int(rng.integers(0, info.frames - clip_span(8, 8))) for _ in range(runs)]
    chosen = {"cuda": resolve_decoder("torchcodec-cuda"), "cpu": resolve_decoder("auto")}
    times: dict[str, list[float]] = {k: [] for k in chosen}
    frames = {}
    for start in starts:
        for where, decoder in chosen.items():
            def choose(info, s=start):
                return clip_indices(info.frames, 8, 8, s)

            began = time.perf_counter()
            if decoder == "torchcodec-cuda":  # directly: read_clip would fall back to PyAV on a decoding error
                frames[where], _ = read_clip_torchcodec(path, choose, "cuda")
            else:
                frames[where], _ = read_clip(path, choose, decoder)
            times[where].append(1000 * (time.perf_counter() - began))
    cuda_ms, cpu_ms = statistics.median(times["cuda"]), statistics.median(times["cpu"])
    return {"file": f"{info.width}x{info.height} H.264 MP4, {info.frames} frames", "decoders": chosen,
            "ms_per_clip": {"torchcodec_cuda": round(cuda_ms, 1), "cpu": round(cpu_ms, 1)},
            "cuda_speedup": round(cpu_ms / cuda_ms, 2),
            "frames_equal": bool((frames["cuda"].float() - frames["cpu"].float()).abs().mean() < 2.0)}


def write_h264(path: Path, width: int, height: int, seconds: int) -> None:
    import av
    import numpy as np

    from actcli.data.synthetic import SyntheticSpec, render_clip

    scale = max(1, width // 160)
    frames = render_clip("MoveRight", 1, 1, SyntheticSpec(frames=seconds * 30, width=width // scale,
                                                          height=height // scale))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "g": "60"}
        for small in frames:
            big = np.repeat(np.repeat(small, scale, axis=0), scale, axis=1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(big), format="rgb24")))
        container.mux(stream.encode())


RESULT: dict = {}


def print_partial(signum, frame) -> None:
    """On SIGTERM (the script's time limit): the phases measured so far, as the one JSON line."""
    print(json.dumps({**RESULT, "interrupted": "time limit (GPU_CHECK_SECONDS) reached"}), flush=True)
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (tiny sizes: checks the script)")
    parser.add_argument("--budget", type=float, default=270.0, help="seconds for all phases together")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    args = parser.parse_args()
    started = time.perf_counter()
    import torch

    from actcli.data.torchcodec_video import cuda_unavailable_reason

    result: dict = RESULT
    result.update({"check": "actcli GPU readiness", "torch": torch.__version__})
    signal.signal(signal.SIGTERM, print_partial)  # gpu_check.sh's time limit: print what was measured
    if args.device == "cuda" and not torch.cuda.is_available():
        from actcli.data.video import resolve_decoder

        with contextlib.redirect_stdout(io.StringIO()):  # the decoder's one warning line goes to stderr
            fallback = resolve_decoder("torchcodec-cuda")
        result.update({"gpu": None, "status": "no CUDA GPU visible: nothing measured",
                       "decoder_torchcodec_cuda": f"falls back to {fallback} ({cuda_unavailable_reason()})",
                       "seconds": round(time.perf_counter() - started, 1)})
        print(json.dumps(result))
        return
    device = torch.device(args.device)
    small = device.type == "cpu"
    deadline = Deadline(args.budget)
    result["gpu"] = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    result["device"] = str(device)
    if device.type == "cuda":
        result["cuda"] = torch.version.cuda
        result["bf16_supported"] = torch.cuda.is_bf16_supported()
    from actcli.data.video import ClipSpec
    from actcli.models.zoo import MODELS

    models = {"x3d_s": ClipSpec(4, 6, 32) if small else MODELS["x3d_s"].clip}
    if "videomae_base" in MODELS:
        models["videomae_base"] = ClipSpec(4, 4, 32) if small else MODELS["videomae_base"].clip
    phases = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        home = Path.cwd()
        try:
            root = make_videos(folder, 4 if small else 8, 6 if small else 40, 32, 160, 120)
            phases = [
                *[(f"training.{name}", lambda n=name, s=spec: training_phase(
                    n, s, device, 2 if small else (16 if n == "x3d_s" else 8), 2 if small else 20,
                    0 if small else args.workers, root, folder, small)) for name, spec in models.items()],
                *[(f"inference.{name}", lambda n=name, s=spec: inference_phase(n, s, device, 3 if small else 30,
                                                                               small))
                  for name, spec in models.items()],
                ("demo_top1", lambda: demo_phase(device, root, folder, 1 if small else 8,
                                                 0 if small else args.workers)),
                ("decoding", lambda: decoding_phase(folder, 3 if small else 10, small)),
            ]
            estimates = {"training": 60, "inference": 20, "demo_top1": 60, "decoding": 20}
            for name, run in phases:
                section, _, key = name.partition(".")
                target = result.setdefault(section, {}) if key else result
                if deadline.left() < (5 if small else estimates[section]):
                    value = {"skipped": "time budget spent"}
                else:
                    log(f"gpu_check: {name}")
                    try:
                        with contextlib.redirect_stdout(sys.stderr):
                            value = run()
                    except Exception as exc:  # noqa: BLE001 - report the failure and go on with the next phase
                        value = {"error": f"{type(exc).__name__}: {str(exc).strip()[:300]}"}
                        log(traceback.format_exc())
                if key:
                    target[key] = value
                else:
                    result[name] = value
        finally:
            os.chdir(home)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
