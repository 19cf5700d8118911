"""Clip cache (``--cache-clips``) vs decoding every epoch, for full fine-tuning with augmentation.

On generated UCF50-like videos (320x240 MPEG-4 AVI, 25 fps, ``--seconds`` long) it measures,
side by side in one process:

* **loading**: one pass of the training dataset (random clip position, random resize, crop,
  flip; no model), decoding every clip vs reading the filled cache: clips per second;
* **training**: ``actcli train`` of ``--model`` for ``--epochs`` epochs without and with
  ``--cache-clips`` (2 loader workers): seconds per epoch after the first (the first epoch
  of the cached run also fills the cache, reported apart).

Prints the figures, the ratios and the cache's size as JSON.
Usage: python benchmarks/clip_cache.py [--videos 48] [--epochs 3] [--model r3d_tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from actcli.commands.train import train as actcli_train
from actcli.data.annotate import group_split, scan_folder_tree
from actcli.data.clip_cache import TRAIN_VIEW, ClipCache, fill_clip_cache
from actcli.data.registry import remember_root
from actcli.data.synthetic import SyntheticSpec, generate
from actcli.models.zoo import get_entry
from actcli.pipeline import clip_dataset, data_source
from actcli.report import read_report
from actcli.settings import load_settings


def annotate(work: Path, root: Path) -> None:
    table = scan_folder_tree(root)
    split = group_split(table, (70, 15, 15))
    folder = work / "annotations" / "synthetic"
    folder.mkdir(parents=True)
    for part in ("train", "val", "test"):
        table[split == part].to_csv(folder / f"{part}.csv", index=False)
    classes = sorted(table["label"].unique())
    (folder / "labels.csv").write_text("id,name\n" + "".join(f"{i},{c}\n" for i, c in enumerate(classes)))


def loading_rate(dataset) -> float:
    """Clips per second of one pass over ``dataset`` in this process."""
    start = time.perf_counter()
    for i in range(len(dataset)):
        dataset[i]
    return len(dataset) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=48)
    parser.add_argument("--seconds", type=float, default=7.0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", default="r3d_tiny")
    args = parser.parse_args()
    spec = get_entry(args.model).clip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chdir(work)
        root = work / "data" / "synthetic"
        generate(root, SyntheticSpec(classes=4, groups=8, clips_per_class=args.videos // 4,
                                     frames=int(args.seconds * 25), width=320, height=240))
        remember_root(work / "outputs", "synthetic", root)
        annotate(work, root)
        base = {"data.dataset": "synthetic", "model.name": args.model, "train.epochs": args.epochs,
                "data.workers": 2, "train.lr": 5e-3}

        settings, _ = load_settings(None, base)
        source = data_source(settings)
        dataset = clip_dataset(source, "train", spec, training=True, hflip=True)
        cache = ClipCache(work / "bench-cache", spec, source.decoder, limit_bytes=10**12)
        videos = [dataset.root / p for p in dataset.paths]
        fill_clip_cache(cache, videos, spec, TRAIN_VIEW, source.decoder, workers=0)
        decoded = loading_rate(dataset)
        dataset.clip_cache = cache
        cached = loading_rate(dataset)

        epoch_seconds = {}
        fill_seconds = 0.0
        for name, extra in (("decode_every_epoch", {}), ("cache_clips", {"data.cache_clips": True})):
            settings, _ = load_settings(None, {**base, **extra, "train.experiment": name})
            started = time.perf_counter()
            run = actcli_train(settings)
            total = time.perf_counter() - started
            history = read_report(run / "report-train.json").metrics["history"]
            epoch_seconds[name] = statistics.fmean(r["seconds"] for r in history[1:])
            if name == "cache_clips":
                fill_seconds = total - sum(r["seconds"] for r in history)
                metrics = read_report(run / "report-train.json").metrics["clip_cache"]
    print(json.dumps({
        "videos": f"{args.videos} x {args.seconds:g} s 320x240 MPEG-4 AVI", "decoder": source.decoder,
        "model": f"{args.model} {spec}", "train_clips": len(dataset),
        "loading_clips_per_s": {"decode": round(decoded, 1), "cache": round(cached, 1)},
        "loading_speedup": round(cached / decoded, 1),
        "seconds_per_epoch_after_first": {k: round(v, 1) for k, v in epoch_seconds.items()},
        "epoch_speedup": round(epoch_seconds["decode_every_epoch"] / epoch_seconds["cache_clips"], 2),
        "cache_fill_and_setup_seconds": round(fill_seconds, 1),
        "cache_mb": round(metrics["used_bytes"] / 1e6, 1),
        "cache_kb_per_video": round(metrics["used_bytes"] / 1e3 / metrics["videos"], 1),
    }, indent=2))


if __name__ == "__main__":
    main()
