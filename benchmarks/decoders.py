"""PyAV vs torchcodec: whole-video decode and one clip's frames, on UCF50-like and EPIC-like files.

Writes two videos, then alternates the readers ``--runs`` times (random clip starts, the
same for every reader), so machine noise hits all alike:

* ``ucf50``: 320x240 MPEG-4 AVI, 25 fps, ``--ucf-seconds`` long (UCF50's mean is ~7 s);
* ``epic``: 1920x1080 H.264 MP4, 60 fps, key frame every 2 s, ``--epic-seconds`` long.

For each file and decoder it times:

* ``full``: every frame to RGB ``uint8`` (the prototype's way to get a clip);
* ``clip``: ``actcli.data.video.read_clip`` for ``--frames`` x ``--stride`` (seek to the key
  frame before the clip, decode to its last frame);

plus ``raw``: FFmpeg decoding every frame without RGB conversion (PyAV, 1 thread), the
decode limit the readers are compared with. Frames from both decoders are checked to be equal.
Prints median milliseconds per call and ratios as JSON.
Usage: python benchmarks/decoders.py [--runs 9] [--frames 8] [--stride 8]
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
from actcli.data.torchcodec_video import unavailable_reason
from actcli.data.video import clip_indices, clip_span, probe, read_clip


def write_epic_like(path: Path, seconds: float) -> None:
    """1920x1080 H.264 at 60 fps (synthetic scene upscaled 4x), key frame every 120 frames."""
    frames = render_clip("MoveRight", 1, 1, SyntheticSpec(frames=int(seconds * 60), width=480, height=270))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=60)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "veryfast", "g": "120", "crf": "23"}
        for small in frames:
            big = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(big, format="rgb24")))
        container.mux(stream.encode())


def full_pyav(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.width * stream.height > 640 * 480:
            stream.thread_type = "AUTO"
        return len([f.to_ndarray(format="rgb24") for f in container.decode(stream)])


def full_torchcodec(path: Path) -> int:
    from torchcodec.decoders import VideoDecoder

    size = probe(path)
    decoder = VideoDecoder(str(path), seek_mode="approximate",
                           num_ffmpeg_threads=1 if size.width * size.height <= 640 * 480 else 0)
    return len(decoder[:])


def raw_decode(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--ucf-seconds", type=float, default=7.0)
    parser.add_argument("--epic-seconds", type=float, default=4.0)
    args = parser.parse_args()
    if unavailable_reason():
        raise SystemExit(f"torchcodec is needed for this comparison: {unavailable_reason()}")
    rng = np.random.default_rng(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        ucf, epic = Path(tmp) / "v_MoveRight_g01_c01.avi", Path(tmp) / "P01_01.mp4"
        write_video(ucf, render_clip("MoveRight", 1, 1, SyntheticSpec(frames=int(args.ucf_seconds * 25),
                                                                     width=320, height=240)))
        write_epic_like(epic, args.epic_seconds)
        for name, path in (("ucf50 320x240 MPEG-4 25fps", ucf), ("epic 1920x1080 H.264 60fps", epic)):
            total = probe(path).frames
            readers = {
                "raw_decode_no_rgb": lambda _i, p=path: raw_decode(p),
                "full_pyav": lambda _i, p=path: full_pyav(p),
                "full_torchcodec": lambda _i, p=path: full_torchcodec(p),
                "clip_pyav": lambda i, p=path: read_clip(p, lambda _info: i, "pyav")[0],
                "clip_torchcodec": lambda i, p=path: read_clip(p, lambda _info: i, "torchcodec")[0],
            }
            times: dict[str, list[float]] = {k: [] for k in readers}
            slack = total - clip_span(args.frames, args.stride)
            for _ in range(args.runs):
                indices = clip_indices(total, args.frames, args.stride, int(rng.integers(0, slack + 1)))
                for reader, read in readers.items():
                    start = time.perf_counter()
                    read(indices)
                    times[reader].append(time.perf_counter() - start)
            pyav, torchcodec = (read_clip(path, lambda _i, i=indices: i, d)[0] for d in ("pyav", "torchcodec"))
            assert torch.equal(pyav, torchcodec), f"decoders disagree on {name}"
            ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
            results[name] = {
                "frames": total,
                "median_ms": {k: round(v, 1) for k, v in ms.items()},
                "raw_decode_fps": round(total / ms["raw_decode_no_rgb"] * 1000),
                "full_decode_torchcodec_vs_pyav": round(ms["full_pyav"] / ms["full_torchcodec"], 2),
                "clip_torchcodec_vs_pyav": round(ms["clip_pyav"] / ms["clip_torchcodec"], 2),
                "clip_vs_full_pyav": round(ms["full_pyav"] / ms["clip_pyav"], 1),
            }
    print(json.dumps({"clip": f"{args.frames}x{args.stride}", "runs": args.runs, "threads_rule":
                      "1 FFmpeg thread up to 640x480, else FFmpeg's choice", "results": results}, indent=2))


if __name__ == "__main__":
    main()
