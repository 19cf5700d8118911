"""``actcli train`` and ``actcli test`` for sequence models (``--model rulstm|avt|attentive_probe|early_lstm``).

Training reads feature sequences (:mod:`actcli.data.sequences`) from ``--features`` (one store, or
``rgb=PATH,flow=PATH,obj=PATH``) or from features extracted on the fly with ``--backbone M
--backbone-weights W`` (:func:`actcli.commands.extract.cached_store`), and trains with the common
:class:`~actcli.engine.train.Trainer` (checkpoints, TensorBoard, early stopping) under
:class:`~actcli.engine.sequence_objective.SequenceObjective`. RULSTM first trains ``pretrain_epochs``
of sequence completion.

Testing an anticipation model scores every ``--tau-a`` in one command (:mod:`actcli.engine.anticipation`:
top-1/5, class-mean top-5 recall, the baselines, the grammar's best when the dataset states one, a PNG
against ``tau_a``); on EK100 it also writes the challenge submission of the annotated ``tau_a`` and
scores it as the official evaluator does. Testing an early model with ``--observe`` reads every ratio's
prediction from one pass.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from actcli import console as ui
from actcli.data.datasets import make_loader
from actcli.data.features import FeatureStore
from actcli.data.segments import TaskSpec, dropped_total, read_task
from actcli.data.sequences import (
    SegmentRows,
    SequenceDataset,
    check_rate,
    ek100_rows,
    generic_rows,
    steps_for,
    stream_paths,
)
from actcli.data.video import ClipSpec, DecodeError
from actcli.engine.distributed import predict_dataset
from actcli.engine.evaluate import Predictions, classification_metrics, topk_accuracy
from actcli.engine.recipe import fill_defaults
from actcli.engine.sequence_objective import SequenceObjective
from actcli.engine.train import Trainer
from actcli.errors import UserError
from actcli.models.checkpoint import load_checkpoint, load_state, save_checkpoint
from actcli.models.sequence import (
    ARCHITECTURE,
    EARLY,
    RECIPES,
    STEP_LABELS,
    TUNABLE,
    SequenceConfig,
    build_sequence_model,
)
from actcli.pipeline import DataSource, check_classes, data_source, resolve_device
from actcli.report import AnticipationMetrics, EarlyMetrics, TrainMetrics, make_report, write_report
from actcli.runs import BEST, LAST, new_run_dir, run_dir_of
from actcli.settings import Settings, anticipation_times, observe_ratios, parse_model_config, to_toml

HEADS_EK100 = (97, 300)
SMALL_WIDTH = 256


def cpu_threads(config: SequenceConfig, device: torch.device) -> None:
    """One CPU thread for narrow models: their matrix products are too small to share, and a second thread
    that waits for a busy core made a 64-wide RULSTM batch 40x slower on this 2-core machine (50 ms -> 2 s)."""
    if device.type == "cpu" and config.hidden <= SMALL_WIDTH:
        torch.set_num_threads(1)


class _NullWriter:
    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def flush(self) -> None:
        pass


def apply_recipe(settings: Settings, sources: dict[str, str] | None) -> tuple[Settings, dict]:
    """``settings`` with the model's published training defaults (:data:`~actcli.models.sequence.RECIPES`)
    wherever the user left the default; and what was filled in."""
    if sources is None:
        return settings, {}
    return fill_defaults(settings, sources, RECIPES[settings.model.name])


def architecture(settings: Settings) -> dict:
    """The model's architecture defaults with ``--model-config`` overrides (:data:`TUNABLE` keys only)."""
    name = settings.model.name
    overrides = parse_model_config(settings.model.config)
    unknown = sorted(set(overrides) - set(TUNABLE))
    if unknown:
        raise UserError(f"--model-config {unknown[0]}: {name} takes {', '.join(TUNABLE)}")
    values = {"heads": 4, "feature_loss": 1.0, "supervised_steps": 8, "pretrain_epochs": 0, **ARCHITECTURE[name],
              **overrides}
    if name == "rulstm" and "pretrain_epochs" not in overrides:
        values["pretrain_epochs"] = settings.train.epochs  # RULSTM's scripts: a full schedule of sequence completion
    return values


