"""Honest latency and throughput: warm-up, device synchronisation, percentiles.

Two measurements, both per sample (batch time / batch size):

* **model**: one forward pass on a ready ``float [B, C, T, H, W]`` tensor on the device;
* **end to end**: decode the clip's frames from the video file, transform, stack, copy to
  the device and run the model; what a user waits for when classifying files.

Each is run ``warmup`` times untimed, then ``runs`` times timed; on CUDA the device is
synchronised before reading the clock, so queued kernels are counted.

With ``reference=True`` the prototype's way is timed the same way, interleaved run by run
so machine noise hits both alike: a copy of the model in eager fp32, contiguous memory
format, under ``no_grad`` (model only), fed by decoding each whole video with PyAV and
picking the clip's frames (end to end). The report gives both and the p50 ratios.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import av
import numpy as np
import torch
from rich.progress import Progress

from actcli.data.transforms import eval_transform
from actcli.data.video import ClipSpec, DecodeError, centre_clip_start, clip_indices, probe, read_clip
from actcli.models.convention import PYTORCHVIDEO, Convention
from actcli.pipeline import clips_to_device
from actcli.report import BenchmarkMetrics, Percentiles, ReferenceMetrics


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
    steps: Sequence[Callable[[], object]],
    device: torch.device,
    warmup: int,
    runs: int,
    progress: Progress | None = None,
    description: str = "",
) -> list[list[float]]:
    """Seconds per call of each of ``steps`` over ``runs`` timed rounds after ``warmup`` untimed ones.

    Within a round the steps run one after the other, so slow phases of a shared machine
    hit every step alike. Returns one list of ``runs`` durations per step.
    """
    task = progress.add_task(description, total=warmup + runs) if progress else None
    times: list[list[float]] = [[] for _ in steps]
    for i in range(warmup + runs):
        for step, spent in zip(steps, times, strict=True):
            synchronize(device)
            start = time.perf_counter()
            step()
            synchronize(device)
            if i >= warmup:
                spent.append(time.perf_counter() - start)
        if progress is not None and task is not None:
            progress.advance(task)
    if progress is not None and task is not None:
        progress.remove_task(task)
    return times


def load_batch(videos: Sequence[Path], spec: ClipSpec, decoder: str = "pyav",
               convention: Convention = PYTORCHVIDEO) -> torch.Tensor:
    """Decode (with ``decoder``) and transform one centred clip per video (normalised with the model's
    ``convention``): ``float [B, C, T, H, W]``."""
    transform = eval_transform(spec.crop, convention)

    def choose(info):
        start = centre_clip_start(info.frames, spec.frames, spec.stride)
        return clip_indices(info.frames, spec.frames, spec.stride, start)

    return torch.stack([transform(read_clip(v, choose, decoder)[0]) for v in videos])


REFERENCE_DECODE_CAP = 1 << 30  # bytes of RGB frames the prototype's whole-video reader may hold (1 GiB)


def whole_video_bytes(path: Path) -> int:
    """Bytes of RGB frames :func:`whole_video` holds for ``path`` (from its header)."""
    info = probe(path)
    return info.frames * info.width * info.height * 3


def whole_video(path: Path, max_bytes: int = REFERENCE_DECODE_CAP) -> torch.Tensor:
    """The prototype's reader: every frame of ``path`` decoded with PyAV, ``uint8 [T, C, H, W]``; a video
    whose frames pass ``max_bytes`` (the header lied) raises :class:`DecodeError` instead of exhausting memory."""
    frames, held = [], 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            array = frame.to_ndarray(format="rgb24")
            held += array.nbytes
            if held > max_bytes:
                raise DecodeError(f"{path} holds more than {max_bytes / 2**30:.1f} GiB of frames")
            frames.append(array)
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


def load_batch_whole_video(videos: Sequence[Path], spec: ClipSpec, convention: Convention = PYTORCHVIDEO
                           ) -> torch.Tensor:
    """:func:`load_batch` the prototype's way: decode each whole video, then pick the centred clip."""
    transform = eval_transform(spec.crop, convention)
    clips = []
    for video in videos:
        frames = whole_video(video)
        start = centre_clip_start(len(frames), spec.frames, spec.stride)
        clips.append(transform(frames[clip_indices(len(frames), spec.frames, spec.stride, start)]))
    return torch.stack(clips)


