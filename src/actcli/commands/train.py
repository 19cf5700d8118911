"""``actcli train``: fine-tune or train a model, resume a run, and the two training caches.

With ``--freeze backbone --no-augment`` the head trains on backbone features cached once
(:mod:`actcli.data.cache`); with ``--cache-clips`` every epoch after the first reads decoded,
resized frames from the clip cache (:mod:`actcli.data.clip_cache`).

A new run first fills in its model family's recipe defaults where the user chose nothing
(:func:`actcli.engine.recipe.family_recipe`: transformers get VideoMAE's fine-tuning recipe); the
values used are in the run's ``config.toml``, its checkpoints and its report, and a resumed run
keeps them.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from actcli import console as ui
from actcli.data.cache import FeatureCache, FeatureDataset, cached_features, file_digest, model_key
from actcli.data.clip_cache import EVAL_VIEW, TRAIN_VIEW, ClipCache, fill_clip_cache
from actcli.data.datasets import VideoClipDataset, make_loader
from actcli.ek100.dataset import HEADS
from actcli.engine import distributed
from actcli.engine.interrupt import EXIT_CODES, STOP_FILE_ENV, StopRequest
from actcli.engine.memory_format import apply_memory_format, choose_memory_format
from actcli.engine.recipe import check_precision, enable_gradient_checkpointing, family_recipe, mixing_refusal
from actcli.engine.sync_batchnorm import convert_sync_batchnorm
from actcli.engine.train import Trainer
from actcli.errors import UserError
from actcli.fileio import write_text
from actcli.locks import FolderLock
from actcli.models.checkpoint import load_checkpoint, load_initial_weights, save_checkpoint, weights_path
from actcli.models.freeze import apply_freeze
from actcli.models.multimodal import build_any
from actcli.models.zoo import get_entry
from actcli.pipeline import (
    check_classes,
    clip_dataset,
    clip_spec,
    data_source,
    ek100_dataset,
    hflip_enabled,
    inputs_of,
    model_config,
    resolve_device,
    to_device,
)
from actcli.report import ClipCacheMetrics, TrainMetrics, make_report, write_report
from actcli.runs import BEST, LAST, new_run_dir
from actcli.settings import Settings, to_toml


class NullWriter:
    """TensorBoard's ``SummaryWriter`` interface, writing nothing (ranks other than 0)."""

    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def flush(self) -> None:
        pass


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (DataLoader workers derive theirs from torch)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _resume_checkpoint(settings: Settings, resume: str) -> Path:
    """``auto``: ``last.pt`` of the newest run of the experiment; else a file or run folder."""
    if resume == "auto":
        root = settings.paths.outputs / "runs" / settings.train.experiment
        found = sorted(root.glob(f"*/{LAST.as_posix()}"))
        if not found:
            raise UserError(f"--resume auto found no run of experiment {settings.train.experiment!r} under {root}")
        return found[-1]
    path = Path(resume)
    return path / LAST if path.is_dir() else path


