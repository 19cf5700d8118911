"""CPU training's memory format: chosen by measurement, cached, applied to weights and clips alike (no timing
asserted: the measurement is replaced where a decision is checked)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import actcli.engine.memory_format as memory_format
from actcli.data.video import ClipSpec
from actcli.engine.memory_format import apply_memory_format, choose_memory_format, uses_channels_last
from actcli.models.zoo import build_model
from actcli.pipeline import clips_to_device, to_device
from actcli.report import read_report

SPEC = ClipSpec(4, 2, 32)
CPU = torch.device("cpu")


def test_apply_and_detect_the_memory_format():
    model = to_device(build_model("r3d_tiny", SPEC, 3), CPU)
    assert uses_channels_last(model)
    apply_memory_format(model, "contiguous")
    assert not uses_channels_last(model)
    clips = torch.randn(2, 3, 4, 32, 32)
    assert clips_to_device(clips, CPU, channels_last=False).is_contiguous()
    assert clips_to_device(clips, CPU).is_contiguous(memory_format=torch.channels_last_3d)
    expected = model.eval()(clips)
    apply_memory_format(model, "channels_last")
    assert torch.allclose(model(clips_to_device(clips, CPU)), expected, atol=1e-5)  # same function either way


def test_auto_measures_once_then_reads_the_cache(monkeypatch, tmp_path: Path):
    model = build_model("r3d_tiny", SPEC, 3)
    cache = tmp_path / "memory_format.json"
    calls = []

    def timed(*args, **kwargs):
        calls.append(args)
        return {"channels_last": 1.0, "contiguous": 0.5}

    monkeypatch.setattr(memory_format, "measure", timed)
    chosen, times = choose_memory_format(model, "r3d_tiny", SPEC, CPU, cache_file=cache)
    assert chosen == "contiguous" and times == {"channels_last": 1.0, "contiguous": 0.5}
    assert choose_memory_format(model, "r3d_tiny", SPEC, CPU, cache_file=cache) == ("contiguous", None)
    assert len(calls) == 1 and list(json.loads(cache.read_text()).values()) == ["contiguous"]
    assert choose_memory_format(model, "r3d_tiny", SPEC, CPU, requested="channels_last") == ("channels_last", None)

    monkeypatch.setattr(memory_format, "measure", lambda *a, **k: {"channels_last": 1.0, "contiguous": 0.95})
    other = ClipSpec(4, 2, 64)  # within the margin: the default stays
    assert choose_memory_format(model, "r3d_tiny", other, CPU, cache_file=cache)[0] == "channels_last"
    monkeypatch.setattr(memory_format, "measure", lambda *a, **k: None)  # too slow to probe
    assert choose_memory_format(model, "r3d_tiny", ClipSpec(8, 2, 32), CPU)[0] == "channels_last"


def test_real_probe_returns_both_timings():
    times = memory_format.measure(build_model("r3d_tiny", SPEC, 3), SPEC, 2, CPU, rounds=1)
    assert times is None or set(times) == {"channels_last", "contiguous"}


def test_train_takes_the_memory_format(cli, annotated, workdir: Path):
    from conftest import TRAIN_FLAGS

    cli("train", "--dataset", "synthetic", "--epochs", "1", "--experiment", "mf2", "--memory-format", "contiguous",
        *TRAIN_FLAGS)
    report = read_report(next((workdir / "outputs" / "runs" / "mf2").glob("*/report-train.json")))
    assert report.config["train"]["memory_format"] == "contiguous"