def eager_copy(model: torch.nn.Module) -> torch.nn.Module:
    """The model as the prototype ran it: a copy in default (contiguous) memory format, eval mode."""
    return copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()


def benchmark(
    model: torch.nn.Module,
    spec: ClipSpec,
    videos: Sequence[Path],
    device: torch.device,
    batch_size: int,
    warmup: int,
    runs: int,
    progress: Progress | None = None,
    decoder: str = "pyav",
    eager: torch.nn.Module | None = None,
    precision: str = "32",
    optimizations: Sequence[str] = (),
    convention: Convention = PYTORCHVIDEO,
) -> BenchmarkMetrics:
    """Measure ``model`` alone and end to end on batches of ``batch_size`` clips.

    ``model`` is timed as given (e.g. prepared by :func:`actcli.engine.inference.prepare_for_inference`;
    ``precision`` and ``optimizations`` only label the report). End-to-end batches cycle through
    ``videos``; each timed run decodes fresh files with ``decoder``. With ``eager`` (see
    :func:`eager_copy`), the prototype's way is timed alongside (module docstring).
    """
    model.eval()
    reference = eager is not None
    clips = torch.randn(batch_size, 3, spec.frames, spec.crop, spec.crop)
    ready = clips_to_device(clips, device)
    if getattr(model, "wants_contiguous", False):  # OpenVINO takes numpy arrays: channels-last would be copied
        ready = ready.contiguous()
    eager_input = clips.to(device) if reference else None
    cursor = {"actcli": 0, "reference": 0}
    # The prototype decodes whole videos: long ones would need gigabytes, so they are left out of its timing.
    fits = [v for v in videos if whole_video_bytes(v) <= REFERENCE_DECODE_CAP] if reference else []
    pools = {"actcli": list(videos), "reference": fits}

    def next_videos(who: str) -> list[Path]:
        pool = pools[who]
        chosen = [pool[(cursor[who] + i) % len(pool)] for i in range(batch_size)]
        cursor[who] += batch_size
        return chosen

    @torch.inference_mode()
    def model_only() -> torch.Tensor:
        return model(ready)

    @torch.inference_mode()
    def end_to_end() -> torch.Tensor:
        return model(clips_to_device(load_batch(next_videos("actcli"), spec, decoder, convention), device))

    @torch.no_grad()
    def reference_model_only() -> torch.Tensor:
        return eager(eager_input)

    @torch.no_grad()
    def reference_end_to_end() -> torch.Tensor:
        return eager(load_batch_whole_video(next_videos("reference"), spec, convention).to(device))

    model_steps = [model_only, reference_model_only] if reference else [model_only]
    e2e_steps = [end_to_end, reference_end_to_end] if reference and fits else [end_to_end]
    model_times = time_runs(model_steps, device, warmup, runs, progress, "model only")
    e2e_times = time_runs(e2e_steps, device, warmup, runs, progress, "end to end")
    per_sample = lambda times: percentiles([1000.0 * t / batch_size for t in times])  # noqa: E731
    metrics = BenchmarkMetrics(
        batch_size=batch_size,
        runs=runs,
        warmup=warmup,
        model_ms_per_sample=per_sample(model_times[0]),
        end_to_end_ms_per_sample=per_sample(e2e_times[0]),
        throughput_clips_per_s=batch_size / statistics.fmean(e2e_times[0]),
        model_throughput_clips_per_s=batch_size / statistics.fmean(model_times[0]),
        decoder=decoder,
        precision=precision,
        optimizations=list(optimizations),
    )
    if reference:
        ref_model = per_sample(model_times[1])
        ref_e2e = per_sample(e2e_times[1]) if fits else None
        left_out = len(videos) - len(fits)
        metrics.reference = ReferenceMetrics(
            model_ms_per_sample=ref_model,
            end_to_end_ms_per_sample=ref_e2e,
            model_speedup=ref_model.p50 / metrics.model_ms_per_sample.p50,
            end_to_end_speedup=ref_e2e.p50 / metrics.end_to_end_ms_per_sample.p50 if ref_e2e else None,
            videos_left_out=left_out,
            note=(f"{left_out} video(s) longer than the prototype's reader can hold in "
                  f"{REFERENCE_DECODE_CAP / 2**30:.0f} GiB were left out of its end-to-end timing"
                  + ("; none was left, so it is not timed" if not fits else "")) if left_out else None,
        )
    return metrics
