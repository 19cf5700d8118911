"""Training throughput: ``actcli train`` against the loop users write today, on the same generated videos.

The reference is what pytorchvideo's tutorials teach: ``LabeledVideoDataset`` with
``make_clip_sampler("random", seconds)`` (validation: ``"uniform"``) and PyAV decoding, a transform
on the sample dict (temporal subsample, ``/ 255``, normalise, random short-side scale, random crop:
``pytorchvideo.transforms`` does not import with this torchvision, so the same steps in plain
torch), a ``DataLoader``, and a plain PyTorch loop (``zero_grad``, forward, cross-entropy,
``backward``, ``step``, a per-step LR schedule), validating every epoch. Both sides use the same model
(the zoo's builder), clip spec, batch, recipe (AdamW, lr, weight decay, 10% linear warm-up then cosine,
dropout), workers, epochs and threads, on the same train/val split of the same files (``actcli download
synthetic`` + ``annotate``: the demo's dataset by default).

Each side runs in its own process (start-up counted), one after the other; actcli runs twice, as is and
with ``--cache-clips`` (each video decoded once, then memory-mapped frames: its documented path for
multi-epoch training). Printed as JSON:

* clips per second end to end (training clips x epochs / wall seconds of the whole process) and in
  the training passes alone, and their ratio;
* validation accuracy per epoch and the time to the first epoch reaching ``--target`` accuracy;
* the loaders alone (no model): clips per second of one training epoch with 0, 1 and 2 workers.

Usage: python benchmarks/training.py [--model r3d_tiny] [--epochs 8] [--workers 2] [--batch 8]
       [--classes 8] [--clips-per-class 40] [--video-frames 32]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
FPS = 25  # the synthetic generator's frame rate


# ---------------------------------------------------------------------------- the reference (tutorial) loop


def reference_datasets(root: Path, annotations: Path, frames: int, stride: int, crop: int, training_only=False):
    """pytorchvideo ``LabeledVideoDataset`` train/val sets as the tutorials build them."""
    import pandas as pd
    import torch
    from pytorchvideo.data import LabeledVideoDataset, make_clip_sampler

    classes = pd.read_csv(annotations / "labels.csv")["name"].tolist()
    seconds = frames * stride / FPS
    mean = torch.tensor([0.45, 0.45, 0.45]).view(3, 1, 1, 1)
    std = torch.tensor([0.225, 0.225, 0.225]).view(3, 1, 1, 1)

    def transform(training: bool):
        def apply(sample: dict) -> dict:
            video = sample["video"]  # float [C, T', H, W], 0..255, every frame of the clip's time window
            index = torch.linspace(0, video.shape[1] - 1, frames).round().long()  # UniformTemporalSubsample
            video = (video[:, index] / 255.0 - mean) / std
            c, t, h, w = video.shape
            short = int(torch.randint(crop, int(round(crop * 1.25)) + 1, ()).item()) if training else crop
            size = (short, int(round(w * short / h))) if h <= w else (int(round(h * short / w)), short)
            video = torch.nn.functional.interpolate(video, size=size, mode="bilinear", align_corners=False,
                                                    antialias=True)  # RandomShortSideScale / ShortSideScale
            h, w = video.shape[-2:]
            if training:  # RandomCrop
                top, left = (int(torch.randint(0, n - crop + 1, ()).item()) for n in (h, w))
            else:  # CenterCrop
                top, left = (h - crop) // 2, (w - crop) // 2
            return {"video": video[..., top:top + crop, left:left + crop].contiguous(), "label": sample["label"]}
        return apply

    def items(split: str):
        table = pd.read_csv(annotations / f"{split}.csv")
        return [(str(root / p), {"label": int(i)}) for p, i in zip(table["path"], table["label_id"], strict=True)]

    train = LabeledVideoDataset(items("train"), make_clip_sampler("random", seconds),
                                video_sampler=torch.utils.data.RandomSampler, transform=transform(True),
                                decode_audio=False, decoder="pyav")
    if training_only:
        return train, None, classes
    val = LabeledVideoDataset(items("val"), make_clip_sampler("uniform", seconds),
                              video_sampler=torch.utils.data.SequentialSampler, transform=transform(False),
                              decode_audio=False, decoder="pyav")
    return train, val, classes


def reference_loop(args: argparse.Namespace) -> dict:
    """The tutorial loop; returns per-epoch seconds and validation accuracy."""
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from actcli.data.video import ClipSpec
    from actcli.models.zoo import build_model

    root, annotations = Path(args.root), Path(args.annotations)
    train_set, val_set, classes = reference_datasets(root, annotations, args.frames, args.stride, args.crop)
    torch.manual_seed(0)
    model = build_model(args.model, ClipSpec(args.frames, args.stride, args.crop), len(classes),
                        dropout=args.dropout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(train_set.num_videos / args.batch)
    total, warmup = args.epochs * steps_per_epoch, max(1, round(0.1 * args.epochs * steps_per_epoch))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: (s + 1) / warmup if s < warmup else
                                                  0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup))))
    train_loader = DataLoader(train_set, batch_size=args.batch, num_workers=args.workers)
    val_loader = DataLoader(val_set, batch_size=args.batch, num_workers=args.workers)
    history, clips = [], 0
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        model.train()
        for batch in train_loader:
            loss = F.cross_entropy(model(batch["video"]), batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            clips += len(batch["label"])
        trained = time.perf_counter() - started
        model.eval()
        correct = seen = 0
        with torch.no_grad():
            for batch in val_loader:
                correct += int((model(batch["video"]).argmax(1) == batch["label"]).sum())
                seen += len(batch["label"])
        history.append({"epoch": epoch, "train_seconds": trained, "seconds": time.perf_counter() - started,
                        "val_accuracy": correct / max(1, seen)})
    return {"history": history, "train_clips": clips}


# ---------------------------------------------------------------------------- loaders alone


def loader_rates(args: argparse.Namespace, workdir: Path) -> dict:
    """Clips per second of one training epoch of each loader alone (no model), with 0, 1 and 2 workers."""
    import torch
    from torch.utils.data import DataLoader

    from actcli.data.datasets import make_loader
    from actcli.data.video import ClipSpec
    from actcli.pipeline import clip_dataset, data_source
    from actcli.settings import load_settings

    os.chdir(workdir)
    settings, _ = load_settings(None, {"data.dataset": "synthetic", "data.root": args.root})
    source = data_source(settings)
    spec = ClipSpec(args.frames, args.stride, args.crop)
    actcli_set = clip_dataset(source, "train", spec, training=True, hflip=False)
    reference_set, _, _ = reference_datasets(Path(args.root), Path(args.annotations), args.frames, args.stride,
                                             args.crop, training_only=True)
    out: dict[str, dict[str, float]] = {"actcli": {}, "reference": {}}
    for workers in (0, 1, 2):
        for name in ("actcli", "reference"):
            torch.manual_seed(0)
            loader = (make_loader(actcli_set, args.batch, workers, True, 0) if name == "actcli"
                      else DataLoader(reference_set, batch_size=args.batch, num_workers=workers))
            started, clips = time.perf_counter(), 0
            for batch in loader:
                clips += len(batch["labels"] if name == "actcli" else batch["label"])
            out[name][f"{workers}_workers"] = round(clips / (time.perf_counter() - started), 1)
    return out


# ---------------------------------------------------------------------------- the driver


def time_to(history: list[dict], target: float, key: str = "seconds") -> float | None:
    """Seconds (cumulative ``key``) until the first epoch whose validation accuracy reaches ``target``."""
    elapsed = 0.0
    for record in history:
        elapsed += record[key]
        if record["val_accuracy"] is not None and record["val_accuracy"] >= target:
            return round(elapsed, 1)
    return None


def run_actcli(args: argparse.Namespace, workdir: Path, experiment: str = "bench", extra: tuple[str, ...] = ()) -> dict:
    command = [str(Path(sys.executable).with_name("actcli")), "train", "--dataset", "synthetic", "--root", args.root,
               "--model", args.model, "--frames", str(args.frames), "--stride", str(args.stride), "--crop",
               str(args.crop), "--epochs", str(args.epochs), "--batch-size", str(args.batch), "--workers",
               str(args.workers), "--lr", str(args.lr), "--weight-decay", str(args.weight_decay), "--dropout",
               str(args.dropout), "--optimizer", "adamw", "--experiment", experiment, "--decoder", args.decoder, *extra]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"actcli train failed:\n{done.stdout[-1000:]}\n{done.stderr[-2000:]}")
    report = json.loads(next((workdir / "outputs" / "runs" / experiment).glob("*/report-train.json")).read_text())
    history = report["metrics"]["history"]
    return {"wall": wall, "history": [{"epoch": r["epoch"], "seconds": r["seconds"], "val_accuracy": r["val_accuracy"]}
                                      for r in history], "config": report["config"]}


def run_reference(args: argparse.Namespace) -> dict:
    command = [sys.executable, str(HERE), "--reference-loop", *sys.argv[1:]]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"the reference loop failed:\n{done.stderr[-2000:]}")
    return {"wall": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="r3d_tiny")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--stride", type=int, default=4)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--weight-decay", type=float, default=5e-5)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--target", type=float, default=0.8, help="validation accuracy for time-to-accuracy")
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--clips-per-class", type=int, default=40)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--video-frames", type=int, default=32, help="frames per generated video (demo: 32)")
    parser.add_argument("--decoder", default="auto")
    parser.add_argument("--skip-loaders", action="store_true", help="leave out the 0/1/2-worker loader pass")
    parser.add_argument("--reference-loop", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--annotations", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_loop:
        print(json.dumps(reference_loop(args)))
        return
    from actcli.data.synthetic import SyntheticSpec, generate
    from actcli.report import cpu_name

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        root = workdir / "data" / "synthetic"
        generate(root, SyntheticSpec(classes=args.classes, groups=args.groups, clips_per_class=args.clips_per_class,
                                     frames=args.video_frames))
        actcli_bin = str(Path(sys.executable).with_name("actcli"))
        subprocess.run([actcli_bin, "annotate", "--dataset", "synthetic", "--root", str(root)], cwd=workdir,
                       check=True, capture_output=True)
        args.root, args.annotations = str(root), str(workdir / "annotations" / "synthetic")
        sys.argv += ["--root", args.root, "--annotations", args.annotations]
        ours = run_actcli(args, workdir)
        cached = run_actcli(args, workdir, "bench-cached", ("--cache-clips",))
        theirs = run_reference(args)
        loaders = None if args.skip_loaders else loader_rates(args, workdir)
        train_clips = theirs["train_clips"] // args.epochs
    runs = {"actcli": ours, "actcli_cache_clips": cached, "reference": theirs}
    epoch_seconds = {k: sum(r["seconds"] for r in v["history"]) for k, v in runs.items()}  # with validation
    clips = train_clips * args.epochs
    rates = {k: clips / v["wall"] for k, v in runs.items()}
    print(json.dumps({
        "cpu": cpu_name(), "threads": os.cpu_count(),
        "videos": f"{args.classes * args.clips_per_class} synthetic ({args.video_frames} frames, 160x120 MPEG-4 AVI)",
        "train_clips_per_epoch": train_clips, "model": f"{args.model} {args.frames}x{args.stride}@{args.crop}",
        "batch": args.batch, "workers": args.workers, "epochs": args.epochs,
        "recipe": f"AdamW lr {args.lr} wd {args.weight_decay}, 10% warm-up + cosine, dropout {args.dropout}",
        "clips_per_s_end_to_end": {k: round(v, 1) for k, v in rates.items()},
        "speedup_end_to_end": {k: round(rates[k] / rates["reference"], 2) for k in ("actcli", "actcli_cache_clips")},
        "clips_per_s_epochs_with_validation": {k: round(clips / v, 1) for k, v in epoch_seconds.items()},
        "speedup_epochs": {k: round(epoch_seconds["reference"] / epoch_seconds[k], 2)
                           for k in ("actcli", "actcli_cache_clips")},
        "wall_seconds": {k: round(v["wall"], 1) for k, v in runs.items()},
        "val_accuracy_per_epoch": {k: [round(r["val_accuracy"], 3) for r in v["history"]] for k, v in runs.items()},
        "best_val_accuracy": {k: round(max(r["val_accuracy"] for r in v["history"]), 3) for k, v in runs.items()},
        f"seconds_to_val_accuracy_{args.target}": {k: time_to(v["history"], args.target) for k, v in runs.items()},
        "loader_only_clips_per_s": loaders,
    }, indent=2))


if __name__ == "__main__":
    main()