def open_stores(settings: Settings, source: DataSource, fps: float) -> dict[str, FeatureStore]:
    """The feature streams: ``--features`` (one path or name=path pairs) or the on-the-fly backbone cache."""
    model = settings.model
    if model.backbone:
        if settings.data.features is not None:
            raise UserError("pass either --features or --backbone (features extracted on the fly), not both")
        from actcli.commands.extract import cached_store

        return {"rgb": FeatureStore(cached_store(settings, source, fps, model.name == "attentive_probe"), fps)}
    paths = stream_paths(settings.data.features)
    if not paths:
        raise UserError(f"--model {model.name} reads feature sequences: pass --features PATH (an LMDB in RULSTM's "
                        "layout or .npy files, e.g. from `actcli extract`) or --backbone M --backbone-weights W")
    stores = {name: FeatureStore(path, fps) for name, path in paths.items()}
    for name, store in stores.items():
        check_rate(store, fps, f"--features {name}")
    return stores


def split_rows(source: DataSource, split: str, observable_only: bool) -> SegmentRows:
    """A split's segments; EK100 rows whose window lies before the video only when not ``observable_only``."""
    if source.dataset == "ek100":
        from actcli.ek100.dataset import load_split

        table = load_split(source.annotations_dir, split)
        rows = ek100_rows(table)
        if observable_only and "observable" in table.columns:
            rows = rows.subset(table["observable"].astype(bool).to_numpy())
        return rows
    from actcli.pipeline import split_table

    return generic_rows(split_table(source, split))


def stream_dims(stores: dict[str, FeatureStore], rows: SegmentRows) -> dict[str, int]:
    """Values per row of each stream, read from the first video whose features exist."""
    dims = {}
    for name, store in stores.items():
        for key in dict.fromkeys(rows.keys):
            try:
                dims[name] = store.dimension(key)
                break
            except DecodeError:
                continue
        else:
            raise UserError(f"no video of the split has features in {store.path} (first key {rows.keys[0]!r}); check "
                            "--features and the feature keys (a video's path without suffix, or EK100's video id)")
    return dims


def _window(model: str, task: TaskSpec) -> str:
    if model in EARLY:
        if task.task != "recognition":
            raise UserError(f"{model} predicts from the start of each segment: train it on annotations of --task "
                            "recognition (the anticipation models take --task anticipation)")
        return "segment"
    if task.task != "anticipation":
        raise UserError(f"{model} anticipates the next action: annotate with --task anticipation (early prediction: "
                        "--model early_lstm)")
    return "anticipation"


