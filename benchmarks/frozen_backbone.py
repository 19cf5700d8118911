"""Frozen-backbone fine-tuning: actcli's cached-feature path vs the prototype's loop.

A backbone is first pretrained with ``actcli train`` for ``--pretrain-epochs`` on another
generated dataset (8 motion classes, other scenes; 0 = random initialisation), like a
Kinetics checkpoint. Then both contenders train only a new linear head on that frozen
backbone (same weights, seed, recipe and clips: the centred clip of every video, centre
crop) for ``--epochs`` epochs on a 4-class dataset, and report validation accuracy. They run
side by side in one process tree on the same generated data:

* reference (the prototype): every epoch, decode each whole video, cut the clip, run the
  full model in eager fp32 (backbone in ``eval()``), backpropagate into the head;
* actcli: ``actcli train --freeze backbone --no-augment``: backbone features computed once
  (decoding only the clip's frames, channels-last), cached on disk, head trained on them.

Both use AdamW with a cosine schedule and no warm-up. Prints the seconds of each (pretraining
excluded), the speed-up and both accuracies as JSON.
Clips are the model's native spec. Usage:
python benchmarks/frozen_backbone.py [--epochs 10] [--model r3d_tiny] [--pretrain-epochs 12]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from actcli.commands.train import train as actcli_train
from actcli.data.annotate import group_split, scan_folder_tree
from actcli.data.registry import remember_root
from actcli.data.synthetic import SyntheticSpec, generate
from actcli.data.transforms import eval_transform
from actcli.data.video import ClipSpec, centre_clip_start, clip_indices
from actcli.engine.benchmark import whole_video
from actcli.models.checkpoint import load_initial_weights
from actcli.models.zoo import build_model, get_entry
from actcli.report import read_report
from actcli.runs import BEST
from actcli.settings import load_settings

LR = 1e-2


def reference(root: Path, table, split, classes: list[str], epochs: int, model_name: str,
              weights: str | None, spec: ClipSpec, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    model = build_model(model_name, spec, len(classes), dropout=0.5)
    if weights:
        load_initial_weights(model, model_name, weights, classes)
    model.freeze_backbone()
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=LR)
    steps = epochs * -(-int((split == "train").sum()) // 8)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    transform = eval_transform(spec.crop)
    rows = {name: table[split == name] for name in ("train", "val")}

    def clip(path: Path) -> torch.Tensor:
        frames = whole_video(path)
        start = centre_clip_start(len(frames), spec.frames, spec.stride)
        return transform(frames[clip_indices(len(frames), spec.frames, spec.stride, start)])

    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(rows["train"]))
        for batch in order.split(8):
            part = rows["train"].iloc[batch.tolist()]
            clips = torch.stack([clip(root / p) for p in part["path"]])
            loss = F.cross_entropy(model(clips), torch.tensor(part["label_id"].tolist()))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    seconds = time.perf_counter() - started
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model(torch.stack([clip(root / p) for p in rows["val"]["path"].iloc[i:i + 8]]))
                            for i in range(0, len(rows["val"]), 8)])
    accuracy = float((logits.argmax(1) == torch.tensor(rows["val"]["label_id"].tolist())).float().mean())
    return seconds, accuracy


def make_dataset(work: Path, name: str, spec: SyntheticSpec, fractions: tuple[int, int, int]):
    """Generate, register and annotate a synthetic dataset as ``annotations/<name>/``."""
    root = work / "data" / name
    generate(root, spec)
    table = scan_folder_tree(root)
    split = group_split(table, fractions)
    folder = work / "annotations" / name
    folder.mkdir(parents=True)
    for part in ("train", "val", "test"):
        table[split == part].to_csv(folder / f"{part}.csv", index=False)
    classes = sorted(table["label"].unique())
    (folder / "labels.csv").write_text("id,name\n" + "".join(f"{i},{c}\n" for i, c in enumerate(classes)))
    return root, table, split, classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--clips-per-class", type=int, default=40)
    parser.add_argument("--model", default="r3d_tiny")
    parser.add_argument("--pretrain-epochs", type=int, default=12)
    args = parser.parse_args()
    spec = get_entry(args.model).clip  # the model's native clip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chdir(work)
        base = {"data.dataset": "synthetic", "model.name": args.model, "data.frames": spec.frames,
                "data.stride": spec.stride, "data.crop": spec.crop, "data.workers": 0, "train.seed": 0}
        weights = None
        if args.pretrain_epochs:
            root, *_ = make_dataset(work, "pretrain", SyntheticSpec(classes=8, groups=8, clips_per_class=24,
                                                                  frames=64, width=160, height=120, seed=1),
                                    (80, 20, 0))
            remember_root(work / "outputs", "synthetic", root)
            settings, _ = load_settings(None, {**base, "data.annotations_dir": work / "annotations" / "pretrain",
                                               "train.epochs": args.pretrain_epochs, "train.lr": 5e-3,
                                               "model.dropout": 0.2, "train.experiment": "pretrain",
                                               "data.workers": 2})
            weights = str(actcli_train(settings) / BEST)
        root, table, split, classes = make_dataset(
            work, "synthetic", SyntheticSpec(classes=4, groups=8, clips_per_class=args.clips_per_class, frames=64,
                                             width=160, height=120), (60, 40, 0))
        remember_root(work / "outputs", "synthetic", root)

        ref_seconds, ref_accuracy = reference(root, table, split, classes, args.epochs, args.model, weights, spec,
                                              seed=0)
        settings, _ = load_settings(None, {
            **base, "model.freeze": "backbone", "data.augment": False, "model.weights": weights,
            "train.epochs": args.epochs, "train.lr": LR, "train.warmup": 0.0, "train.optimizer": "adamw",
            "train.schedule": "cosine", "train.experiment": "bench",
        })
        started = time.perf_counter()
        run = actcli_train(settings)
        actcli_seconds = time.perf_counter() - started
        metrics = read_report(run / "report-train.json").metrics
    print(json.dumps({
        "clips": {name: int((split == name).sum()) for name in ("train", "val")},
        "epochs": args.epochs,
        "model": f"{args.model} {spec} frozen, "
                 + (f"pretrained {args.pretrain_epochs} epochs on 8 other-scene classes" if weights else "random init"),
        "reference_seconds": round(ref_seconds, 1), "actcli_seconds": round(actcli_seconds, 1),
        "speedup": round(ref_seconds / actcli_seconds, 1),
        "reference_val_accuracy": round(ref_accuracy, 3),
        "actcli_val_accuracy": round(metrics["history"][-1]["val_accuracy"], 3),
    }, indent=2))


if __name__ == "__main__":
    main()
