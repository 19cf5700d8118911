"""The ``actcli`` command line (Typer). Each command builds settings, then calls one function.

Every option that is also a setting goes through :func:`actcli.settings.load_settings`,
so ``--epochs 3`` beats ``ACTCLI_TRAIN__EPOCHS`` beats ``[train] epochs`` in ``--config``.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated, Literal

import typer

warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)

from actcli import console as ui
from actcli.cli_options import (
    AnnotationsOpt,
    CheckpointOpt,
    ConfigOpt,
    CropOpt,
    DatasetOpt,
    DecoderOpt,
    DeviceOpt,
    ExperimentOpt,
    FeaturesFpsOpt,
    FeaturesOpt,
    FramesOpt,
    ModelOpt,
    NprocOpt,
    PrecisionOpt,
    ReportOpt,
    RootOpt,
    RuntimeOpt,
    StrideOpt,
    WorkersOpt,
    hand_to_torchrun,
    handle_errors,
    settings_from_options,
)
from actcli.data.registry import DATASETS
from actcli.errors import UserError
from actcli.settings import load_settings

app = typer.Typer(
    help="Train, fine-tune, test and benchmark video action recognition models.",
    no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")



@app.command()
@handle_errors
def download(
    dataset: Annotated[str, typer.Argument(help=f"Dataset: {', '.join(DATASETS)}, or ek100-annotations (the official EPIC-KITCHENS-100 CSVs; --from FOLDER offline).")],
    source: Annotated[Path | None, typer.Option("--from", help="A downloaded .zip (extracted safely) or a dataset folder.")] = None,
    dest: Annotated[Path | None, typer.Option(help="Where to extract or generate. (default: data/<dataset>)")] = None,
    classes: Annotated[int, typer.Option(help="synthetic: number of classes (2-8).")] = 8,
    clips_per_class: Annotated[int, typer.Option(help="synthetic: videos per class.")] = 40,
    groups: Annotated[int, typer.Option(help="synthetic: groups (scenes) per class.")] = 20,
    seed: Annotated[int, typer.Option(help="synthetic: random seed (0 to 2^32 - 1); same seed, same videos.")] = 0,
    audio: Annotated[bool, typer.Option("--audio", help="synthetic: add a sound track; each class becomes a motion plus a sound (Beep or Hiss), so some classes differ only in sound (--classes must be even).")] = False,
    videos: Annotated[int, typer.Option(help="synthetic-sequences: videos, each a sequence of actions following the grammar written to grammar.json.")] = 160,
    actions: Annotated[int, typer.Option(help="synthetic-sequences: actions per video (1.5-3 s each).")] = 10,
    config: ConfigOpt = None,
) -> None:
    """Download a dataset (kagglehub), take a local zip/folder, or generate the synthetic one.

    The dataset's location is remembered in outputs/datasets.json for later commands.
    """
    from actcli.commands.data import download_dataset, download_ek100_annotations, download_synthetic
    from actcli.data.synthetic import SyntheticSpec

    settings, _ = settings_from_options(config)
    if dataset == "ek100-annotations":
        download_ek100_annotations(settings, source, dest)
    elif dataset == "synthetic-sequences":
        from actcli.commands.data import download_synthetic_sequences
        from actcli.data.synthetic_sequences import SequenceSpec

        if source is not None:
            raise UserError("synthetic sequences are generated, not downloaded; drop --from")
        download_synthetic_sequences(settings, dest, SequenceSpec(videos=videos, groups=min(16, max(1, videos)),
                                                                  actions=actions, seed=seed))
    elif dataset == "synthetic":
        if source is not None:
            raise UserError("synthetic data is generated, not downloaded; drop --from")
        if clips_per_class < 1 or groups < 1:
            raise UserError("--clips-per-class and --groups must be at least 1")
        download_synthetic(settings, dest, SyntheticSpec(classes=classes, groups=groups,
                                                         clips_per_class=clips_per_class, seed=seed, audio=audio))
    else:
        download_dataset(settings, dataset, source, dest)


@app.command()
@handle_errors
def annotate(
    dataset: DatasetOpt = None,
    root: RootOpt = None,
    split: Annotated[tuple[float, float, float], typer.Option(help="Train, val and test shares.")] = (70, 15, 15),
    by: Annotated[Literal["group", "clip"], typer.Option(help="group: no group in two splits; clip: the leaky random split.")] = "group",
    folds: Annotated[int | None, typer.Option(help="Also write K group folds in folds/foldNN/: fold k tests on a K-th of the groups and trains on all others, no val (K=25 on UCF50: leave-one-group-out; K >= 2).")] = None,
    probe: Annotated[bool, typer.Option("--probe", help="Open every video: record frames/fps/duration, leave out unreadable ones and clips that start after their video ends.")] = False,
    out: Annotated[Path | None, typer.Option(help="Output folder. (default: annotations/<dataset>)")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split search (0 to 2^32 - 1).")] = 0,
    task: Annotated[Literal["recognition", "anticipation"], typer.Option(help="recognition (each segment) or anticipation (the window [start - tau_a - tau_o, start - tau_a) before each action; needs timestamped actions: ek100, egtea, synthetic-sequences, a list with start,end).")] = "recognition",
    tau_a: Annotated[float, typer.Option(help="anticipation: seconds between the observed window's end and the action's start.")] = 1.0,
    tau_o: Annotated[float, typer.Option(help="anticipation: seconds observed.")] = 2.0,
    before_start: Annotated[Literal["clip", "drop"], typer.Option(help="anticipation: a window that begins before the video is clipped to 0 s or its segment dropped (counted either way).")] = "clip",
    participants: Annotated[str | None, typer.Option(help="ek100: only these participants, e.g. P01,P02.")] = None,
    max_segments: Annotated[int | None, typer.Option(help="ek100: at most N segments per participant and official file (small runs).")] = None,
    official: Annotated[Path | None, typer.Option("--official", "--list", help="The dataset's official split/label files: a folder (ucf101: classInd.txt, trainlist0N.txt; hmdb51: *_test_splitN.txt; kinetics*: train.csv, validate.csv; ssv2: labels.json, train.json, validation.json; ek100: the EPIC_100_*.csv) or, for --dataset list, your list file. (default: searched under --root; ek100: where `download ek100-annotations` put them)")] = None,
    fold: Annotated[int, typer.Option(help="ucf101 / hmdb51: which official split (1, 2 or 3); 0: ignore the official lists and make actcli's own group-aware split (--split, --folds).")] = 1,
    allow_outside_root: Annotated[bool, typer.Option("--allow-outside-root", help="--dataset list: accept absolute paths and paths that lead outside --root (symbolic links included); without it they are refused.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Write the split files (train/val/test.csv, labels.csv) from the dataset's layout and official files.

    Datasets with official splits (ucf101, hmdb51, kinetics*, ssv2, ek100) keep them, with a val
    carved out of train by group; the others get a group-aware split (--split). See `actcli datasets`.
    """
    settings, _ = settings_from_options(config, data__dataset=dataset, data__root=root)
    from actcli.commands.data import annotate as run
    from actcli.data.formats import Options
    from actcli.data.segments import TaskSpec

    chosen = tuple(p.strip() for p in participants.split(",") if p.strip()) if participants else None
    run(settings, split, by, folds, probe, out, seed,
        Options(fold, official, settings.data.dataset, allow_outside_root, chosen, max_segments),
        TaskSpec(task, tau_a, tau_o, before_start))