def train(settings: Settings, resume: str | None = None, sources: dict[str, str] | None = None) -> Path:
    """Train a model (or resume one); returns the run folder (checkpoints, TensorBoard, report).

    ``sources`` (from :func:`~actcli.settings.load_settings`) says which settings the user left at
    their defaults: a new run fills those in from the model family's recipe
    (:func:`~actcli.engine.recipe.family_recipe`); without ``sources`` the settings are used as given.
    Under torchrun every process runs this; rank 0 alone writes (see :mod:`actcli.engine.distributed`).
    """
    from actcli.models.sequence import is_sequence_model

    if is_sequence_model(settings.model.name):  # over feature sequences, not clips: actcli.commands.sequence
        from actcli.commands.sequence import train_sequence

        return train_sequence(settings, sources, resume)
    device = distributed.start(resolve_device(settings.train.device))
    if not distributed.is_main():
        ui.silence()
    finished = False
    held: list[FolderLock] = []  # the run folder's lock, taken by _train, released here
    try:
        if resume is None and sources is not None:
            settings, applied = family_recipe(settings, sources, distributed.world().size)
            if applied:
                ui.console.print("recipe defaults for " + settings.model.name + ": "
                                 + ", ".join(f"{k.split('.', 1)[1]}={v:g}" if isinstance(v, float) else
                                             f"{k.split('.', 1)[1]}={v}" for k, v in applied.items()))
        run_dir, metrics = _train(settings, resume, device, held)
        finished = True
    finally:
        for lock in held:
            lock.release()
        distributed.stop(barrier=finished)
    if metrics.interrupted:  # after the barrier: every rank stops cleanly, with the same status
        where = f"epoch {metrics.epochs}" + (f" and {metrics.batches_done} batch(es) of the next" if
                                             metrics.batches_done else "")
        raise UserError(f"stopped by {metrics.interrupted} after {where}; {run_dir / LAST} and the report are saved. "
                        f"Resume with: actcli train --resume {run_dir}",
                        # under --nproc the launcher gives the status; 0 here keeps torchrun from reporting a failure
                        0 if os.environ.get(STOP_FILE_ENV) else EXIT_CODES.get(metrics.interrupted, 1))
    return run_dir


