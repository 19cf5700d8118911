"""``actcli annotate`` at the scale of the real datasets: Kinetics-400 (246k train + 20k val rows) or SSv2.

Builds, under ``--dest``, a tree of empty files named as the downloaders save them (annotate reads
names only) and the official files in their released format, then times one ``actcli annotate``
in a subprocess and reads its peak memory. Class and id counts follow the real datasets:
Kinetics-400 has 400 classes and about 3% of YouTube ids with two clips; SSv2 174 templates.

Usage: python benchmarks/annotate_scale.py [--dataset kinetics400|ssv2] [--train 246000] [--val 20000]
       [--dest /tmp/annotate-scale]
Prints one JSON line: rows, seconds, peak RSS (MB), the split sizes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def kinetics_tree(dest: Path, train: int, val: int, rng: np.random.Generator) -> Path:
    """``dest/videos/<label>/<id>_<start>_<end>.mp4`` (empty) and ``train.csv`` / ``validate.csv``."""
    labels = [f"class {c:03d}" for c in range(400)]
    lines = {"train": ["label,youtube_id,time_start,time_end,split"], "validate": ["label,youtube_id,time_start,"
                                                                                   "time_end,split"]}
    for split, count in (("train", train), ("validate", val)):
        ids = rng.integers(0, 36**11, count)
        twice = rng.random(count) < 0.03  # a second clip of an earlier video
        ids[twice] = ids[rng.integers(0, count, int(twice.sum()))]
        for n, (video, label) in enumerate(zip(ids, rng.integers(0, 400, count), strict=True)):
            youtube_id = np.base_repr(int(video), 36).rjust(11, "0")
            start = 10 * (n % 30)
            name = f"{youtube_id}_{start:06d}_{start + 10:06d}.mp4"
            folder = dest / "videos" / labels[label]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).touch()
            lines[split].append(f"{labels[label]},{youtube_id},{start},{start + 10},{split}")
    for split, rows in lines.items():
        (dest / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return dest


def ssv2_tree(dest: Path, train: int, val: int, rng: np.random.Generator) -> Path:
    """``dest/<id>.webm`` (empty) and ``labels.json``, ``train.json``, ``validation.json``."""
    templates = [f"Doing something number {c}" for c in range(174)]
    (dest / "labels.json").write_text(json.dumps({t: str(i) for i, t in enumerate(templates)}))
    video_id = 1
    for name, count in (("train.json", train), ("validation.json", val)):
        entries = []
        for label in rng.integers(0, 174, count):
            (dest / f"{video_id}.webm").touch()
            entries.append({"id": str(video_id), "template": templates[label].replace("something", "[something]"),
                            "placeholders": ["a cup"]})
            video_id += 1
        (dest / name).write_text(json.dumps(entries))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("kinetics400", "ssv2"), default="kinetics400")
    parser.add_argument("--train", type=int, default=246_000)
    parser.add_argument("--val", type=int, default=20_000)
    parser.add_argument("--dest", type=Path, default=Path("/tmp/annotate-scale"))
    args = parser.parse_args()
    root = args.dest / f"{args.dataset}-{args.train}-{args.val}"
    if not (root / "built").is_file():
        root.mkdir(parents=True, exist_ok=True)
        build = kinetics_tree if args.dataset == "kinetics400" else ssv2_tree
        build(root, args.train, args.val, np.random.default_rng(0))
        (root / "built").touch()
    work = args.dest / "work"
    work.mkdir(exist_ok=True)
    actcli = str(Path(sys.executable).with_name("actcli"))
    started = time.perf_counter()
    done = subprocess.run([actcli, "annotate", "--dataset", args.dataset, "--root", str(root)], cwd=work,
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(done.stdout + done.stderr)
    report = json.loads((work / "annotations" / args.dataset / "report-annotate.json").read_text())
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"dataset": args.dataset, "rows": args.train + args.val, "seconds": round(seconds, 1),
                      "peak_rss_mb": round(peak_mb), "splits": report["metrics"]["split_sizes"],
                      "shared_groups": report["metrics"]["shared_groups"]}))


if __name__ == "__main__":
    main()
