"""Frozen-backbone fine-tuning: actcli's cached-feature path vs the prototype's loop.

Both train only a new linear head on a frozen, randomly initialised X3D-XS (same seed, same
clips: the centred clip of every video, centre crop), for ``--epochs`` epochs, then report
validation accuracy. Run side by side in one process tree on the same generated data:

* reference (the prototype): every epoch, decode each whole video, cut the clip, run the
  full model in eager fp32 (backbone in ``eval()``), backpropagate into the head;
* actcli: ``actcli train --freeze backbone --no-augment``: backbone features computed once
  (decoding only the clip's frames, channels-last), cached on disk, head trained on them.

Prints the seconds of each, the speed-up and both accuracies as JSON.
Usage: python benchmarks/frozen_backbone.py [--epochs 10] [--clips-per-class 12]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from actcli.commands.train import train as actcli_train
from actcli.data.annotate import group_split, scan_folder_tree
from actcli.data.registry import remember_root
from actcli.data.synthetic import SyntheticSpec, generate
from actcli.data.transforms import eval_transform
from actcli.data.video import centre_clip_start, clip_indices
from actcli.models.zoo import build_model
from actcli.report import read_report
from actcli.settings import load_settings

MODEL, FRAMES, STRIDE, CROP = "x3d_xs", 4, 6, 112


def whole_video(path: Path) -> torch.Tensor:
    """The prototype's loader: every frame decoded, ``uint8 [T, C, H, W]``."""
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


def reference(root: Path, table, split, classes: int, epochs: int, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    model = build_model(MODEL, _spec(), classes, dropout=0.5)
    model.freeze_backbone()
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=1e-2)
    transform = eval_transform(CROP)
    rows = {name: table[split == name] for name in ("train", "val")}

    def clip(path: Path) -> torch.Tensor:
        frames = whole_video(path)
        start = centre_clip_start(len(frames), FRAMES, STRIDE)
        return transform(frames[clip_indices(len(frames), FRAMES, STRIDE, start)])

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
    seconds = time.perf_counter() - started
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model(torch.stack([clip(root / p) for p in rows["val"]["path"].iloc[i:i + 8]]))
                            for i in range(0, len(rows["val"]), 8)])
    accuracy = float((logits.argmax(1) == torch.tensor(rows["val"]["label_id"].tolist())).float().mean())
    return seconds, accuracy


def _spec():
    from actcli.data.video import ClipSpec

    return ClipSpec(FRAMES, STRIDE, CROP)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--clips-per-class", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chdir(work)
        root = work / "data" / "synthetic"
        generate(root, SyntheticSpec(classes=4, groups=4, clips_per_class=args.clips_per_class, frames=64,
                                     width=160, height=120))
        remember_root(work / "outputs", "synthetic", root)
        table = scan_folder_tree(root)
        split = group_split(table, (70, 15, 15))
        folder = work / "annotations" / "synthetic"
        folder.mkdir(parents=True)
        for name in ("train", "val", "test"):
            table[split == name].to_csv(folder / f"{name}.csv", index=False)
        classes = sorted(table["label"].unique())
        (folder / "labels.csv").write_text("id,name\n" + "".join(f"{i},{c}\n" for i, c in enumerate(classes)))

        ref_seconds, ref_accuracy = reference(root, table, split, len(classes), args.epochs, seed=0)
        settings, _ = load_settings(None, {
            "data.dataset": "synthetic", "model.name": MODEL, "model.freeze": "backbone", "data.augment": False,
            "data.frames": FRAMES, "data.stride": STRIDE, "data.crop": CROP, "train.epochs": args.epochs,
            "train.lr": 1e-2, "train.warmup": 0.0, "data.workers": 0, "train.experiment": "bench",
        })
        started = time.perf_counter()
        run = actcli_train(settings)
        actcli_seconds = time.perf_counter() - started
        metrics = read_report(run / "report-train.json").metrics
    print(json.dumps({
        "clips": {name: int((split == name).sum()) for name in ("train", "val")},
        "epochs": args.epochs, "model": f"{MODEL} {FRAMES}x{STRIDE}@{CROP} frozen, random init",
        "reference_seconds": round(ref_seconds, 1), "actcli_seconds": round(actcli_seconds, 1),
        "speedup": round(ref_seconds / actcli_seconds, 1),
        "reference_val_accuracy": round(ref_accuracy, 3),
        "actcli_val_accuracy": round(metrics["history"][-1]["val_accuracy"], 3),
    }, indent=2))


if __name__ == "__main__":
    main()
