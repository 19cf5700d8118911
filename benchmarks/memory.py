"""Peak resident memory of `actcli train` and `actcli test` at two dataset sizes.

Training and evaluation stream clips from disk, so peak memory should not grow with the
number of videos. This generates two synthetic datasets (N and 4N clips per class), runs
one training epoch and one test on each in fresh processes, and prints the peak RSS (the
largest process, DataLoader workers included) as JSON.
Usage: python benchmarks/memory.py [--clips-per-class 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ACTCLI = str(Path(sys.executable).parent / "actcli")
FLAGS = ["--dataset", "synthetic", "--model", "r3d_tiny", "--workers", "2", "--batch-size", "8"]

PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_mib(args: list[str], cwd: Path) -> float:
    """Peak RSS in MiB of the largest process that ``args`` started (Linux: ru_maxrss in KiB)."""
    out = subprocess.run([sys.executable, "-c", PEAK, *args], cwd=cwd, check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips-per-class", type=int, default=10)
    args = parser.parse_args()
    env_clean = {k: v for k, v in os.environ.items() if not k.startswith("ACTCLI_")}
    os.environ.clear()
    os.environ.update(env_clean)
    results = {}
    for scale in (1, 4):
        clips = args.clips_per_class * scale
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            subprocess.run([ACTCLI, "download", "synthetic", "--dest", "data/synthetic", "--clips-per-class",
                            str(clips), "--groups", "10"], cwd=work, check=True, capture_output=True)
            subprocess.run([ACTCLI, "annotate", "--dataset", "synthetic"], cwd=work, check=True, capture_output=True)
            train = peak_mib([ACTCLI, "train", *FLAGS, "--epochs", "1", "--experiment", "mem"], work)
            test = peak_mib([ACTCLI, "test", "--experiment", "mem"], work)
            results[f"{clips * 8} videos"] = {"train_peak_mib": round(train), "test_peak_mib": round(test)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