def train_sequence(settings: Settings, sources: dict[str, str] | None = None, resume: str | None = None) -> Path:
    """Train a sequence model; returns the run folder."""
    from torch.utils.tensorboard import SummaryWriter

    from actcli.commands.train import seed_everything
    from actcli.engine.interrupt import StopRequest
    from actcli.locks import FolderLock

    if resume is not None:
        raise UserError("--resume is not available for sequence models yet; start a new run (they train in minutes)")
    if settings.train.mixup or settings.train.cutmix:
        raise UserError("--mixup / --cutmix blend clips; sequence models train on feature sequences: drop them")
    settings, applied = apply_recipe(settings, sources)
    if applied:
        ui.console.print(f"recipe defaults for {settings.model.name}: "
                         + ", ".join(f"{k.split('.', 1)[1]}={v:g}" if isinstance(v, float) else
                                     f"{k.split('.', 1)[1]}={v}" for k, v in applied.items()))
    name = settings.model.name
    device = resolve_device(settings.train.device)
    seed_everything(settings.train.seed)
    source = data_source(settings)
    task, _ = read_task(source.annotations_dir)
    window = _window(name, task)
    arch = architecture(settings)
    alpha = float(arch.get("alpha", 0.25))
    steps = steps_for(window, task.tau_o, alpha, arch.get("steps"))
    fps = settings.data.features_fps
    stores = open_stores(settings, source, fps)
    train_rows, val_rows = split_rows(source, "train", True), split_rows(source, "val", True)
    dims = stream_dims(stores, train_rows)
    tokens = int(next(iter(stores.values())).meta.get("tokens") or 0) if len(stores) == 1 else 0
    heads = HEADS_EK100 if source.dataset == "ek100" else ()
    config = SequenceConfig(
        model=name, streams=dims, num_classes=len(source.classes), heads=list(heads), tokens=tokens, steps=steps,
        alpha=alpha, tau_a=task.tau_a if window == "anticipation" else 0.0, task="anticipation"
        if window == "anticipation" else "recognition", hidden=int(arch["hidden"]), layers=int(arch["layers"]),
        heads_attention=int(arch["heads"]), dropout=settings.model.dropout, feature_loss=float(arch["feature_loss"]),
        supervised_steps=int(arch["supervised_steps"]), pretrain_epochs=int(arch["pretrain_epochs"]), feature_fps=fps)
    cpu_threads(config, device)
    try:
        model = build_sequence_model(config).to(device)
    except ValueError as exc:
        raise UserError(f"{exc} (--model-config)") from None

    def dataset(rows: SegmentRows) -> SequenceDataset:
        return SequenceDataset(rows, stores, steps, alpha, config.tau_a, window, STEP_LABELS[name],
                               config.supervised_steps if name == "rulstm" else None)

    train_set, val_set = dataset(train_rows), dataset(val_rows)
    batch, workers, seed = settings.train.batch_size, settings.data.workers, settings.train.seed
    loaders = [make_loader(train_set, batch, workers, True, seed), make_loader(val_set, batch, workers, False)]
    objective = SequenceObjective(heads, settings.train.label_smoothing, final_in_steps=name in ("rulstm",
                                                                                                 "early_lstm"))
    run_config = settings.model_dump(mode="json")
    run_dir = new_run_dir(settings.paths.outputs, settings.train.experiment)
    lock = FolderLock(run_dir, "run").acquire()
    try:
        from actcli.fileio import write_text

        write_text(run_dir / "config.toml", to_toml(run_config))
        stream_text = ", ".join(f"{k} {v}" for k, v in dims.items()) + (f" ({tokens} tokens each)" if tokens else "")
        ui.console.print(f"training {name} on {source.dataset}: {len(train_set)} train / {len(val_set)} val "
                         f"segments, {steps} steps" + (f" of {alpha:g} s ending tau_a {task.tau_a:g} s before each "
                                                       "action" if window == "anticipation" else " per segment")
                         + f", features {stream_text} at {fps:g}/s, {len(source.classes)} classes, device {device}")
        if name == "rulstm" and config.pretrain_epochs:
            model.sequence_completion = True
            pre = Trainer(model, *loaders, settings.train.model_copy(update={"epochs": config.pretrain_epochs,
                                                                             "early_stop": None}),
                          device, (), len(source.classes), objective=objective)
            with ui.progress() as bars:
                pre.fit(_NullWriter(), lambda *a: None, seed, bars, ui.warn)
            model.sequence_completion = False
            ui.console.print(f"sequence completion pre-training: {config.pretrain_epochs} epoch(s)")
        trainer = Trainer(model, *loaders, settings.train, device, (), len(source.classes), objective=objective)
        feature_paths = {k: str(s.path) for k, s in stores.items()}

        def save(kind: str, weights: dict, extras: dict) -> None:
            save_checkpoint(run_dir / "checkpoints" / f"{kind}.pt", weights, model_name=name,
                            clip=ClipSpec(steps, 1, 1), classes=source.classes, settings=run_config, kind="sequence",
                            sequence=config.to_dict(), features=feature_paths, heads=list(heads),
                            modalities=["features"], **extras)

        with StopRequest() as stop, SummaryWriter(str(run_dir / "tensorboard")) as writer, ui.progress() as bars:
            metrics: TrainMetrics = trainer.fit(writer, save, seed, bars, ui.warn, stop)
    finally:
        lock.release()
    artifacts = {"run": run_dir, "best": run_dir / BEST, "last": run_dir / LAST, "config": run_dir / "config.toml"}
    report = write_report(make_report("train", device, {**run_config, "sequence": config.to_dict()}, metrics,
                                      artifacts), run_dir / "report-train.json")
    rows = [[r.epoch, f"{r.train_loss:.3f}", f"{r.train_accuracy:.3f}", "-" if r.val_loss is None else
             f"{r.val_loss:.3f}", "-" if r.val_accuracy is None else f"{r.val_accuracy:.3f}", f"{r.seconds:.1f}s"]
            for r in metrics.history]
    ui.console.print(ui.table("training", ["epoch", "train loss", "train acc", "val loss", "val acc", "time"], rows))
    if metrics.skipped_clips:
        ui.warn(f"{metrics.skipped_clips} segment(s) without features skipped; listed in {report}")
    ui.console.print(f"best val accuracy {metrics.best_val_accuracy or 0:.3f} (epoch {metrics.best_epoch}); run: "
                     f"{run_dir}")
    if metrics.interrupted:
        raise UserError(f"stopped by {metrics.interrupted}; {run_dir / LAST} is saved (sequence models cannot resume "
                        "yet: start a new run)")
    return run_dir


