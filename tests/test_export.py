"""`actcli export`: TorchScript and ONNX files that match PyTorch and describe themselves (train-free)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from conftest import Cli, no_temp_files

import actcli.commands.export as export_command
import actcli.models.export as export_module
from actcli.data.video import ClipSpec
from actcli.errors import UserError
from actcli.models.checkpoint import save_checkpoint
from actcli.models.export import (
    EXPORT_FORMAT,
    ExportMetadata,
    export_onnx,
)
from actcli.models.exported import is_exported, load_exported, max_logit_difference
from actcli.models.zoo import ActionModel, build_model

SPEC = ClipSpec(4, 2, 32)
CLASSES = ["Jump", "MoveLeft", "Spin"]
MODELS = ("x3d_xs", "r3d_tiny")
FORMATS = ("torchscript", "onnx")


def randomised(name: str, seed: int) -> ActionModel:
    """A zoo model whose BatchNorm statistics and affine terms are not the identity."""
    torch.manual_seed(seed)
    model = build_model(name, SPEC, len(CLASSES))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0, 0.1)
    return model.eval()


def checkpoint(folder: Path, name: str, model: ActionModel, file: str | None = None) -> Path:
    path = folder / (file or f"{name}.pt")
    save_checkpoint(path, model, model_name=name, clip=SPEC, classes=CLASSES, settings={}, epoch=3)
    return path


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple[ActionModel, Path, str]]:
    """Each model exported to each format through the CLI: (model, fmt) -> (model, file, output)."""
    folder = tmp_path_factory.mktemp("export")
    cli = Cli()
    made = {}
    for i, name in enumerate(MODELS):
        model = randomised(name, seed=i)
        weights = checkpoint(folder, name, model)
        for fmt in FORMATS:
            # torchscript next to the checkpoint by default; onnx to an explicit --out
            out = folder / "exported" / f"{name}-model.onnx" if fmt == "onnx" else weights.with_suffix(".ts")
            args = ["export", "--weights", weights, "--format", fmt] + (["--out", out] if fmt == "onnx" else [])
            result = cli(*args)
            assert out.is_file()
            made[name, fmt] = (model, out, result.output)
    assert no_temp_files(folder)
    return made


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", MODELS)
def test_exported_logits_match_pytorch(exports, name: str, fmt: str):
    model, path, output = exports[name, fmt]
    assert str(path) in output and "max |logit difference| vs PyTorch" in output
    exported = load_exported(path)
    for batch in (1, 3):  # the batch dimension is dynamic
        clips = torch.randn(batch, 3, SPEC.frames, SPEC.crop, SPEC.crop, generator=torch.Generator().manual_seed(batch))
        with torch.inference_mode():
            expected = model.eval()(clips)
        logits = exported(clips)
        assert logits.shape == (batch, len(CLASSES))
        assert (logits - expected).abs().max().item() <= 1e-4
    assert (expected.std(dim=1) > 1e-3).all()  # the comparison is not between constants


@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_round_trips(exports, fmt: str):
    _, path, _ = exports["x3d_xs", fmt]
    exported = load_exported(path)
    assert exported.format == fmt
    assert exported.model_name == "x3d_xs"
    assert exported.classes == CLASSES
    assert exported.clip == SPEC
    assert exported.metadata.extra["epoch"] == 3
    # readable without actcli, with the file format's own tools
    if fmt == "onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        raw = json.loads(props["actcli"])
        assert [i.name for i in onnx.load(str(path)).graph.input] == ["clips"]
    else:
        extra = {"actcli.json": ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.load(str(path), _extra_files=extra)
        raw = json.loads(extra["actcli.json"])
    assert raw["format"] == EXPORT_FORMAT
    assert raw["model"] == "x3d_xs" and raw["classes"] == CLASSES
    assert raw["clip"] == {"frames": 4, "stride": 2, "crop": 32}
    assert raw["input"]["shape"] == [None, 3, 4, 32, 32] and raw["input"]["mean"] == [0.45] * 3


def test_is_exported_by_suffix_or_content(exports, tmp_path: Path):
    _, ts, _ = exports["r3d_tiny", "torchscript"]
    _, onnx_file, _ = exports["r3d_tiny", "onnx"]
    weights = ts.with_suffix(".pt")
    assert is_exported(ts) and is_exported(onnx_file) and not is_exported(weights)
    assert is_exported(tmp_path / "missing.onnx") and not is_exported(tmp_path / "missing.pt")
    for source, expected in ((ts, True), (onnx_file, True), (weights, False)):
        renamed = tmp_path / f"{source.stem}-{source.suffix[1:]}.bin"
        shutil.copy(source, renamed)
        assert is_exported(renamed) is expected
        if expected:  # the kind is read from the content, not the suffix
            assert load_exported(renamed).classes == CLASSES


def test_exported_model_checks_input_and_device(exports):
    exported = load_exported(exports["r3d_tiny", "onnx"][1])
    with pytest.raises(ValueError, match=r"takes clips \[B, 3, 4, 32, 32\]"):
        exported(torch.zeros(1, 3, 8, 32, 32))
    with pytest.raises(UserError, match="ONNX exports run on the CPU"):
        exported.to("cuda")
    assert exported.eval() is exported.to("cpu") is exported


def test_default_weights_are_the_latest_run(workdir: Path, cli):
    run = workdir / "outputs" / "runs" / "exp" / "20260101-000000"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.toml").write_text("")
    model = randomised("r3d_tiny", seed=5)
    best = checkpoint(run / "checkpoints", "r3d_tiny", model, "best.pt")
    cli("export", "--experiment", "exp", "--format", "TorchScript")
    assert load_exported(best.with_suffix(".ts")).model_name == "r3d_tiny"
    assert no_temp_files(workdir)


def test_legacy_exporter_and_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    model = randomised("r3d_tiny", seed=7)
    example = torch.zeros(1, 3, SPEC.frames, SPEC.crop, SPEC.crop)
    metadata = ExportMetadata("r3d_tiny", SPEC, tuple(CLASSES))
    legacy = load_exported(export_onnx(model, example, tmp_path / "legacy.onnx", metadata, exporter="legacy"))
    assert "legacy" in legacy.metadata.exporter
    assert max_logit_difference(model, legacy, batch=3) <= 1e-4

    def broken(*_args):
        raise RuntimeError("dynamo cannot export this")

    monkeypatch.setattr(export_module, "_onnx_dynamo", broken)
    with pytest.warns(RuntimeWarning, match="dynamo cannot export this"):
        fallback = load_exported(export_onnx(model, example, tmp_path / "auto.onnx", metadata))
    assert "legacy" in fallback.metadata.exporter
    with pytest.raises(RuntimeError, match="dynamo cannot export"):
        export_onnx(model, example, tmp_path / "dynamo.onnx", metadata, exporter="dynamo")


def test_bad_input_is_one_error_line(workdir: Path, cli, monkeypatch: pytest.MonkeyPatch):
    weights = checkpoint(workdir, "r3d_tiny", randomised("r3d_tiny", seed=1))
    assert "unknown export format 'tflite'" in cli.fails("export", "--weights", weights, "--format", "tflite")
    assert "not found" in cli.fails("export", "--weights", workdir / "nope.pt")
    assert "no trained checkpoint" in cli.fails("export", "--format", "onnx")
    garbage = workdir / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert "garbage.pt" in cli.fails("export", "--weights", garbage)
    assert "is the checkpoint itself" in cli.fails("export", "--weights", weights, "--out", weights)
    # an export that does not match PyTorch is not put in place
    monkeypatch.setattr(export_command, "max_logit_difference", lambda *a, **k: 0.5)
    line = cli.fails("export", "--weights", weights, "--format", "torchscript")
    assert "does not match PyTorch" in line and "nothing written" in line
    assert not weights.with_suffix(".ts").exists() and no_temp_files(workdir)


def test_loading_files_that_are_not_actcli_exports(exports, tmp_path: Path):
    with pytest.raises(UserError, match="not found"):
        load_exported(tmp_path / "missing.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("hello")
    with pytest.raises(UserError, match="neither a TorchScript nor an ONNX model"):
        load_exported(text)
    with pytest.raises(UserError, match="PyTorch checkpoint, not an exported model"):
        load_exported(exports["r3d_tiny", "torchscript"][1].with_suffix(".pt"))
    import onnx

    foreign = onnx.load(str(exports["r3d_tiny", "onnx"][1]))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    with pytest.raises(UserError, match="ONNX model but not an actcli export"):
        load_exported(tmp_path / "foreign.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(torch.nn.Identity(), torch.zeros(1)), str(tmp_path / "foreign.ts"))
    with pytest.raises(UserError, match="TorchScript file but not an actcli export"):
        load_exported(tmp_path / "foreign.ts")


def test_predict_and_benchmark_take_exported_files(cli, annotated, workdir):
    from conftest import TRAIN_FLAGS

    cli("train", "--dataset", "synthetic", "--epochs", "1", "--experiment", "exp", "--model", "r3d_tiny", *TRAIN_FLAGS)
    video = annotated / "MoveUp" / "v_MoveUp_g01_c01.avi"
    for fmt, suffix in (("torchscript", ".ts"), ("onnx", ".onnx")):
        out = workdir / f"model{suffix}"
        cli("export", "--experiment", "exp", "--format", fmt, "--out", out)
        cli("predict", video, "--weights", out, "--top-k", "2", "--report", workdir / f"p{suffix}.json")
        cli("benchmark", "--weights", out, "--runs", "2", "--warmup", "1", "--report", workdir / f"b{suffix}.json")
    from actcli.report import read_report

    pt = read_report(workdir / "p.ts.json").metrics["top"]
    onnx = read_report(workdir / "p.onnx.json").metrics["top"]
    assert [r["class"] for r in pt] == [r["class"] for r in onnx]
    assert abs(pt[0]["probability"] - onnx[0]["probability"]) < 1e-4
    assert read_report(workdir / "b.onnx.json").metrics["model_ms_per_sample"]["p50"] > 0
