"""``actcli test``, ``benchmark`` and ``predict``: use a trained (or exported) model."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

import torch
import torch.nn.functional as F

from actcli import console as ui
from actcli.data.datasets import MultiViewDataset
from actcli.data.synthetic import SyntheticSpec, clip_name, render_clip, write_video
from actcli.data.transforms import eval_transform
from actcli.data.video import centre_clip_start, clip_indices, read_clip, require_readable, resolve_decoder
from actcli.engine import distributed
from actcli.engine.benchmark import benchmark as run_benchmark
from actcli.engine.benchmark import eager_copy
from actcli.engine.evaluate import (
    classification_metrics,
    plot_confusion,
    topk_accuracy,
    write_confusion_csv,
)
from actcli.engine.inference import inference_precision, prepare_for_inference
from actcli.engine.runtimes import RuntimeChoice, prepare_runtime
from actcli.errors import UserError
from actcli.models.checkpoint import (
    clip_of,
    convention_of,
    model_from_checkpoint,
)
from actcli.models.exported import ExportedModel, is_exported, load_exported
from actcli.models.multimodal import HeadsView, MultiModalModel
from actcli.models.zoo import build_model, get_entry
from actcli.pipeline import (
    check_classes,
    clip_dataset,
    clip_spec,
    clips_to_device,
    data_source,
    inputs_of,
    model_config,
    resolve_device,
    split_table,
    to_device,
)
from actcli.report import PredictMetrics, make_report, write_report
from actcli.runs import latest_checkpoint, run_dir_of
from actcli.settings import Settings

DATA_KEYS = ("dataset", "root", "annotations_dir", "no_audio", "motion", "features", "features_fps")
DATASET_KEYS = ("dataset", "root", "annotations_dir")


def runtime_cache(settings: Settings) -> Path:
    """Where converted models (OpenVINO, ONNX) and OpenVINO's compiled models are cached."""
    return settings.paths.outputs / "cache" / "runtimes"


def _load_model(weights: Path, device: torch.device, threads: int | None = None, settings: Settings | None = None):
    """A checkpoint or an exported file (TorchScript / ONNX / OpenVINO IR) ready for inference.

    Returns ``(model, clip spec, classes, model name, checkpoint dict or None, device, convention)``;
    ONNX and IR files run on the CPU (ONNX Runtime, OpenVINO), so ``device`` becomes CPU for them. With
    ``settings``, an IR (or an ONNX file with ``--runtime openvino``) runs at ``test.precision``.
    """
    if is_exported(weights):
        if weights.suffix.lower() in (".onnx", ".xml") and device.type != "cpu":
            ui.warn(f"{weights.suffix} exports run on the CPU (ONNX Runtime / OpenVINO); using device cpu")
            device = torch.device("cpu")
        options = ({"precision": settings.test.precision, "runtime": settings.test.runtime,
                    "cache_dir": runtime_cache(settings) / "compiled"} if settings is not None else {})
        exported = load_exported(weights, device=device, threads=threads, **options)
        return (exported, exported.clip, exported.classes, exported.model_name, None, device,
                exported.convention)
    model, checkpoint = model_from_checkpoint(weights)
    model = to_device(model, device).eval()
    return (model, clip_of(checkpoint), checkpoint["classes"], checkpoint["model"], checkpoint, device,
            convention_of(checkpoint))


