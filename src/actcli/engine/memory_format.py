"""The memory format a model trains in on the CPU: channels-last-3d or contiguous, chosen by measurement.

Channels-last-3d memory made X3D-XS's training step 1.2-1.5x faster on this project's 2-core Xeon, but
r3d_tiny's (narrow convolutions, BatchNorm-heavy: channels-last BatchNorm backward is slow on the CPU)
about 1.25x slower, and ResNet-50-sized 3D networks were faster contiguous too (docs/performance.md).
No rule by architecture held, so ``train.memory_format = "auto"`` times forward and backward passes in
each format (the median of 3 alternating rounds after a warm-up of each, on a copy of the model, a
training batch of random clips, at the training precision) and keeps channels-last unless contiguous is at
least :data:`MARGIN` faster. Models whose step is too slow to time within :data:`PROBE_SECONDS` (X3D-XS at
its native clip on 2 cores, where channels-last wins) keep channels-last without probing.
The choice is cached per model, clip, precision, threads and CPU in
``<outputs>/cache/memory_format.json``, so a run, its resume and the next run of the same model agree
without measuring again. GPUs keep PyTorch's default (contiguous; channels-last is for autocast runs
on tensor cores, which the GPU check measures).
"""

from __future__ import annotations

import contextlib
import copy
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from actcli.data.video import ClipSpec
from actcli.engine.recipe import autocast
from actcli.fileio import write_json

MemoryFormat = Literal["channels_last", "contiguous"]
PROBE_SECONDS = 4.0
"""Most time the probe may take: a model whose warm-up step takes over a quarter of it keeps channels-last."""
MARGIN = 1.10
"""Contiguous memory is chosen only when at least this much faster (timing noise keeps the old default)."""


def uses_channels_last(model: nn.Module) -> bool:
    """Whether ``model``'s first 3D convolution holds its weight in channels-last-3d memory (clips should too)."""
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            weight = module.weight
            return weight.is_contiguous(memory_format=torch.channels_last_3d) and not weight.is_contiguous()
    return False


def apply_memory_format(model: nn.Module, chosen: MemoryFormat) -> nn.Module:
    """Put every ``Conv3d`` weight of ``model`` in ``chosen`` memory format, in place."""
    memory_format = torch.channels_last_3d if chosen == "channels_last" else torch.contiguous_format
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            module.to(memory_format=memory_format)
    return model


def _step_seconds(model: nn.Module, clips: torch.Tensor, device: torch.device, precision: str) -> float:
    started = time.perf_counter()
    with autocast(device, precision):
        out = model(clips)
    out.float().sum().backward()
    return time.perf_counter() - started


def measure(model: nn.Module, spec: ClipSpec, batch: int, device: torch.device, precision: str = "32",
            rounds: int = 3) -> dict[str, float] | None:
    """Median seconds of a forward + backward pass on ``batch`` random clips in each format over ``rounds``
    rounds (after a warm-up of each; the formats alternate so machine noise hits both), or None when the
    warm-up step shows the probe would take longer than :data:`PROBE_SECONDS`."""
    net = copy.deepcopy(model).to(device).train()
    for param in net.parameters():
        param.grad = None
    clips = torch.randn(batch, 3, spec.frames, spec.crop, spec.crop, device=device)
    formats: dict[MemoryFormat, torch.Tensor] = {
        "channels_last": clips.contiguous(memory_format=torch.channels_last_3d), "contiguous": clips.contiguous()}
    times: dict[str, list[float]] = {name: [] for name in formats}
    for name, inputs in formats.items():  # warm-ups: oneDNN creates its primitives on first use
        apply_memory_format(net, name)
        if _step_seconds(net, inputs, device, precision) > PROBE_SECONDS:
            return None
    for _ in range(rounds):
        for name, inputs in formats.items():
            apply_memory_format(net, name)
            times[name].append(_step_seconds(net, inputs, device, precision))
            if times[name][0] * 2 * rounds > PROBE_SECONDS:
                return None
    return {name: statistics.median(spent) for name, spent in times.items()}


def cache_key(model_name: str, spec: ClipSpec, precision: str, batch: int) -> str:
    return (f"{model_name}|{spec}|batch {batch}|{precision}|threads {torch.get_num_threads()}|"
            f"torch {torch.__version__}|{platform.processor() or platform.machine()}")


def choose_memory_format(model: nn.Module, model_name: str, spec: ClipSpec, device: torch.device,
                         precision: str = "32", requested: str = "auto", cache_file: Path | None = None,
                         batch: int = 8) -> tuple[MemoryFormat, dict[str, float] | None]:
    """The memory format ``model`` trains in (module docstring) and the timings behind an ``auto`` choice
    (None when given, cached or not measured)."""
    if requested in ("channels_last", "contiguous"):
        return requested, None  # type: ignore[return-value]
    if device.type != "cpu" or not any(isinstance(m, nn.Conv3d) for m in model.modules()):
        return "contiguous" if device.type != "cpu" else "channels_last", None
    key = cache_key(model_name, spec, precision, batch)
    cached: dict[str, str] = {}
    if cache_file is not None and cache_file.is_file():
        try:
            cached = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cached = {}
        if cached.get(key) in ("channels_last", "contiguous"):
            return cached[key], None  # type: ignore[return-value]
    times = measure(model, spec, batch, device, precision)
    if times is None:  # too slow to probe: the default, channels-last
        return "channels_last", None
    chosen: MemoryFormat = "contiguous" if times["contiguous"] * MARGIN <= times["channels_last"] else "channels_last"
    if cache_file is not None:
        with contextlib.suppress(Exception):  # a read-only outputs folder: measure again next time
            write_json(cache_file, {**cached, key: chosen})
    return chosen, times
