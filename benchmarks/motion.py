"""On-the-fly motion: frame differences vs OpenCV's Farneback flow, by speed and by accuracy.

Generates a synthetic dataset (8 motion classes, group split 60/20/20), then for each method:

* speed: milliseconds to build one training sample of ``--modalities motion`` (decode the clip
  and its previous frames, crop, compute motion), over ``--samples`` samples, single process;
* accuracy: ``actcli train --modalities motion --motion M`` for ``--epochs`` epochs (same seeds,
  recipe and data), then ``actcli test`` top-1 on the test split, averaged over ``--seeds`` runs.

The faster method wins unless the slower is clearly (> 2 points) more accurate; the default of
``data.motion`` follows the result. Prints JSON. Usage:
python benchmarks/motion.py [--epochs 8] [--clips-per-class 20] [--seeds 1] [--model r3d_tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from frozen_backbone import make_dataset

from actcli.commands.model import test as actcli_test
from actcli.commands.train import train as actcli_train
from actcli.data.registry import remember_root
from actcli.data.synthetic import SyntheticSpec
from actcli.models.zoo import get_entry
from actcli.pipeline import clip_dataset, clip_spec, data_source, inputs_of
from actcli.report import read_report
from actcli.runs import BEST
from actcli.settings import load_settings

METHODS = ("difference", "farneback")


def sample_ms(settings, samples: int) -> float:
    """Mean milliseconds per training sample of the motion modality alone."""
    source = data_source(settings)
    dataset = clip_dataset(source, "train", clip_spec(settings), training=True, inputs=inputs_of(settings))
    count = min(samples, len(dataset))
    started = time.perf_counter()
    for index in range(count):
        dataset[index]
    return (time.perf_counter() - started) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--clips-per-class", type=int, default=20)
    parser.add_argument("--model", default="r3d_tiny")
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=1, help="training runs per method (seeds 0, 1, ...)")
    args = parser.parse_args()
    spec = get_entry(args.model).clip
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.chdir(work)
        root, _, split, _ = make_dataset(work, "synthetic", SyntheticSpec(classes=8, groups=10,
                                                                         clips_per_class=args.clips_per_class),
                                         (60, 20, 20))
        remember_root(work / "outputs", "synthetic", root)
        for method in METHODS:
            seconds, top1 = [], []
            for seed in range(args.seeds):
                settings, sources = load_settings(None, {
                    "data.dataset": "synthetic", "model.name": args.model, "data.modalities": "motion",
                    "data.motion": method, "train.epochs": args.epochs, "train.lr": 5e-3, "model.dropout": 0.2,
                    "train.experiment": f"{method}-{seed}", "train.seed": seed, "data.workers": 2})
                if seed == 0:
                    milliseconds = sample_ms(settings, args.samples)
                started = time.perf_counter()
                run = actcli_train(settings)
                seconds.append(time.perf_counter() - started)
                report = actcli_test(settings, sources, run / BEST, None, None)
                top1.append(read_report(report).metrics["top1"])
            results[method] = {"ms_per_sample": round(milliseconds, 1),
                               "train_seconds": round(sum(seconds) / len(seconds), 1),
                               "test_top1": [round(a, 3) for a in top1],
                               "mean_test_top1": round(sum(top1) / len(top1), 3)}
    print(json.dumps({"model": f"{args.model} {spec}", "epochs": args.epochs,
                      "clips": {name: int((split == name).sum()) for name in ("train", "val", "test")},
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