@app.command()
@handle_errors
def train(
    dataset: DatasetOpt = None,
    root: RootOpt = None,
    annotations: AnnotationsOpt = None,
    model: ModelOpt = None,
    weights: Annotated[str | None, typer.Option(help="Starting weights: 'kinetics' (the model's published weights, downloaded once and cached; see actcli models), hf:<repo>[@revision] (Hugging Face Hub, HF_HUB_OFFLINE=1 uses the cache), a file (actcli checkpoint or the publisher's state dict) or a Hugging Face folder (config.json + model.safetensors). (default: random init)")] = None,
    freeze: Annotated[str | None, typer.Option(help="none, backbone, bn (all BatchNorm) or until:<block> (backbone blocks up to <block>, by index or name); frozen parts stay in eval mode. (default: none)")] = None,
    dropout: Annotated[float | None, typer.Option(help="Dropout before the classifier. (default: 0.5)")] = None,
    drop_path: Annotated[float | None, typer.Option(help="Stochastic depth: drop-path rate of the deepest block, rising linearly from 0 at the first, for networks that have it (transformers, pytorchvideo's MViT); stored in the checkpoint. (default: transformers 0.1, others the architecture's own)")] = None,
    frames: FramesOpt = None,
    stride: StrideOpt = None,
    crop: CropOpt = None,
    hflip: Annotated[bool | None, typer.Option("--hflip/--no-hflip", help="Random horizontal flips. (default: on, off for synthetic)")] = None,
    augment: Annotated[bool | None, typer.Option("--augment/--no-augment", help="Random clip position, scale, crop and flip; --no-augment with --freeze backbone trains the head on backbone features cached in outputs/cache/. (default: augment)")] = None,
    auto_augment: Annotated[Literal["none", "randaugment", "trivialaugment"] | None, typer.Option(help="Training clips: torchvision's RandAugment (2 ops, magnitude 9 of 31) or TrivialAugmentWide (1 op, random magnitude), the same ops and magnitudes on every frame of a clip. (default: transformers randaugment, others none)")] = None,
    mixup: Annotated[float | None, typer.Option(help="Mixup alpha: each batch is blended with its rolled copy (weight from Beta(alpha, alpha)), targets alike; single-label RGB training. (default: transformers 0.8, others 0 = off)")] = None,
    cutmix: Annotated[float | None, typer.Option(help="CutMix alpha: a box (the same in every frame) pasted from the rolled batch, targets weighted by area; with --mixup too, one of the two per batch. (default: transformers 1.0, others 0 = off)")] = None,
    repeated_aug: Annotated[int | None, typer.Option(help="Repeated augmentation: every training clip is drawn N times per epoch, each augmented on its own; with --nproc the copies go to different processes. (default: transformers 2, others 1)")] = None,
    optimizer: Annotated[str | None, typer.Option(help="adamw or sgd. (default: adamw)")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate. (default: 0.001; transformers 0.001 x global batch / 256)")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay. (default: 5e-05; transformers 0.05)")] = None,
    layer_decay: Annotated[float | None, typer.Option(help="Layer-wise LR decay F in (0, 1]: with L backbone blocks, block i learns at lr x F^(L - i), what runs before block 0 at lr x F^(L + 1), the head and what follows the last block at lr. (default: transformers 0.75, others 1 = off)")] = None,
    grad_checkpointing: Annotated[bool | None, typer.Option("--grad-checkpointing/--no-grad-checkpointing", help="Recompute each backbone block's activations in the backward pass instead of storing them: less memory, about a third more compute. (default: off)")] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs. (default: 10)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Clips per batch. (default: 8)")] = None,
    workers: WorkersOpt = None,
    decoder: DecoderOpt = None,
    skip_missing: Annotated[bool | None, typer.Option("--skip-missing/--no-skip-missing", help="EK100: leave out (and count) segments whose frames or video are missing instead of stopping. (default: stop)")] = None,
    cache_clips: Annotated[bool | None, typer.Option("--cache-clips/--no-cache-clips", help="Decode and resize each video once into outputs/cache/clips (memory-mapped), so later epochs skip decoding; training clips then start on the stride grid. (default: off)")] = None,
    modalities: Annotated[str | None, typer.Option(help="Inputs, comma-separated: rgb, audio (log-mel of the clip's sound), motion (frame differences or optical flow; EK100: its flow_frames), features (precomputed, see --features). (default: rgb)")] = None,
    fusion: Annotated[Literal["late", "weighted", "joint"] | None, typer.Option(help="With several modalities: late (a head each, log-probabilities averaged; per-modality accuracy reported), weighted (late fusion with learned modality weights) or joint (features concatenated into one head). (default: late)")] = None,
    motion: Annotated[Literal["difference", "farneback"] | None, typer.Option(help="How the motion modality is computed from decoded frames: difference (grey-level change from the previous frame) or farneback (OpenCV optical flow, slower). (default: difference)")] = None,
    features: FeaturesOpt = None,
    features_fps: FeaturesFpsOpt = None,
    no_audio: Annotated[Literal["zeros", "skip"] | None, typer.Option(help="A video without sound: silent spectrogram (zeros) or leave it out (skip); counted either way. (default: zeros)")] = None,
    observe_range: Annotated[tuple[float, float] | None, typer.Option(help="Early prediction: train each clip on only the first r of its video, r uniform in [LOW, HIGH], e.g. 0.1 1.0. (default: whole videos)")] = None,
    cache_limit_gb: Annotated[float | None, typer.Option(help="Disk limit of the clip cache in GB; videos past it are decoded every epoch. (default: 20)")] = None,
    warmup: Annotated[float | None, typer.Option(help="Fraction of steps with linear LR warm-up. (default: 0.1)")] = None,
    schedule: Annotated[str | None, typer.Option(help="cosine or step. (default: cosine)")] = None,
    step_every: Annotated[int | None, typer.Option(help="step schedule: epochs between LR drops. (default: 10)")] = None,
    step_gamma: Annotated[float | None, typer.Option(help="step schedule: LR factor per drop. (default: 0.1)")] = None,
    head_lr_mult: Annotated[float | None, typer.Option(help="LR multiplier for the new head. (default: 1)")] = None,
    label_smoothing: Annotated[float | None, typer.Option(help="Label smoothing of the loss. (default: 0; transformers 0.1)")] = None,
    precision: Annotated[str | None, typer.Option(help="32, bf16 (CPU or GPU) or 16 (CUDA). (default: 32)")] = None,
    accumulate: Annotated[int | None, typer.Option(help="Batches per optimizer step (gradient accumulation). (default: 1)")] = None,
    clip_grad: Annotated[float | None, typer.Option(help="Clip the gradient norm to this value. (default: off)")] = None,
    early_stop: Annotated[int | None, typer.Option(help="Stop after N epochs without improvement of --monitor. (default: off)")] = None,
    monitor: Annotated[str | None, typer.Option(help="val_accuracy or val_loss: picks best.pt and early stopping. (default: val_accuracy)")] = None,
    ema: Annotated[float | None, typer.Option(help="Keep an exponential moving average of the weights with this decay, e.g. 0.999; it is validated and saved. (default: off)")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed. (default: 0)")] = None,
    memory_format: Annotated[Literal["auto", "channels_last", "contiguous"] | None, typer.Option(help="CPU training: memory format of the 3D convolutions and clips; auto = the faster of the two, timed once per model, clip and batch and cached in outputs/cache/memory_format.json. (default: auto)")] = None,
    model_config: Annotated[str | None, typer.Option("--model-config", help="Architecture overrides KEY=VALUE,... (lists in brackets, quoted in the shell). Hugging Face models: fields of its transformers configuration, e.g. hidden_size=64,num_hidden_layers=2 for a narrow model; Swin3D (swin3d_t/s/b): embed_dim, depths, num_heads, window_size, patch_size, mlp_ratio, e.g. 'embed_dim=48,depths=[2,2,2,2]'; sequence models (rulstm, avt, attentive_probe, early_lstm): hidden, layers, heads, steps, alpha, pretrain_epochs, feature_loss, supervised_steps (docs/anticipation.md); stored in the checkpoint. (default: none)")] = None,
    backbone: Annotated[str | None, typer.Option(help="Sequence models: the zoo backbone whose per-time features they read, extracted into the feature cache on the fly at --features-fps (instead of --features). (default: none)")] = None,
    backbone_weights: Annotated[str | None, typer.Option(help="Sequence models: weights of --backbone (an actcli checkpoint of it, kinetics, hf:<repo> or a file). (default: none)")] = None,
    device: DeviceOpt = None,
    experiment: ExperimentOpt = None,
    resume: Annotated[str | None, typer.Option(help="Continue an interrupted run: 'auto' (newest run of --experiment) or a last.pt / run folder. Its saved settings are used.")] = None,
    skip_nonfinite: Annotated[bool | None, typer.Option("--skip-nonfinite/--stop-nonfinite", help="A batch whose loss is NaN or infinite: skip it and count it in the report, instead of stopping the run with its step number. (default: stop)")] = None,
    nproc: NprocOpt = None,
    sync_bn: Annotated[bool | None, typer.Option("--sync-bn/--no-sync-bn", help="With several processes: BatchNorm statistics over the global batch (SyncBatchNorm). (default: off)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Train on the train split, validate every epoch, keep best.pt and last.pt.

    Defaults depend on the model family where the help says so: transformers (Hugging Face models,
    torchvision's mvit and swin3d) get VideoMAE's fine-tuning recipe for every option not given
    (AdamW, lr 0.001 x global batch / 256, weight decay 0.05, layer decay 0.75, drop path 0.1, mixup
    0.8, cutmix 1.0, label smoothing 0.1, repeated aug 2, randaugment); CNNs and all pytorchvideo
    models keep the plain defaults. The values used are in the run's config.toml.

    Ctrl-C or SIGTERM stop after the current step, save last.pt and the report, and print the
    --resume command.
    """
    from actcli.commands.train import train as run

    settings, sources = settings_from_options(
        config, data__dataset=dataset, data__root=root, data__annotations_dir=annotations,
        model__name=model, model__weights=weights, model__freeze=freeze, model__dropout=dropout, model__config=model_config,
        model__backbone=backbone, model__backbone_weights=backbone_weights,
        model__drop_path=drop_path,
        data__frames=frames, data__stride=stride, data__crop=crop, data__hflip=hflip, data__augment=augment,
        data__auto_augment=auto_augment, train__mixup=mixup, train__cutmix=cutmix, train__repeated_aug=repeated_aug,
        train__layer_decay=layer_decay, train__grad_checkpointing=grad_checkpointing,
        train__optimizer=optimizer, train__lr=lr, train__weight_decay=weight_decay,
        train__epochs=epochs, train__batch_size=batch_size, data__workers=workers, data__decoder=decoder, data__skip_missing=skip_missing,
        data__cache_clips=cache_clips, data__cache_limit_gb=cache_limit_gb, train__observe_range=observe_range,
        data__modalities=modalities, model__fusion=fusion, data__no_audio=no_audio, data__motion=motion,
        data__features=features, data__features_fps=features_fps, train__seed=seed, train__device=device, train__experiment=experiment, train__warmup=warmup,
        train__schedule=schedule, train__step_every=step_every, train__step_gamma=step_gamma,
        train__head_lr_mult=head_lr_mult, train__label_smoothing=label_smoothing, train__precision=precision,
        train__accumulate=accumulate, train__clip_grad=clip_grad, train__early_stop=early_stop,
        train__monitor=monitor, train__ema=ema, train__sync_bn=sync_bn, train__skip_nonfinite=skip_nonfinite,
        train__memory_format=memory_format,
    )
    if hand_to_torchrun("train", settings, sources, nproc, ["--resume", resume] if resume else []):
        return
    run(settings, resume, sources)


@app.command()
@handle_errors
def test(
    weights: CheckpointOpt = None,
    split: Annotated[str | None, typer.Option(help="train, val or test. (default: test)")] = None,
    experiment: Annotated[str | None, typer.Option(help="Use the latest run of this experiment.")] = None,
    dataset: DatasetOpt = None,
    root: RootOpt = None,
    annotations: AnnotationsOpt = None,
    batch_size: Annotated[int | None, typer.Option(help="Clips per batch. (default: 8)")] = None,
    views: Annotated[str | None, typer.Option(help="TxS: T clips spread over each video x S crops (1-3), softmax averaged per video; e.g. 10x3. (default: 1x1)")] = None,
    precision: PrecisionOpt = None,
    runtime: RuntimeOpt = None,
    sls: Annotated[tuple[int, int, int] | None, typer.Option(help="EK100 submissions: supervision levels PT TL TD (0-5 each) written into the JSON. (default: 5 5 5)")] = None,
    observe: Annotated[str | None, typer.Option(help="Early prediction: comma-separated ratios, e.g. 0.1,0.2,0.5,1.0; each video is classified from its first r only; writes report-early-<split>.json and a PNG curve. (default: off)")] = None,
    tau_a: Annotated[str | None, typer.Option(help="Anticipation models (rulstm, avt, attentive_probe): comma-separated anticipation times in seconds, e.g. 2,1.5,1,0.5, all scored in this test (report-anticipation-<split>.json and a PNG against tau_a). (default: the annotated tau_a)")] = None,
    workers: WorkersOpt = None,
    decoder: DecoderOpt = None,
    skip_missing: Annotated[bool | None, typer.Option("--skip-missing/--no-skip-missing", help="EK100: leave out (and count) segments whose frames or video are missing instead of stopping. (default: stop)")] = None,
    features: FeaturesOpt = None,
    nproc: NprocOpt = None,
    device: DeviceOpt = None,
    report: ReportOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Evaluate a checkpoint: top-1/5, mean class accuracy, F1, per-class scores, confusion matrix."""
    from actcli.commands.model import test as run

    settings, sources = settings_from_options(
        config, test__split=split, data__dataset=dataset, data__root=root,
        data__annotations_dir=annotations, test__batch_size=batch_size, test__views=views, test__precision=precision, test__runtime=runtime, test__observe=observe, test__tau_a=tau_a, test__sls=sls, data__workers=workers, data__decoder=decoder, data__skip_missing=skip_missing,
        data__features=features,
        train__device=device,
    )
    passed = [*(["--weights", str(weights)] if weights else []), *(["--experiment", experiment] if experiment else []),
              *(["--report", str(report)] if report else [])]
    if hand_to_torchrun("test", settings, sources, nproc, passed):
        return
    run(settings, sources, weights, experiment, report)


@app.command()
@handle_errors
def benchmark(
    weights: CheckpointOpt = None,
    model: Annotated[str | None, typer.Option("--model", help="Benchmark a zoo model (random weights) instead of a checkpoint.")] = None,
    experiment: Annotated[str | None, typer.Option(help="Use the latest run of this experiment.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Clips per batch. (default: 2)")] = None,
    warmup: Annotated[int | None, typer.Option(help="Untimed warm-up runs. (default: 3)")] = None,
    runs: Annotated[int | None, typer.Option(help="Timed runs (p50/p95 over these). (default: 20)")] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads. (default: torch's choice)")] = None,
    reference: Annotated[bool | None, typer.Option("--reference/--no-reference", help="Also time the prototype's way side by side (eager fp32 model in contiguous memory; whole video decoded with PyAV) and report the speed-ups. (default: on)")] = None,
    frames: FramesOpt = None,
    stride: StrideOpt = None,
    crop: CropOpt = None,
    dataset: DatasetOpt = None,
    root: RootOpt = None,
    decoder: DecoderOpt = None,
    precision: PrecisionOpt = None,
    runtime: RuntimeOpt = None,
    device: DeviceOpt = None,
    report: ReportOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Latency (p50/p95 ms per sample) and throughput, model alone and end to end from video files."""
    from actcli.commands.model import benchmark as run

    if model is not None and weights is not None:
        raise UserError("pass either --model or --weights, not both")
    settings, sources = settings_from_options(
        config, model__name=model, benchmark__batch_size=batch_size, benchmark__warmup=warmup,
        benchmark__runs=runs, benchmark__threads=threads, benchmark__reference=reference, data__frames=frames, data__stride=stride,
        data__crop=crop, data__dataset=dataset, data__root=root, data__decoder=decoder, test__precision=precision, test__runtime=runtime, train__device=device,
    )
    run(settings, sources, weights, experiment, model is not None, report)


@app.command()
@handle_errors
def predict(
    video: Annotated[Path, typer.Argument(help="A video file.")],
    weights: CheckpointOpt = None,
    top_k: Annotated[int, typer.Option(help="How many classes to show.")] = 5,
    experiment: Annotated[str | None, typer.Option(help="Use the latest run of this experiment.")] = None,
    decoder: DecoderOpt = None,
    precision: PrecisionOpt = None,
    runtime: RuntimeOpt = None,
    device: DeviceOpt = None,
    report: Annotated[Path | None, typer.Option("--report", help="Also write a JSON report here.")] = None,
    config: ConfigOpt = None,
) -> None:
    """The most likely classes for one video."""
    from actcli.commands.model import predict as run

    if top_k < 1:
        raise UserError("--top-k must be at least 1")
    settings, _ = settings_from_options(config, train__device=device, data__decoder=decoder, test__precision=precision,
                                         test__runtime=runtime)
    run(settings, video, weights, experiment, top_k, report)


@app.command()
@handle_errors
def score(
    predictions: Annotated[Path, typer.Argument(help="An EK100 submission JSON (recognition or anticipation), e.g. written by `actcli test`.")],
    annotations: Annotated[Path, typer.Option(help="Labelled segments to score against, e.g. EPIC_100_validation.csv.")],
    task: Annotated[str | None, typer.Option(help="recognition (top-1/5 accuracy) or anticipation (class-mean top-5 recall). (default: the file's challenge)")] = None,
    subsets: Annotated[Path | None, typer.Option(help="Folder with EPIC_100_tail_verbs.csv, EPIC_100_tail_nouns.csv and EPIC_100_unseen_participant_ids_validation.csv. (default: the annotations' folder)")] = None,
    unseen: Annotated[Path | None, typer.Option(help="Unseen-participant CSV to use instead, e.g. EPIC_100_unseen_participant_ids_test.csv.")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Where to write the JSON report. (default: <predictions>-score-<task>.json)")] = None,
) -> None:
    """Score an EK100 submission offline exactly as the official evaluators do (overall, unseen, tail)."""
    from actcli.commands.ek100 import score as run

    if task not in (None, "recognition", "anticipation"):
        raise UserError(f"--task must be recognition or anticipation, not {task!r}")
    run(predictions, annotations, task, subsets, unseen, report)


@app.command("models")
@handle_errors
def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    family: Annotated[str | None, typer.Option(help="Only this family: pytorchvideo, torchvision or huggingface. (default: all)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Every zoo model: family, parameters, GFLOPs per clip (counted once, then kept in outputs/cache/), native clip,
    normalisation, published weights and whether they are cached here."""
    from actcli.commands.zoo import list_models

    settings, _ = settings_from_options(config)
    list_models(as_json, family, settings.paths.outputs)


@app.command()
@handle_errors
def export(
    weights: CheckpointOpt = None,
    format: Annotated[str, typer.Option("--format", help="torchscript, onnx or openvino (an IR: .xml + .bin).")] = "onnx",
    out: Annotated[Path | None, typer.Option(help="Output file. (default: next to the checkpoint, .ts, .onnx or .xml)")] = None,
    experiment: Annotated[str | None, typer.Option(help="Use the latest run of this experiment.")] = None,
    int8: Annotated[bool, typer.Option("--int8", help="openvino: quantise to int8 (NNCF post-training quantisation calibrated on training clips); prints latency and test-split top-1 before and after, and writes a report.")] = False,
    calibration_clips: Annotated[int, typer.Option(min=1, help="--int8: training clips that calibrate the quantisation.")] = 300,
    dataset: DatasetOpt = None,
    root: RootOpt = None,
    annotations: AnnotationsOpt = None,
    workers: WorkersOpt = None,
    decoder: DecoderOpt = None,
    report: Annotated[Path | None, typer.Option("--report", help="--int8: where to write the JSON report. (default: beside the export)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Export a checkpoint to TorchScript, ONNX or OpenVINO IR (classes, clip spec and preprocessing embedded).

    With --int8 (openvino) the calibration and test clips come from the dataset the checkpoint was trained
    on unless --dataset / --root / --annotations name another.
    """
    from actcli.commands.export import export as run

    settings, sources = settings_from_options(config, data__dataset=dataset, data__root=root,
                                              data__annotations_dir=annotations, data__workers=workers,
                                              data__decoder=decoder)
    run(settings, weights, experiment, format, out, int8=int8, calibration_clips=calibration_clips,
        sources=sources, report_file=report)


@app.command()
@handle_errors
def extract(
    out: Annotated[Path, typer.Option(help="Where to write: an LMDB folder in RULSTM's layout (--format lmdb) or a folder of <video>.npy files.")],
    dataset: DatasetOpt = None,
    root: RootOpt = None,
    annotations: AnnotationsOpt = None,
    model: Annotated[str | None, typer.Option("--model", help="The zoo backbone. (default: the model of --weights when it is an actcli checkpoint)")] = None,
    weights: Annotated[str | None, typer.Option(help="Its weights: an actcli checkpoint of it, kinetics, hf:<repo> or the publisher's file.")] = None,
    experiment: Annotated[str | None, typer.Option(help="Use best.pt of the latest run of this experiment as --weights.")] = None,
    fps: Annotated[float, typer.Option(help="Feature rows per second of video; row r is the clip ending at r / fps.")] = 30.0,
    format: Annotated[Literal["lmdb", "npy"], typer.Option("--format", help="lmdb (RULSTM's layout: <video>_frame_<10 digits>.jpg -> float32) or npy.")] = "lmdb",
    tokens: Annotated[bool, typer.Option("--tokens", help="Store the backbone's spatio-temporal tokens before pooling (N x D per row, for attentive_probe) instead of its pooled features.")] = False,
    frames: FramesOpt = None,
    stride: StrideOpt = None,
    crop: CropOpt = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Clips per forward pass.")] = 32,
    workers: WorkersOpt = None,
    decoder: DecoderOpt = None,
    device: DeviceOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Per-time features of a backbone for every video of an annotated dataset (resumable, with progress).

    Row r holds the features of the clip that ends at time r / fps, so anticipation and early-prediction
    models reading them never see a frame after the time they read.
    """
    from actcli.commands.extract import extract as run
    from actcli.runs import latest_checkpoint

    settings, _ = settings_from_options(config, data__dataset=dataset, data__root=root, data__annotations_dir=annotations,
                                        data__frames=frames, data__stride=stride, data__crop=crop, data__decoder=decoder,
                                        data__workers=workers, train__device=device)
    if experiment is not None and weights is None:
        weights = str(latest_checkpoint(settings.paths.outputs, experiment))
    if model is None and weights is not None and Path(weights).is_file():
        from actcli.models.checkpoint import is_actcli_checkpoint, load_file

        data = load_file(Path(weights))
        model = data.get("model") if is_actcli_checkpoint(data) else None
    if model is None:
        raise UserError("pass --model (the zoo backbone) or --weights / --experiment with an actcli checkpoint")
    settings = settings.model_copy(update={"model": settings.model.model_copy(update={"name": model,
                                                                                      "weights": weights})})
    run(settings, out, fps, format, tokens, batch_size)


@config_app.command("show")
@handle_errors
def config_show(config: ConfigOpt = None) -> None:
    """Print every setting, its effective value and where it came from."""
    from actcli.settings import flatten

    settings, sources = load_settings(config)
    rows = [[key, "" if value is None else value, sources[key]]
            for key, value in flatten(settings.model_dump(mode="json")).items()]
    ui.console.print(ui.table("settings", ["key", "value", "source"], rows))


@app.command()
@handle_errors
def datasets(config: ConfigOpt = None) -> None:
    """Every supported dataset: the layout expected, where to get it, its splits, and whether it is here."""
    from actcli.commands.data import list_datasets

    settings, _ = settings_from_options(config)
    list_datasets(settings)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
