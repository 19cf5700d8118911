"""OpenVINO: zoo models convert and match PyTorch, IR exports describe and check themselves, the runtime choice
(auto, fallbacks, cache) and int8 export; correctness only, never time."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import TRAIN_FLAGS, no_temp_files

import actcli.models.openvino_export as ov_export
from actcli.data.video import ClipSpec
from actcli.engine import runtimes
from actcli.errors import UserError
from actcli.models.export import ExportMetadata
from actcli.models.exported import is_exported, load_exported
from actcli.models.zoo import MODELS, build_model
from actcli.report import read_report

pytest.importorskip("openvino")

SMALL = ClipSpec(4, 2, 32)
# One of each kind the zoo holds, at a reduced clip: the zoo table in docs/performance.md lists every model.
REPRESENTATIVE = {
    "x3d_xs": (SMALL, {}),
    "r3d_tiny": (SMALL, {}),
    "slowfast_r50": (ClipSpec(8, 2, 32), {}),
    "mvit_base_16x4": (ClipSpec(4, 2, 32), {}),
    "r2plus1d_18": (SMALL, {}),  # torchvision
    "videomae_small": (SMALL, {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                               "intermediate_size": 128}),  # Hugging Face, narrowed
}


def randomised(name: str, spec: ClipSpec, config: dict, classes: int = 5) -> torch.nn.Module:
    """A zoo model with non-trivial BatchNorm statistics (so folding and conversion are really checked)."""
    torch.manual_seed(0)
    model = build_model(name, spec, classes, config=config)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()


@pytest.mark.parametrize("name", [n for n in REPRESENTATIVE if n in MODELS])
def test_zoo_model_runs_on_openvino_like_pytorch(name: str):
    spec, config = REPRESENTATIVE[name]
    model = randomised(name, spec, config)
    converted, converter = ov_export.to_openvino(model, spec)
    assert "openvino.convert_model" in converter
    runner = ov_export.OpenVINOModel(converted, "32")
    for batch in (1, 3):  # the batch is dynamic in the converted model; each size is compiled statically
        clips = torch.randn(batch, 3, spec.frames, spec.crop, spec.crop, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = model(clips)
        got = runner(clips)
        assert got.dtype == torch.float32 and got.shape == expected.shape
        assert float((got - expected).abs().max()) <= 1e-4
    assert runner.inference_precision() == "f32"


def test_ir_export_describes_itself_and_refuses_damage(tmp_path: Path):
    model = randomised("r3d_tiny", SMALL, {}, classes=3)
    metadata = ExportMetadata("r3d_tiny", SMALL, ("a", "b", "c"))
    path = ov_export.export_openvino(model, torch.zeros(1, 3, 4, 32, 32), tmp_path / "model.xml", metadata)
    assert path.is_file() and path.with_suffix(".bin").is_file() and no_temp_files(tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the staging folder is gone
    assert is_exported(path)
    exported = load_exported(path, precision="32")
    assert (exported.format, exported.runtime, exported.precision) == ("openvino", "openvino", "32")
    assert exported.classes == ["a", "b", "c"] and exported.clip == SMALL and exported.model_name == "r3d_tiny"
    assert exported.metadata.weights_digest == ov_export.file_digest(path.with_suffix(".bin"))
    clips = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        assert float((exported(clips) - model(clips)).abs().max()) <= 1e-4
    with pytest.raises(UserError, match="run on the CPU"):
        exported.to("cuda")

    damaged = tmp_path / "damaged"
    damaged.mkdir()
    shutil.copy(path, damaged / "model.xml")
    data = bytearray(path.with_suffix(".bin").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (damaged / "model.bin").write_bytes(bytes(data))
    with pytest.raises(UserError, match="damaged"):
        load_exported(damaged / "model.xml")
    (damaged / "model.bin").unlink()
    with pytest.raises(UserError, match="without its weights file"):
        load_exported(damaged / "model.xml")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    import openvino as ov

    plain, _ = ov_export.to_openvino(model, SMALL)
    ov.save_model(plain, str(foreign / "plain.xml"))
    with pytest.raises(UserError, match="not an actcli export"):
        load_exported(foreign / "plain.xml")


def test_auto_runtime_picks_openvino_on_cpu_and_falls_back(monkeypatch, tmp_path: Path):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert runtimes.check_runtime("auto", cpu) == "openvino"
    assert runtimes.check_runtime("auto", cuda) == "torch"  # GPUs run on PyTorch
    with pytest.raises(UserError, match="runs on the CPU"):
        runtimes.check_runtime("openvino", cuda)
    model = randomised("r3d_tiny", SMALL, {}, classes=3)
    clips = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        expected = model(clips)
    options = {"model_name": "r3d_tiny", "clip": SMALL, "cache_dir": tmp_path / "cache"}

    net, choice = runtimes.prepare_runtime(model, cpu, "32", "auto", **options)
    assert choice.name == "openvino" and "converted" in choice.steps
    assert float((net(clips) - expected).abs().max()) <= 1e-4
    again, choice = runtimes.prepare_runtime(model, cpu, "32", "auto", **options)  # the conversion is cached
    assert "converted_from_cache" in choice.steps and torch.equal(again(clips), net(clips))
    assert len(list((tmp_path / "cache").glob("*.xml"))) == 1

    net, choice = runtimes.prepare_runtime(model, cpu, "32", "auto", single_input=False, **options)
    assert choice.name == "torch" and "several inputs" in choice.reason

    def fails(*_args, **_kwargs):
        raise ov_export.ConversionError("TorchScript: unsupported operation")

    monkeypatch.setattr(ov_export, "to_openvino", fails)
    warnings: list[str] = []
    fresh = {**options, "cache_dir": tmp_path / "empty"}
    net, choice = runtimes.prepare_runtime(model, cpu, "32", "auto", warn=warnings.append, **fresh)
    assert choice.name == "torch" and len(warnings) == 1 and "unsupported operation" in warnings[0]
    assert float((net(clips) - expected).abs().max()) <= 1e-4
    with pytest.raises(UserError, match="cannot convert"):
        runtimes.prepare_runtime(model, cpu, "32", "openvino", **fresh)

    monkeypatch.setattr(ov_export, "unavailable_reason", lambda: "openvino is not installed")
    assert runtimes.check_runtime("auto", cpu) == "torch"
    with pytest.raises(UserError, match="not installed"):
        runtimes.check_runtime("openvino", cpu)


def test_checkpoint_and_ir_through_the_commands(cli, annotated, workdir: Path):
    """train -> test (auto: OpenVINO; 32 and bf16 agree on top-1) -> export IR -> test / predict / benchmark the
    IR -> export --int8 with its side-by-side report; every report names its runtime."""
    cli("train", "--dataset", "synthetic", "--epochs", "2", "--experiment", "ov", "--model", "r3d_tiny", *TRAIN_FLAGS)
    run = next((workdir / "outputs" / "runs" / "ov").iterdir())
    best = run / "checkpoints" / "best.pt"
    tops = {}
    for precision in ("32", "bf16"):
        cli("test", "--weights", best, "--precision", precision, "--workers", "0", "--report", f"t{precision}.json")
        report = read_report(workdir / f"t{precision}.json")
        assert report.environment.runtime == "openvino" and report.environment.runtime_version
        assert report.config["runtime"] == "openvino" and report.config["precision"] == precision
        tops[precision] = report.metrics["top1"]
    assert tops["32"] == tops["bf16"]
    cli("test", "--weights", best, "--runtime", "torch", "--precision", "32", "--workers", "0", "--report", "tt.json")
    torch_report = read_report(workdir / "tt.json")
    assert torch_report.environment.runtime == "torch" and torch_report.metrics["top1"] == tops["32"]

    out = cli("export", "--weights", best, "--format", "openvino").output
    ir = best.with_suffix(".xml")
    assert ir.is_file() and ir.with_suffix(".bin").is_file() and "max |logit difference| vs PyTorch" in out
    metadata = json.loads(ov_export.core().read_model(str(ir)).get_rt_info(["actcli"]).astype(str))
    assert metadata["classes"] == ["MoveLeft", "MoveRight", "MoveUp"] and metadata["clip"]["crop"] == 32
    assert metadata["input"]["mean"] and "centre crop" in metadata["input"]["preprocessing"]
    cli("test", "--weights", ir, "--dataset", "synthetic", "--precision", "32", "--workers", "0",
        "--report", "tir.json")
    ir_report = read_report(workdir / "tir.json")
    assert ir_report.environment.runtime == "openvino" and ir_report.metrics["top1"] == tops["32"]
    video = annotated / "MoveUp" / "v_MoveUp_g01_c01.avi"
    cli("predict", video, "--weights", ir, "--report", "p.json")
    assert read_report(workdir / "p.json").environment.runtime == "openvino"
    cli("benchmark", "--weights", best, "--runs", "2", "--warmup", "1", "--report", "b.json")
    bench = read_report(workdir / "b.json")
    assert bench.metrics["runtime"] == "openvino" and bench.environment.runtime == "openvino"
    assert "openvino" in bench.metrics["optimizations"] and bench.metrics["reference"] is not None

    out = cli("export", "--weights", best, "--format", "openvino", "--int8", "--calibration-clips", "4",
              "--workers", "0", "--out", workdir / "int8.xml").output
    assert "int8 vs" in out and "top-1" in out
    report = read_report(workdir / "report-export-int8.json")
    assert report.command == "export" and report.metrics["calibration_clips"] == 4
    variants = report.metrics["variants"]
    assert {"fp32", "int8"} <= set(variants) and all(v["top1"] is not None for v in variants.values())
    assert report.metrics["test_clips"] == read_report(workdir / "t32.json").metrics["clips"]
    int8 = load_exported(workdir / "int8.xml")
    assert int8.metadata.extra["int8"]["calibration_clips"] == 4
    assert ov_export.describe_precisions(int8.runner.model).get("i8", 0) > 0
    assert "int8 quantises OpenVINO" in cli.fails("export", "--weights", best, "--int8")
    assert no_temp_files(workdir)