def is_sequence_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a sequence model's checkpoint (without loading it twice when it is not a file)."""
    if not path.is_file():
        return False
    try:  # memory-mapped: the tensors are not read, so a large clip model costs nothing here
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - any unreadable file: the clip-model path reports it in one line
        return False
    return isinstance(data, dict) and data.get("kind") == "sequence"


def model_from(checkpoint: dict, path: Path) -> tuple[torch.nn.Module, SequenceConfig]:
    config = SequenceConfig.from_dict(checkpoint["sequence"])
    model = build_sequence_model(config)
    load_state(model, checkpoint["state_dict"], path)
    return model.eval(), config


def _check_streams(stores: dict[str, FeatureStore], rows: SegmentRows, config: SequenceConfig, weights: Path) -> None:
    if set(stores) != set(config.streams):
        raise UserError(f"{weights} reads the feature streams {', '.join(config.streams)}, not "
                        f"{', '.join(stores)}; pass --features {','.join(f'{n}=PATH' for n in config.streams)}")
    dims = stream_dims(stores, rows)
    for name, dim in dims.items():
        if dim != config.streams[name]:
            raise UserError(f"the {name} features in {stores[name].path} have {dim} values per row, but {weights} was "
                            f"trained on {config.streams[name]}; pass the features it was trained on")


