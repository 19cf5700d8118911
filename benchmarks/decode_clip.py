"""Clip decoding vs whole-video decoding (the prototype's way), side by side.

Writes a UCF50-sized video (320x240, 25 fps, ``--seconds`` long), then alternates the two
readers ``--runs`` times for a clip of ``--frames`` x ``--stride`` at a random start:

* reference: decode every frame of the file, then pick the clip's frames;
* actcli: ``actcli.data.video.read_clip`` (seek to the key frame before the clip, decode
  only up to its last frame).

Prints medians in milliseconds and the speed-up ratio (reference / actcli) as JSON.
Usage: python benchmarks/decode_clip.py [--seconds 7] [--frames 4] [--stride 12] [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from actcli.data.synthetic import SyntheticSpec, render_clip, write_video
from actcli.data.video import clip_indices, clip_span, read_clip


def decode_everything(path: Path, indices: list[int]) -> torch.Tensor:
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return torch.from_numpy(np.stack([frames[min(i, len(frames) - 1)] for i in indices]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=7.0, help="video length (UCF50 mean: ~7 s)")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--stride", type=int, default=12)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    total = int(args.seconds * 25)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v_MoveRight_g01_c01.avi"
        write_video(path, render_clip("MoveRight", 1, 1, SyntheticSpec(frames=total, width=320, height=240)))
        times: dict[str, list[float]] = {"reference_full_decode": [], "actcli_read_clip": []}
        slack = total - clip_span(args.frames, args.stride)
        for _ in range(args.runs):
            indices = clip_indices(total, args.frames, args.stride, int(rng.integers(0, slack + 1)))
            start = time.perf_counter()
            expected = decode_everything(path, indices)
            times["reference_full_decode"].append(time.perf_counter() - start)
            start = time.perf_counter()
            got, _ = read_clip(path, lambda _info, idx=indices: idx)
            times["actcli_read_clip"].append(time.perf_counter() - start)
            assert torch.equal(got.permute(0, 2, 3, 1), expected), "decoders disagree"
    medians = {k: 1000 * statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "video": f"{total} frames 320x240 MPEG-4", "clip": f"{args.frames}x{args.stride}", "runs": args.runs,
        "median_ms": {k: round(v, 2) for k, v in medians.items()},
        "speedup": round(medians["reference_full_decode"] / medians["actcli_read_clip"], 2),
    }, indent=2))


if __name__ == "__main__":
    main()