def _per_modality_top1(model: torch.nn.Module, dataset, settings: Settings, device: torch.device,
                       bars) -> dict[str, float] | None:
    """Top-1 of each modality's own head of a late-fusion model (None for other models)."""
    if not isinstance(model, MultiModalModel) or model.fusion == "joint":
        return None
    model = to_device(model, device).eval()
    heads = distributed.predict_dataset(HeadsView(model), dataset, settings.test.batch_size, settings.data.workers,
                                        device, bars, "each modality alone")
    if len(heads.labels) == 0:
        return dict.fromkeys(model.modalities, 0.0)
    per_head = heads.logits.split(heads.logits.shape[1] // len(model.modalities), dim=1)
    return {m: topk_accuracy(logits, heads.labels, 1) for m, logits in zip(model.modalities, per_head, strict=True)}


def _precision(settings: Settings, device: torch.device, exported: bool | ExportedModel) -> str:
    """The inference precision to use; exported files run as exported (fp32), except on OpenVINO (an IR,
    or ONNX with ``--runtime openvino``), which runs at ``--precision`` (``auto``: bf16 where native)."""
    if isinstance(exported, ExportedModel) and exported.runtime == "openvino":
        return exported.precision
    if exported:
        if settings.test.precision not in ("auto", "32"):
            ui.warn(f"--precision {settings.test.precision} applies to checkpoints and OpenVINO files; "
                    "this exported file runs in fp32")
        return "32"
    return inference_precision(settings.test.precision, device)


def _inference_model(settings: Settings, model, name: str, spec, classes: list[str], device: torch.device,
                     precision: str, single_input: bool = True) -> tuple[torch.nn.Module, RuntimeChoice]:
    """``model`` on the runtime ``test.runtime`` resolves to (:func:`actcli.engine.runtimes.prepare_runtime`);
    an exported file runs as loaded."""
    if isinstance(model, ExportedModel):
        if settings.test.runtime not in ("auto", model.runtime):
            ui.warn(f"--runtime {settings.test.runtime}: {model.path.name} is a {model.format} export, which runs "
                    f"on {model.runtime}")
        return model, RuntimeChoice(model.runtime, precision, ["exported", model.format], "exported file")
    threads = settings.benchmark.threads
    return prepare_runtime(model, device, precision, settings.test.runtime, model_name=name, clip=spec,
                           classes=classes, single_input=single_input, threads=threads,
                           cache_dir=runtime_cache(settings), warn=ui.warn)


def _checkpoint_path(settings: Settings, weights: Path | None, experiment: str | None) -> Path:
    return weights or latest_checkpoint(settings.paths.outputs, experiment)


def _with_checkpoint_data(settings: Settings, sources: dict[str, str], checkpoint: dict) -> Settings:
    """Use the dataset the checkpoint was trained on unless the user chose one.

    ``dataset``, ``root`` and ``annotations_dir`` go together: once the user names another dataset than
    the checkpoint's, neither its root nor its annotations come from the checkpoint (a checkpoint's
    annotations must never score a dataset the user named), and a class mismatch is then one error
    line. A root or annotations folder given alone keeps the checkpoint's dataset."""
    trained = checkpoint.get("settings", {}).get("data", {})
    chosen = {k for k in DATA_KEYS if sources.get(f"data.{k}") != "default"}
    other_dataset = "dataset" in chosen and settings.data.dataset != trained.get("dataset")
    keys = [k for k in DATA_KEYS if k not in chosen and not (other_dataset and k in DATASET_KEYS)]
    updates = {k: trained[k] for k in keys if k in trained}
    if not updates:
        return settings
    data = settings.data.model_copy(update=updates)
    return settings.model_copy(update={"data": type(settings.data).model_validate(data.model_dump())})


def _report_path(settings: Settings, weights: Path, given: Path | None, name: str) -> Path:
    if given is not None:
        return given
    run_dir = run_dir_of(weights)
    if run_dir is not None:
        return run_dir / name
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return settings.paths.outputs / "reports" / f"{Path(name).stem}-{stamp}.json"


def test(settings: Settings, sources: dict[str, str], weights: Path | None, experiment: str | None,
         report_file: Path | None) -> Path:
    """Evaluate a checkpoint on a split; returns the report path.

    Under torchrun each process predicts a shard and rank 0 writes (:mod:`actcli.engine.distributed`).
    """
    device = distributed.start(resolve_device(settings.train.device))
    if not distributed.is_main():
        ui.silence()
    finished = False
    try:
        report = _test(settings, sources, weights, experiment, report_file, device)
        finished = True
        return report
    finally:
        distributed.stop(barrier=finished)


def _test(settings: Settings, sources: dict[str, str], weights: Path | None, experiment: str | None,
          report_file: Path | None, device: torch.device) -> Path:
    weights = _checkpoint_path(settings, weights, experiment)
    from actcli.commands.sequence import is_sequence_checkpoint, test_sequence

    if not is_exported(weights) and is_sequence_checkpoint(weights):  # over feature sequences: rulstm, avt, ...
        return test_sequence(settings, sources, weights, report_file, device)
    if is_exported(weights):  # an exported file knows its classes, clip and convention, not its dataset
        model, spec, classes, name, _, device, convention = _load_model(weights, device, None, settings)
        checkpoint = {"model": name, "classes": classes, "clip": asdict(spec), "convention": convention.to_dict(),
                      "modalities": ["rgb"], "settings": {}}
    else:
        model, checkpoint = model_from_checkpoint(weights)
    settings = _with_checkpoint_data(settings, sources, checkpoint)
    source = data_source(settings)
    check_classes(weights, checkpoint["classes"], source.classes)
    exported = model if isinstance(model, ExportedModel) else False
    if source.dataset == "ek100":
        from actcli.commands.ek100 import test_ek100

        if exported:
            raise UserError("EK100 tests take actcli checkpoints (verb and noun heads); pass the best.pt")

        if settings.test.observe or settings.test.views != "1x1":
            raise UserError("EK100 tests each segment (or anticipation window) as annotated, one clip of --frames "
                            "times: drop --observe / --views (early windows: annotate --task anticipation --tau-o)")

        prepared, _ = prepare_for_inference(model, device, inference_precision(settings.test.precision, device))
        return test_ek100(settings, prepared, checkpoint, weights, source, device)
    split = settings.test.split
    spec = clip_of(checkpoint)
    if settings.test.observe:
        from actcli.commands.early import early_prediction

        if settings.test.views != "1x1":
            raise UserError("--observe evaluates one centred clip of the observed part: drop --views")
        single = tuple(checkpoint.get("modalities", ["rgb"])) == ("rgb",)
        prepared, choice = _inference_model(settings, model, checkpoint["model"], spec, checkpoint["classes"], device,
                                            _precision(settings, device, exported), single)
        report_path = _report_path(settings, weights, report_file, f"report-early-{split}.json")
        config = {**settings.model_dump(mode="json"), "weights": str(weights), "clip": asdict(spec),
                  **choice.config(), "decoder": source.decoder}
        return early_prediction(settings, prepared, spec, source, device, report_path, config,
                                f"{checkpoint['model']} on {source.dataset} {split}",
                                tuple(checkpoint.get("modalities", ["rgb"])), convention_of(checkpoint))
    temporal, spatial = (int(n) for n in settings.test.views.split("x"))
    modalities = tuple(checkpoint.get("modalities", ["rgb"]))
    if modalities != ("rgb",):
        if settings.test.views != "1x1":
            raise UserError(f"a {'+'.join(modalities)} model is tested on one centred clip per video: drop --views")
        dataset = clip_dataset(source, split, spec, training=False,
                               inputs=inputs_of(settings, modalities, convention_of(checkpoint)))
    else:
        dataset = MultiViewDataset(source.root, split_table(source, split), spec, temporal, spatial, source.decoder,
                                   convention_of(checkpoint))
    precision = _precision(settings, device, exported)
    original = model
    model, choice = _inference_model(settings, model, checkpoint["model"], spec, checkpoint["classes"], device,
                                     precision, modalities == ("rgb",) and not isinstance(model, MultiModalModel))
    with ui.progress() as bars:
        predictions = distributed.predict_dataset(model, dataset, settings.test.batch_size, settings.data.workers,
                                                  device, bars, f"testing on {split} ({choice.name}, precision "
                                                  f"{precision})")
        per_modality = _per_modality_top1(original, dataset, settings, device, bars)
    for path in predictions.skipped:
        ui.warn(f"skipped unreadable video {path}")
    if len(predictions.labels) == 0:
        raise UserError(f"no readable video in the {split} split; check the files under {source.root}")
    metrics, cm = classification_metrics(predictions, source.classes, split)
    metrics.per_modality_top1 = per_modality
    metrics.fusion_weights = original.fusion_weights() if isinstance(original, MultiModalModel) else None
    report_path = _report_path(settings, weights, report_file, f"report-test-{split}.json")
    if not distributed.is_main():
        return report_path  # rank 0 writes
    csv_path = report_path.parent / f"confusion-{split}.csv"
    png_path = report_path.parent / f"confusion-{split}.png"
    write_confusion_csv(cm, source.classes, csv_path)
    plot_confusion(cm, source.classes, png_path, f"{checkpoint['model']} on {source.dataset} {split}")
    config = {**settings.model_dump(mode="json"), "weights": str(weights), "clip": asdict(spec),
              **choice.config(), "decoder": source.decoder}
    report = make_report("test", device, config, metrics,
                         {"weights": weights, "confusion_csv": csv_path, "confusion_png": png_path})
    write_report(report, report_path)
    summary = [["views per video", settings.test.views], ["runtime", choice.name], ["precision", precision],
               *[[f"top-1 {m} alone", f"{a:.3f}"] for m, a in (per_modality or {}).items()],
               *[[f"fusion weight {m}", f"{w:.3f}"] for m, w in (metrics.fusion_weights or {}).items()],
               ["top-1 video (clip)", f"{metrics.top1:.3f} ({metrics.clip_top1:.3f})"],
               ["top-5 video (clip)", f"{metrics.top5:.3f} ({metrics.clip_top5:.3f})"],
               ["mean class accuracy", f"{metrics.mean_class_accuracy:.3f}"],
               ["F1 macro", f"{metrics.f1_macro:.3f}"], ["F1 weighted", f"{metrics.f1_weighted:.3f}"],
               ["clips (skipped)", f"{metrics.clips} ({metrics.skipped_clips})"]]
    per_class = [[n, f"{m.precision:.3f}", f"{m.recall:.3f}", f"{m.f1:.3f}", m.support]
                 for n, m in metrics.per_class.items()]
    ui.console.print(ui.table("per class", ["class", "precision", "recall", "F1", "clips"], per_class))
    ui.console.print(ui.table(f"{checkpoint['model']} on {source.dataset} {split}", ["metric", "value"], summary))
    ui.console.print(f"weights: {weights}")
    ui.console.print(f"report: {report_path}")
    return report_path


def _benchmark_videos(settings: Settings, spec_crop: int, folder: Path) -> tuple[list[Path], str]:
    """Test-split videos of the dataset if available, else two generated synthetic clips."""
    try:
        source = data_source(settings)
        table = split_table(source, settings.test.split)
        return [source.root / p for p in table["path"].head(64)], f"{source.dataset} {settings.test.split}"
    except UserError:
        size = max(spec_crop * 4 // 3, 64)
        spec = SyntheticSpec(width=size + size % 2, height=spec_crop + spec_crop % 2, frames=64)
        videos = []
        for clip in (1, 2):
            path = folder / clip_name("MoveLeft", 1, clip)
            write_video(path, render_clip("MoveLeft", 1, clip, spec))
            videos.append(path)
        return videos, "generated synthetic clips (no dataset found)"


def benchmark(settings: Settings, sources: dict[str, str], weights: Path | None, experiment: str | None,
              model_given: bool, report_file: Path | None) -> Path:
    """Measure latency and throughput; returns the report path."""
    if settings.benchmark.threads:
        torch.set_num_threads(settings.benchmark.threads)
    device = resolve_device(settings.train.device)
    single_input = True
    if model_given and weights is None:
        spec = clip_spec(settings)
        torch.manual_seed(0)  # the same random weights every run: their OpenVINO conversion is cached
        model = build_model(settings.model.name, spec, 400, config=model_config(settings))
        name, weights_used, convention = settings.model.name, None, get_entry(settings.model.name).convention
        classes = [str(i) for i in range(400)]
        model = to_device(model, device)
    else:
        weights_used = _checkpoint_path(settings, weights, experiment)
        model, spec, classes, name, checkpoint, device, convention = _load_model(
            weights_used, device, settings.benchmark.threads, settings)
        if checkpoint is not None:
            settings = _with_checkpoint_data(settings, sources, checkpoint)
            single_input = tuple(checkpoint.get("modalities", ["rgb"])) == ("rgb",)
    bench = settings.benchmark
    decoder = resolve_decoder(settings.data.decoder)
    exported = model if isinstance(model, ExportedModel) else False
    precision = _precision(settings, device, exported)
    reference = bench.reference and not exported
    if bench.reference and not reference:
        ui.warn("exported models have no eager fp32 reference to compare with; timing actcli only")
    eager = eager_copy(model) if reference else None
    model, choice = _inference_model(settings, model, name, spec, classes, device, precision, single_input)
    with tempfile.TemporaryDirectory() as tmp:
        videos, video_source = _benchmark_videos(settings, spec.crop, Path(tmp))
        ui.console.print(f"benchmarking {name} at {spec} on {device}, batch {bench.batch_size}, "
                         f"{bench.warmup} warm-up + {bench.runs} timed runs, runtime {choice.name}, precision "
                         f"{choice.precision}, decoder {decoder}, videos: {video_source}"
                         + (", with the prototype's way alongside" if reference else ""))
        with ui.progress() as bars:
            metrics = run_benchmark(model, spec, videos, device, bench.batch_size, bench.warmup, bench.runs, bars,
                                    decoder, eager, choice.precision, choice.steps, convention)
    metrics.runtime = choice.name
    config = {**settings.model_dump(mode="json"), "model": name, "clip": asdict(spec),
              "weights": str(weights_used) if weights_used else None, "videos": video_source, **choice.config()}
    path = (_report_path(settings, weights_used, report_file, "report-benchmark.json") if weights_used
            else report_file or settings.paths.outputs / "reports"
            / f"benchmark-{name}-{datetime.now():%Y%m%d-%H%M%S}.json")
    write_report(make_report("benchmark", device, config, metrics), path)
    m, e = metrics.model_ms_per_sample, metrics.end_to_end_ms_per_sample
    rows = [["model only", f"{m.p50:.1f}", f"{m.p95:.1f}", f"{metrics.model_throughput_clips_per_s:.1f}"],
            ["end to end", f"{e.p50:.1f}", f"{e.p95:.1f}", f"{metrics.throughput_clips_per_s:.1f}"]]
    ref = metrics.reference
    if ref is not None:
        rows.append(["prototype: model only", f"{ref.model_ms_per_sample.p50:.1f}",
                     f"{ref.model_ms_per_sample.p95:.1f}", f"{1000 / ref.model_ms_per_sample.mean:.1f}"])
        if ref.end_to_end_ms_per_sample is not None:
            rows.append(["prototype: end to end", f"{ref.end_to_end_ms_per_sample.p50:.1f}",
                         f"{ref.end_to_end_ms_per_sample.p95:.1f}", f"{1000 / ref.end_to_end_ms_per_sample.mean:.1f}"])
    ui.console.print(ui.table(f"{name} {spec} on {device}, {choice.name} (threads {torch.get_num_threads()})",
                              ["", "p50 ms/sample", "p95 ms/sample", "clips/s"], rows))
    if ref is not None:
        e2e = f", end to end {ref.end_to_end_speedup:.2f}x faster" if ref.end_to_end_speedup is not None else ""
        ui.console.print(f"actcli vs the prototype's way (p50): model only {ref.model_speedup:.2f}x faster{e2e}")
        if ref.note:
            ui.warn(ref.note)
    ui.console.print(f"report: {path}")
    return path


@torch.inference_mode()
def predict(settings: Settings, video: Path, weights: Path | None, experiment: str | None, top_k: int,
            report_file: Path | None) -> PredictMetrics:
    """The ``top_k`` classes for one video (one centred clip)."""
    require_readable(video)
    weights = _checkpoint_path(settings, weights, experiment)
    device = resolve_device(settings.train.device)
    model, spec, classes, name, checkpoint, device, convention = _load_model(weights, device, None, settings)
    exported = model if isinstance(model, ExportedModel) else False
    single = checkpoint is None or tuple(checkpoint.get("modalities", ["rgb"])) == ("rgb",)
    model, choice = _inference_model(settings, model, name, spec, classes, device,
                                     _precision(settings, device, exported), single)

    def choose(info):
        return clip_indices(info.frames, spec.frames, spec.stride,
                            centre_clip_start(info.frames, spec.frames, spec.stride))

    frames, _ = read_clip(video, choose, resolve_decoder(settings.data.decoder))
    clip = eval_transform(spec.crop, convention)(frames)[None]
    probs = F.softmax(model(clips_to_device(clip, device)).float(), dim=1)[0]
    top = probs.topk(min(top_k, len(classes)))
    result = PredictMetrics(video=str(video), top=[
        {"class": classes[i], "probability": float(p)} for p, i in zip(top.values, top.indices, strict=True)])
    rows = [[r["class"], f"{r['probability']:.3f}"] for r in result.top]
    ui.console.print(ui.table(f"{video.name} ({name})", ["class", "probability"], rows))
    if report_file is not None:
        config = {**settings.model_dump(mode="json"), "weights": str(weights), **choice.config()}
        write_report(make_report("predict", device, config, result), report_file)
        ui.console.print(f"report: {report_file}")
    return result
