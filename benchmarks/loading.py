"""Clip loading speed: actcli vs pytorchvideo's LabeledVideoDataset vs the prototype's loader.

Same generated UCF50-like files (320x240 MPEG-4 AVI, 25 fps, ``--seconds`` long), same
clip spec (``--frames`` frames every ``--stride`` frames, random position), one process,
no workers, decoding only (no resize), interleaved so machine noise hits all alike:

* prototype: decode the whole video, pick the clip's frames;
* pytorchvideo: ``LabeledVideoDataset`` with a random clip sampler and PyAV decoding (it
  decodes every frame of the clip's time window), then the clip's frames are picked;
* actcli: ``read_clip`` (seek to the key frame before the clip, decode up to its last frame)
  with each decoder, PyAV and torchcodec (when FFmpeg's libraries are installed).

Prints clips per second and the ratios as JSON.
Usage: python benchmarks/loading.py [--videos 12] [--clips 36]
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from pytorchvideo.data import LabeledVideoDataset, make_clip_sampler

from actcli.data.synthetic import MOTIONS, SyntheticSpec, render_clip, write_video
from actcli.data.torchcodec_video import unavailable_reason
from actcli.data.video import clip_indices, clip_span, read_clip
from actcli.engine.benchmark import whole_video

FPS = 25


def prototype(path: Path, frames: int, stride: int, rng: np.random.Generator) -> torch.Tensor:
    decoded = whole_video(path)
    start = int(rng.integers(0, len(decoded) - clip_span(frames, stride) + 1))
    return decoded[clip_indices(len(decoded), frames, stride, start)]


def actcli(decoder: str):
    def load(path: Path, frames: int, stride: int, rng: np.random.Generator) -> torch.Tensor:
        def choose(info):
            start = int(rng.integers(0, info.frames - clip_span(frames, stride) + 1))
            return clip_indices(info.frames, frames, stride, start)

        return read_clip(path, choose, decoder)[0]

    return load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=12)
    parser.add_argument("--clips", type=int, default=36)
    parser.add_argument("--seconds", type=float, default=7.0)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--stride", type=int, default=12)
    args = parser.parse_args()
    span_seconds = clip_span(args.frames, args.stride) / FPS
    with tempfile.TemporaryDirectory() as tmp:
        spec = SyntheticSpec(frames=int(args.seconds * FPS), width=320, height=240)
        paths = []
        for i in range(args.videos):
            motion = MOTIONS[i % len(MOTIONS)]
            path = Path(tmp) / f"v_{motion}_g01_c{i:02d}.avi"
            write_video(path, render_clip(motion, 1, i + 1, spec))
            paths.append(path)
        labeled = LabeledVideoDataset(
            [(str(p), {"label": i}) for i, p in enumerate(paths)],
            clip_sampler=make_clip_sampler("random", span_seconds), decode_audio=False, decoder="pyav",
        )
        stream = iter(itertools.cycle([labeled]))

        def pytorchvideo(_path, frames, stride, _rng):
            sample = next(iter(next(stream)))
            video = sample["video"]  # [C, T, H, W] float, every frame of the window
            picked = torch.linspace(0, video.shape[1] - 1, frames).round().long()
            return video[:, picked]

        loaders = {"prototype_whole_video": prototype, "pytorchvideo_labeled_video_dataset": pytorchvideo,
                   "actcli_pyav": actcli("pyav")}
        if unavailable_reason() is None:
            loaders["actcli_torchcodec"] = actcli("torchcodec")
        seconds = dict.fromkeys(loaders, 0.0)
        rng = np.random.default_rng(0)
        for n in range(args.clips):
            for name, load in loaders.items():
                start = time.perf_counter()
                load(paths[n % len(paths)], args.frames, args.stride, rng)
                seconds[name] += time.perf_counter() - start
    rates = {k: args.clips / v for k, v in seconds.items()}
    print(json.dumps({
        "files": f"{args.videos} x {args.seconds:.0f} s 320x240 MPEG-4 AVI", "clip": f"{args.frames}x{args.stride}",
        "clips_per_s": {k: round(v, 1) for k, v in rates.items()},
        **{f"{name}_speedup": {k: round(rates[name] / v, 1) for k, v in rates.items() if not k.startswith("actcli")}
           for name in rates if name.startswith("actcli")},
    }, indent=2))


if __name__ == "__main__":
    main()