def _train(settings: Settings, resume: str | None, device: torch.device,
           held: list[FolderLock]) -> tuple[Path, TrainMetrics]:
    from torch.utils.tensorboard import SummaryWriter

    resumed = None
    if resume is not None:
        last = _resume_checkpoint(settings, resume)
        resumed = load_checkpoint(last, training=True)
        try:
            settings = Settings.model_validate(resumed["settings"])
        except ValueError as exc:
            raise UserError(f"{last} holds settings this version cannot read ({str(exc).splitlines()[0]}); "
                            "start a new run") from None
    seed_everything(settings.train.seed)
    source = data_source(settings)
    if resumed is not None:  # the annotations may have been re-made since the run started
        check_classes(last, resumed["classes"], source.classes)
    spec = clip_spec(settings)
    check_precision(settings.train.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # clip shapes are fixed: let cuDNN pick its fastest kernels
    augment = settings.data.augment
    _check_augmentation(settings)
    heads: tuple[int, ...] = ()
    if source.dataset == "ek100":
        if settings.data.cache_clips or settings.model.freeze == "backbone" and not augment:
            raise UserError("EK100 training reads segments in seconds: drop --cache-clips / --no-augment")
        train_set = ek100_dataset(settings, source, "train", spec, training=augment)
        val_set = ek100_dataset(settings, source, "val", spec, training=False)
        heads = HEADS
        for name, dataset in (("train", train_set), ("val", val_set)):
            if dataset.missing_videos:
                ui.warn(f"{len(dataset.missing_videos)} {name} video(s) missing (first: {dataset.missing_videos[0]}): "
                        "their segments are left out")
    else:
        observe = settings.train.observe_range
        inputs = inputs_of(settings)
        cached = settings.data.cache_clips or settings.model.freeze == "backbone" and not augment
        if cached and (observe or inputs.modalities != ("rgb",)):
            raise UserError("--observe-range and --modalities beyond rgb read new inputs every epoch: "
                            "drop --cache-clips / --no-augment")
        train_set = clip_dataset(source, "train", spec, training=augment, hflip=augment and hflip_enabled(settings),
                                 observe=observe, inputs=inputs, auto_augment=settings.data.auto_augment)
        val_set = clip_dataset(source, "val", spec, training=False, inputs=inputs)
        if cached and any(any(d.windows) for d in (train_set, val_set)):
            raise UserError("the training caches (--cache-clips, --freeze backbone --no-augment) hold whole files, "
                            "and these clips are cut from longer files (start/end): drop them")
        for name, dataset in (("train", train_set), ("val", val_set)):
            if dataset.silent_videos:
                ui.warn(f"{len(dataset.silent_videos)} {name} video(s) have no sound (first: "
                        f"{dataset.silent_videos[0]}): " + ("left out" if settings.data.no_audio == "skip"
                                                             else "silent spectrograms"))
    modalities_list = settings.data.modalities.split(",")
    if modalities_list != ["rgb"] and settings.model.freeze not in ("none", "bn"):
        raise UserError(f"--freeze {settings.model.freeze} applies to single-modality models; use none or bn")
    feature_dim = train_set.feature_dim() if "features" in modalities_list else None
    config = model_config(settings)
    model = build_any(settings.model.name, spec, len(source.classes), settings.model.dropout, modalities_list,
                      settings.model.fusion, feature_dim, config)
    loaded = "random initialisation"
    if settings.model.weights and resumed is None:
        loaded = load_initial_weights(model, settings.model.name, settings.model.weights, source.classes, config)
    if resumed is not None:
        model.load_state_dict(resumed["state_dict"])  # the frozen backbone of a cached-feature run
    if settings.train.sync_bn:
        model = convert_sync_batchnorm(model, device)
    frozen = apply_freeze(model, settings.model.freeze)
    if settings.train.grad_checkpointing:
        enable_gradient_checkpointing(model, settings.model.name)
    model = to_device(model, device)
    if device.type == "cpu" and modalities_list == ["rgb"] and distributed.world().size == 1:
        chosen, timed = choose_memory_format(model, settings.model.name, spec, device, settings.train.precision,
                                             settings.train.memory_format,
                                             settings.paths.outputs / "cache" / "memory_format.json",
                                             min(settings.train.batch_size, len(train_set)))
        apply_memory_format(model, chosen)
        if timed is not None:
            ui.console.print(f"memory format: {chosen.replace('_', '-')} (one training step: channels-last "
                             f"{timed['channels_last']:.2f} s, contiguous {timed['contiguous']:.2f} s)")
    pin = device.type == "cuda"
    seed = settings.train.seed
    loaders = [
        make_loader(train_set, settings.train.batch_size, settings.data.workers, True, seed, pin,
                    sampler=distributed.train_sampler(train_set, seed, settings.train.repeated_aug)),
        make_loader(val_set, settings.train.batch_size, settings.data.workers, False, pin_memory=pin,
                    sampler=distributed.ShardSampler(val_set)),
    ]
    if distributed.world().size > 1 and (settings.data.cache_clips or settings.model.freeze == "backbone"
                                         and not augment):
        raise UserError("the training caches (--cache-clips, --freeze backbone --no-augment) run in one process: "
                        "drop them or --nproc / torchrun")
    trained: torch.nn.Module = model
    clip_cache, rebuilt = None, 0
    if settings.model.freeze == "backbone" and not augment:
        loaders, rebuilt = _feature_loaders(settings, model, loaders, device)
        trained = model.head
    elif settings.data.cache_clips:
        clip_cache = _use_clip_cache(settings, [train_set, val_set])
    trainer = Trainer(trained, *loaders, settings.train, device, heads, len(source.classes))
    run_config = settings.model_dump(mode="json")
    if resumed is not None:
        trainer.load_state_dict(resumed["training"])
        run_dir = last.parent.parent
        loaded = f"resumed from {last} after epoch {trainer.state.epoch}"
    else:
        run_dir = new_run_dir(settings.paths.outputs, settings.train.experiment) if distributed.is_main() else None
        run_dir = distributed.broadcast(run_dir)  # one run folder, made by rank 0
    if distributed.is_main():  # one writer per run folder: a second train (e.g. --resume) of it is refused
        held.append(FolderLock(run_dir, "run").acquire())
        if resumed is None:
            write_text(run_dir / "config.toml", to_toml(run_config))
    ui.console.print(
        f"training {settings.model.name} ({loaded}) on {source.dataset}: {len(train_set)} train / "
        f"{len(val_set)} val clips of {spec}, {len(source.classes)} classes, device {device}"
        + (f", frozen: {', '.join(frozen)}" if frozen else "")
        + (f", {distributed.world().size} processes" if distributed.world().size > 1 else "")
    )

    def save(kind: str, weights: dict, extras: dict) -> None:
        if not distributed.is_main():
            return
        if trained is not model:  # head trained on cached features: store the whole model
            weights = {**model.state_dict(), **{f"head.{k}": v for k, v in weights.items()}}
        save_checkpoint(run_dir / "checkpoints" / f"{kind}.pt", weights, model_name=settings.model.name,
                        clip=spec, classes=source.classes, settings=run_config,
                        convention=get_entry(settings.model.name).convention.to_dict(), model_config=config,
                        heads=list(heads), modalities=modalities_list, fusion=settings.model.fusion,
                        feature_dim=feature_dim, **extras)

    # purge_step drops curve points a killed run logged after its last checkpoint.
    with StopRequest() as stop:
        if distributed.is_main():
            writer = SummaryWriter(str(run_dir / "tensorboard"),
                                   purge_step=trainer.state.step + 1 if resumed else None)
            with writer, ui.progress() as bars:
                metrics = trainer.fit(writer, save, settings.train.seed, bars, ui.warn, stop)
        else:
            metrics = trainer.fit(NullWriter(), save, settings.train.seed, None, ui.warn, stop)
    if not distributed.is_main():
        return run_dir, metrics
    metrics.resumed = resumed is not None
    metrics.clip_cache = clip_cache
    metrics.cache_entries_rebuilt = rebuilt + (clip_cache.damaged if clip_cache else 0)
    artifacts = {"run": run_dir, "best": run_dir / BEST, "last": run_dir / LAST,
                 "tensorboard": run_dir / "tensorboard", "config": run_dir / "config.toml"}
    report = write_report(make_report("train", device, run_config, metrics, artifacts), run_dir / "report-train.json")
    rows = [[r.epoch, _number(r.train_loss), _number(r.train_accuracy), _number(r.val_loss), _number(r.val_accuracy),
             f"{r.seconds:.0f}s"] for r in metrics.history]
    ui.console.print(ui.table("training", ["epoch", "train loss", "train acc", "val loss", "val acc", "time"], rows))
    if metrics.skipped_clips:
        ui.warn(f"{metrics.skipped_clips} unreadable video(s) skipped; listed in {report}")
    if metrics.best_val_accuracy is None:
        ui.console.print(f"best.pt is epoch {metrics.best_epoch} (nothing validated); run: {run_dir}")
    else:
        ui.console.print(f"best val accuracy {metrics.best_val_accuracy:.3f} (epoch {metrics.best_epoch}); "
                         f"run: {run_dir}")
    ui.console.print(f"report: {report}")
    if metrics.nonfinite_steps:
        ui.warn(f"{metrics.nonfinite_steps} batch(es) with a NaN or infinite loss were skipped")
    return run_dir, metrics


def _check_augmentation(settings: Settings) -> None:
    """One error line for augmentation options this run cannot use (the family recipe never sets them there)."""
    train = settings.train
    if (train.mixup > 0 or train.cutmix > 0) and (why := mixing_refusal(settings)) is not None:
        raise UserError(f"--mixup / --cutmix cannot apply: {why}; drop them")
    if not settings.data.augment and (train.repeated_aug > 1 or settings.data.auto_augment != "none"):
        raise UserError("--repeated-aug and --auto-augment vary the augmentation of training clips, which "
                        "--no-augment turns off: drop one or the other")


def _number(value: float | None) -> str:
    """A table cell: three decimals, or ``-`` for a value not measured (no validation split)."""
    return "-" if value is None or value != value else f"{value:.3f}"


def _weights_id(settings: Settings) -> str:
    """What the frozen backbone's weights are, for the feature cache key."""
    weights = settings.model.weights
    if not weights:
        return f"random-seed{settings.train.seed}"
    path = weights_path(settings.model.name, weights)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return ":".join(file_digest(p) for p in files)


def _feature_loaders(settings: Settings, model, loaders: list, device: torch.device) -> tuple[list, int]:
    """Loaders of cached backbone features ``[B, D]`` for training only the head, and how many damaged
    cache entries were dropped and computed again."""
    name = settings.model.name + (f"[{settings.model.config}]" if settings.model.config else "")
    key = model_key(name, _weights_id(settings), clip_spec(settings), decoder=loaders[0].dataset.decoder)
    cache = FeatureCache(settings.paths.outputs, key)
    out = []
    with ui.progress() as bars:
        for loader, shuffle in zip(loaders, (True, False), strict=True):
            dataset = loader.dataset
            videos = [dataset.root / p for p in dataset.paths]
            features, computed, skipped = cached_features(model.backbone, loader, videos, cache, device, bars)
            for path in skipped:
                ui.warn(f"skipped unreadable video {path}")
            unreadable = set(skipped)
            keep = [i for i, v in enumerate(videos) if str(v) not in unreadable]
            cached = len(videos) - computed
            ui.console.print(f"backbone features: {cached} cached, {computed} computed ({cache.folder})")
            feature_set = FeatureDataset(features[keep], [dataset.labels[i] for i in keep])
            sampler = distributed.train_sampler(feature_set, settings.train.seed) if shuffle else None
            out.append(make_loader(feature_set, settings.train.batch_size, 0, shuffle, settings.train.seed,
                                   sampler=sampler))
    if cache.damaged:
        ui.warn(f"{len(cache.damaged)} damaged feature-cache entr{'y' if len(cache.damaged) == 1 else 'ies'} "
                f"(truncated, zeroed or overwritten; first: {cache.damaged[0]}) dropped and computed again")
    return out, len(cache.damaged)


def _use_clip_cache(settings: Settings, datasets: list[VideoClipDataset]) -> ClipCacheMetrics:
    """Fill the clip cache for ``datasets`` (decoding what is missing) and make them read from it."""
    data = settings.data
    spec, decoder = datasets[0].spec, datasets[0].decoder
    cache = ClipCache(settings.paths.outputs, spec, decoder, int(data.cache_limit_gb * 1e9), datasets[0].convention)
    totals = dict.fromkeys(("videos", "cached", "written", "over_limit", "unreadable"), 0)
    with ui.progress() as bars:
        for dataset in datasets:
            videos = [dataset.root / p for p in dataset.paths]
            view = TRAIN_VIEW if dataset.training else EVAL_VIEW
            stats = fill_clip_cache(cache, videos, spec, view, decoder, data.workers, bars)
            dataset.clip_cache = cache
            totals["videos"] += len(videos)
            for key in ("cached", "written", "over_limit", "unreadable"):
                totals[key] += getattr(stats, key)
    totals["damaged"] = len(cache.damaged)
    if cache.damaged:
        ui.warn(f"{len(cache.damaged)} damaged clip-cache entr{'y' if len(cache.damaged) == 1 else 'ies'} "
                f"(truncated, zeroed or overwritten; first: {cache.damaged[0]}) dropped and decoded again")
    used = cache.used_bytes()
    ui.console.print(f"clip cache: {totals['cached']} of {totals['videos']} videos cached ({totals['written']} "
                     f"written now), {used / 1e9:.2f} of {data.cache_limit_gb:g} GB used ({cache.folder})")
    if totals["over_limit"]:
        ui.warn(f"clip cache full: {totals['over_limit']} video(s) are decoded every epoch; raise "
                f"--cache-limit-gb or delete old entries under {cache.root}")
    return ClipCacheMetrics(folder=str(cache.folder), limit_bytes=cache.limit_bytes, used_bytes=used, **totals)
