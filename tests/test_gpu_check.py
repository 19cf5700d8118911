"""benchmarks/gpu_check.sh: valid bash, and on a machine without a GPU one JSON line saying so, quickly;
``--decoder torchcodec-cuda`` falls back to CPU decoding with one warning line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import actcli.data.torchcodec_video as torchcodec_video
import actcli.data.video as video
from actcli.data.video import DECODERS, resolve_decoder
from actcli.errors import UserError
from actcli.settings import load_settings

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.sh"


def test_gpu_check_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    subprocess.run([sys.executable, "-m", "py_compile", str(SCRIPT.with_suffix(".py"))], check=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the check would measure it")
def test_gpu_check_without_a_gpu_prints_one_json_line():
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(Path.home())})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert result["gpu"] is None and "no CUDA GPU" in result["status"]
    assert result["decoder_torchcodec_cuda"].startswith("falls back to")
    assert result["seconds"] < 60


def test_torchcodec_cuda_falls_back_with_one_warning(monkeypatch):
    warnings: list[str] = []
    monkeypatch.setattr(video, "_WARNED", set())
    monkeypatch.setattr("actcli.console.warn", warnings.append)
    monkeypatch.setattr(torchcodec_video, "cuda_unavailable_reason", lambda: "no CUDA GPU is visible")
    assert "torchcodec-cuda" in DECODERS
    expected = resolve_decoder("auto")
    assert resolve_decoder("torchcodec-cuda") == expected  # CPU decoding, as auto picks it
    assert resolve_decoder("torchcodec-cuda") == expected
    assert len(warnings) == 1 and "torchcodec-cuda" in warnings[0] and "no CUDA GPU" in warnings[0]
    monkeypatch.setattr(torchcodec_video, "cuda_unavailable_reason", lambda: None)
    assert resolve_decoder("torchcodec-cuda") == "torchcodec-cuda"
    with pytest.raises(UserError, match="unknown decoder"):
        resolve_decoder("nvdec")


def test_torchcodec_cuda_is_a_setting():
    settings, _ = load_settings(None, {"data.decoder": "torchcodec-cuda"})
    assert settings.data.decoder == "torchcodec-cuda"
