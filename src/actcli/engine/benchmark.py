"""Honest latency and throughput: warm-up, device synchronisation, percentiles.

Two measurements, both per sample (batch time / batch size):

* **model**: one forward pass on a ready ``float [B, C, T, H, W]`` tensor on the device;
* **end to end**: decode the clip's frames from the video file, transform, stack, copy to
  the device and run the model; what a user waits for when classifying files.

Each is run ``warmup`` times untimed, then ``runs`` times timed; on CUDA the device is
synchronised before reading the clock, so queued kernels are counted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from rich.progress import Progress

from actcli.data.transforms import eval_transform
from actcli.data.video import ClipSpec, centre_clip_start, clip_indices, read_clip
from actcli.pipeline import clips_to_device
from actcli.report import BenchmarkMetrics, Percentiles


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (CUDA/MPS); a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def percentiles(values: Sequence[float]) -> Percentiles:
    """p50, p95 (nearest-rank on the sorted values) and mean."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(0.95 * len(ordered)) - 1))
    return Percentiles(p50=statistics.median(ordered), p95=ordered[rank], mean=statistics.fmean(ordered))


def time_runs(
    step: Callable[[], object],
    device: torch.device,
    warmup: int,
    runs: int,
    progress: Progress | None = None,
    description: str = "",
) -> list[float]:
    """Seconds per call of ``step`` over ``runs`` timed calls after ``warmup`` untimed ones."""
    task = progress.add_task(description, total=warmup + runs) if progress else None
    times = []
    for i in range(warmup + runs):
        synchronize(device)
        start = time.perf_counter()
        step()
        synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
        if progress is not None and task is not None:
            progress.advance(task)
    if progress is not None and task is not None:
        progress.remove_task(task)
    return times


def load_batch(videos: Sequence[Path], spec: ClipSpec, decoder: str = "pyav") -> torch.Tensor:
    """Decode (with ``decoder``) and transform one centred clip per video: ``float [B, C, T, H, W]``."""
    transform = eval_transform(spec.crop)

    def choose(info):
        start = centre_clip_start(info.frames, spec.frames, spec.stride)
        return clip_indices(info.frames, spec.frames, spec.stride, start)

    return torch.stack([transform(read_clip(v, choose, decoder)[0]) for v in videos])


@torch.inference_mode()
def benchmark(
    model: torch.nn.Module,
    spec: ClipSpec,
    videos: Sequence[Path],
    device: torch.device,
    batch_size: int,
    warmup: int,
    runs: int,
    progress: Progress | None = None,
) -> BenchmarkMetrics:
    """Measure ``model`` alone and end to end on batches of ``batch_size`` clips.

    End-to-end batches cycle through ``videos``; each timed run decodes fresh files.
    """
    model.eval()
    clips = torch.randn(batch_size, 3, spec.frames, spec.crop, spec.crop)
    ready = clips_to_device(clips, device)
    model_times = time_runs(lambda: model(ready), device, warmup, runs, progress, "model only")

    cursor = 0

    def end_to_end() -> torch.Tensor:
        nonlocal cursor
        chosen = [videos[(cursor + i) % len(videos)] for i in range(batch_size)]
        cursor += batch_size
        return model(clips_to_device(load_batch(chosen, spec), device))

    e2e_times = time_runs(end_to_end, device, warmup, runs, progress, "end to end")
    per_sample = lambda times: [1000.0 * t / batch_size for t in times]  # noqa: E731
    return BenchmarkMetrics(
        batch_size=batch_size,
        runs=runs,
        warmup=warmup,
        model_ms_per_sample=percentiles(per_sample(model_times)),
        end_to_end_ms_per_sample=percentiles(per_sample(e2e_times)),
        throughput_clips_per_s=batch_size / statistics.fmean(e2e_times),
        model_throughput_clips_per_s=batch_size / statistics.fmean(model_times),
    )