class StepsView(torch.nn.Module):
    """Every step's logits side by side, ``[B, T x K]``, so one pass over the data scores every prefix."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x) -> torch.Tensor:
        steps = self.model.step_logits(x)
        return steps.reshape(len(steps), -1)


def test_sequence(settings: Settings, sources: dict[str, str], weights: Path, report_file: Path | None,
                  device: torch.device) -> Path:
    """``actcli test`` of a sequence checkpoint; returns the report path."""
    from actcli.commands.model import _with_checkpoint_data

    checkpoint = load_checkpoint(weights)
    settings = _with_checkpoint_data(settings, sources, checkpoint)
    trained = checkpoint.get("settings", {}).get("model", {})
    user_features = sources.get("data.features", "default") != "default"
    if sources.get("model.backbone", "default") == "default" and trained.get("backbone") and not user_features:
        model_settings = settings.model.model_copy(update={"backbone": trained["backbone"],
                                                           "backbone_weights": trained.get("backbone_weights")})
        settings = settings.model_copy(update={"model": model_settings})
    model, config = model_from(checkpoint, weights)
    cpu_threads(config, device)
    model = model.to(device)
    source = data_source(settings)
    check_classes(weights, checkpoint["classes"], source.classes)
    task, counts = read_task(source.annotations_dir)
    fps = settings.data.features_fps
    if not math.isclose(fps, config.feature_fps, rel_tol=1e-6):
        raise UserError(f"{weights} was trained on features at {config.feature_fps:g} rows/s; --features-fps {fps:g} "
                        "does not match (pass features extracted at its rate)")
    named = settings.model_copy(update={"model": settings.model.model_copy(update={"name": config.model})})
    stores = open_stores(named, source, config.feature_fps)
    split = settings.test.split
    rows = split_rows(source, split, False)
    _check_streams(stores, rows, config, weights)
    if settings.test.observe:
        return _early_curve(settings, model, config, rows, stores, split, weights, report_file, device)
    if settings.test.tau_a and config.task != "anticipation":
        raise UserError("--tau-a applies to anticipation models; this model predicts segments (use --observe)")
    if config.task == "anticipation":
        return _anticipation(settings, model, config, source, task, counts, rows, stores, split, weights, report_file,
                             device)
    return _recognition(settings, model, config, source, rows, stores, split, weights, report_file, device)


def _predict(model, dataset, settings: Settings, device, bars, what: str) -> Predictions:
    return predict_dataset(model, dataset, settings.test.batch_size, settings.data.workers, device, bars, what)


def _early_curve(settings, model, config: SequenceConfig, rows, stores, split, weights, report_file, device) -> Path:
    from actcli.commands.early import plot_curve
    from actcli.commands.model import _report_path

    if config.task != "recognition" or not hasattr(model, "step_logits"):
        raise UserError("--observe scores early prediction models (--model early_lstm) on segments; anticipation "
                        "models take --tau-a")
    ratios = observe_ratios(settings.test.observe)
    low = [r for r in ratios if math.floor(r * config.steps + 1e-9) < 1]
    if low:
        raise UserError(f"--observe {low[0]:g} sees less than one of the model's {config.steps} steps "
                        f"(1/{config.steps} of a segment): use ratios >= {1 / config.steps:.3g}")
    dataset = SequenceDataset(rows, stores, config.steps, config.alpha, 0.0, "segment", "none")
    with ui.progress() as bars:
        out = _predict(StepsView(model), dataset, settings, device, bars, f"every prefix of the {split} segments")
    k = config.outputs
    per_step = out.logits.reshape(len(out.logits), config.steps, k)
    labels = out.labels[:, 0, 0]
    top1, top5 = [], []
    for ratio in ratios:
        step = math.floor(ratio * config.steps + 1e-9) - 1
        top1.append(topk_accuracy(per_step[:, step], labels, 1) if len(labels) else 0.0)
        top5.append(topk_accuracy(per_step[:, step], labels, 5) if len(labels) else 0.0)
    metrics = EarlyMetrics(split=split, ratios=ratios, top1=top1, top5=top5, clips=len(labels),
                           skipped_clips=len(out.skipped))
    report_path = _report_path(settings, weights, report_file, f"report-early-{split}.json")
    png = report_path.parent / f"early-{split}.png"
    plot_curve(metrics, png, f"{config.model} on {settings.data.dataset} {split} (one pass, {config.steps} steps)")
    config_out = {**settings.model_dump(mode="json"), "weights": str(weights), "sequence": config.to_dict(),
                  "passes": 1}
    write_report(make_report("early", device, config_out, metrics, {"curve_png": png}), report_path)
    table = [[f"{r:g}", f"{a:.3f}", f"{b:.3f}"] for r, a, b in zip(ratios, top1, top5, strict=True)]
    ui.console.print(ui.table(f"early prediction on {split} ({len(labels)} segments, one pass)",
                              ["observed", "top-1", "top-5"], table))
    ui.console.print(f"curve: {png}")
    ui.console.print(f"report: {report_path}")
    return report_path


def _recognition(settings, model, config, source, rows, stores, split, weights, report_file, device) -> Path:
    from actcli.commands.model import _report_path

    if config.heads:
        raise UserError("EK100 segments with a sequence model: annotate --task anticipation (recognition scores come "
                        "from the clip models)")
    dataset = SequenceDataset(rows, stores, config.steps, config.alpha, 0.0, "segment", "none")
    with ui.progress() as bars:
        out = _predict(model, dataset, settings, device, bars, f"testing on {split}")
    if len(out.labels) == 0:
        raise UserError(f"no {split} segment has features; check --features")
    predictions = Predictions(out.logits, out.labels[:, 0, 0], out.indices, out.skipped)
    metrics, _ = classification_metrics(predictions, source.classes, split)
    report_path = _report_path(settings, weights, report_file, f"report-test-{split}.json")
    write_report(make_report("test", device, {**settings.model_dump(mode="json"), "weights": str(weights),
                                              "sequence": config.to_dict()}, metrics), report_path)
    ui.console.print(ui.table(f"{config.model} on {source.dataset} {split}", ["metric", "value"],
                              [["top-1", f"{metrics.top1:.3f}"], ["top-5", f"{metrics.top5:.3f}"],
                               ["mean class accuracy", f"{metrics.mean_class_accuracy:.3f}"],
                               ["segments (skipped)", f"{metrics.clips} ({metrics.skipped_clips})"]]))
    ui.console.print(f"report: {report_path}")
    return report_path


def _bayes(source: DataSource) -> dict[str, float] | None:
    from actcli.data.synthetic_sequences import read_grammar

    grammar = read_grammar(source.root) if source.dataset == "synthetic-sequences" else None
    return dict(grammar["bayes_optimal_next_action"]) if grammar else None


def _anticipation(settings, model, config: SequenceConfig, source, task: TaskSpec, counts, rows: SegmentRows, stores,
                  split, weights, report_file, device) -> Path:
    from actcli.commands.model import _report_path
    from actcli.engine.anticipation import baselines, head_recalls, plot_recall, ranked_labels, scores, target_ids

    taus = anticipation_times(settings.test.tau_a) if settings.test.tau_a else [task.tau_a]
    heads = tuple(config.heads)
    train_rows = split_rows(source, "train", True)
    series: dict[str, list] = {k: [] for k in ("top1", "top5", "mean_top5_recall", "evaluated", "unobservable")}
    base: dict[str, list[float]] = {}
    head_series: dict[str, list[float]] = {"verb": [], "noun": []}
    skipped, official = 0, None
    trained_tau = config.tau_a
    with ui.progress() as bars:
        for tau in taus:
            keep = rows.observable(tau, task.tau_o, task.before_start)
            if not keep.any():
                raise UserError(f"--tau-a {tau:g}: no {split} segment has an observable window {tau:g} s before it "
                                f"(tau_o {task.tau_o:g} s); use a smaller anticipation time")
            subset = rows.subset(keep)
            config.tau_a = tau  # RULSTM unrolls, AVT rolls out, tau / alpha steps past the window
            dataset = SequenceDataset(subset, stores, config.steps, config.alpha, tau, "anticipation", "none")
            out = _predict(model, dataset, settings, device, bars, f"tau_a {tau:g} s")
            skipped = max(skipped, len(out.skipped))
            labels = out.labels[:, :, 0].numpy()
            result = scores(ranked_labels(out.logits, heads), target_ids(labels, heads))
            for key in ("top1", "top5", "mean_top5_recall"):
                series[key].append(result[key])
            series["evaluated"].append(int(len(labels)))
            series["unobservable"].append(int((~keep).sum()))
            if heads:
                for key, value in head_recalls(out.logits, labels, heads).items():
                    head_series[key].append(value)
            for key, value in baselines(rows, train_rows, tau, keep).items():
                base.setdefault(key, []).append(value)
            if heads and math.isclose(tau, task.tau_a) and official is None:
                official = _ek100_submission(settings, source, rows, keep, dataset, out, split, weights)
    config.tau_a = trained_tau
    bayes = _bayes(source)
    metrics = AnticipationMetrics(
        split=split, model=config.model, segments=len(rows), tau_a=taus, evaluated=series["evaluated"],
        unobservable=series["unobservable"], skipped_clips=skipped,
        dropped_at_annotate=dropped_total(counts, split), top1=series["top1"], top5=series["top5"],
        mean_top5_recall=series["mean_top5_recall"], heads_mean_top5_recall=head_series if heads else None,
        baselines=base, bayes_optimal=bayes, official=official)
    report_path = _report_path(settings, weights, report_file, f"report-anticipation-{split}.json")
    png = report_path.parent / f"anticipation-{split}.png"
    what = "action" if heads else "next action"
    plot_recall(taus, {f"top-1 ({what})": series["top1"], "top-5": series["top5"],
                       "class-mean top-5 recall": series["mean_top5_recall"],
                       "same as last (top-1)": base["same_as_last"],
                       "most frequent next (top-1)": base["most_frequent_next"]}, png,
                f"{config.model} on {source.dataset} {split}",
                {"best possible top-1": bayes["top1"]} if bayes else None)
    config_out = {**settings.model_dump(mode="json"), "weights": str(weights), "sequence": config.to_dict(),
                  "annotated": {"tau_a": task.tau_a, "tau_o": task.tau_o, "before_start": task.before_start,
                                "segments_dropped_at_annotate": dropped_total(counts, split)}}
    write_report(make_report("anticipation", device, config_out, metrics, {"recall_png": png}), report_path)
    table = []
    for i, tau in enumerate(taus):
        table.append([f"{tau:g}", f"{series['top1'][i]:.3f}", f"{series['top5'][i]:.3f}",
                      f"{series['mean_top5_recall'][i]:.3f}", f"{base['same_as_last'][i]:.3f}",
                      f"{base['most_frequent_next'][i]:.3f}", f"{base['most_frequent_next_given_last'][i]:.3f}",
                      f"{series['evaluated'][i]} ({series['unobservable'][i]})"])
    title = f"{config.model} anticipation on {source.dataset} {split}" + (
        f"; best possible top-1 {bayes['top1']:.3f}, top-5 {bayes['top5']:.3f}" if bayes else "")
    ui.console.print(ui.table(title, ["tau_a", "top-1", "top-5", "mean top-5 recall", "same as last",
                                      "most frequent", "frequent given last", "segments (unobservable)"], table))
    if any(series["unobservable"]):
        counted = ", ".join(f"{t:g} s: {n}" for t, n in zip(taus, series["unobservable"], strict=True))
        ui.warn(f"segments whose window lies before their video are left out of the metrics and counted "
                f"(unobservable: {counted})")
    ui.console.print(f"curve: {png}")
    ui.console.print(f"report: {report_path}")
    return report_path


def _ek100_submission(settings, source, rows: SegmentRows, keep: np.ndarray, dataset: SequenceDataset, out,
                      split: str, weights: Path) -> dict | None:
    """Write the EK100 anticipation submission (every segment of the split; unobservable or unreadable ones get
    zero scores, as the official evaluator needs every segment) and score it when labelled."""
    from actcli.commands.ek100 import score_table
    from actcli.data.registry import resolve_root
    from actcli.ek100.annotations import load_subsets
    from actcli.ek100.dataset import load_split
    from actcli.ek100.submission import Supervision, make_submission, write_submission
    from actcli.report import read_report

    table = load_split(source.annotations_dir, split)
    scores = torch.zeros(len(table), sum(HEADS_EK100))
    position = {n: i for i, n in enumerate(table["narration_id"].astype(str))}
    for row, logits in zip(out.indices.tolist(), out.logits, strict=True):
        scores[position[dataset.rows.ids[row]]] = logits
    folder = run_dir_of(weights) or settings.paths.outputs / "reports"
    submission = folder / f"submission-anticipation-{split}.json"
    verbs, nouns = scores[:, :HEADS_EK100[0]].numpy(), scores[:, HEADS_EK100[0]:].numpy()
    write_submission(make_submission("anticipation", table["narration_id"].astype(str).tolist(), verbs, nouns,
                                     Supervision(*settings.test.sls)), submission)
    ui.console.print(f"anticipation submission for {len(table)} segments: {submission}")
    if (table["verb_class"] < 0).any():
        return None
    official = resolve_root(settings.paths.outputs, "ek100-annotations", None)
    path = score_table(submission, table, "anticipation", load_subsets(official), folder / f"report-score-{split}.json",
                       {"weights": str(weights), "split": split, "unobservable": int((~keep).sum())})
    metrics = read_report(path).metrics
    return {group: metrics[group] for group in ("overall", "unseen", "tail")}
