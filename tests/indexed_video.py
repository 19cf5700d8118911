"""Videos whose frames carry their own display index, in the real formats whose timestamps mislead.

Each frame shows its index ``i`` as 8 black/white vertical bands (the Gray code of ``i``, so
neighbouring frames differ in one band and B-frame interpolation cannot blur two bits at once);
:func:`read_index` reads it back from a decoded frame. The writers reproduce what real files do:

* :func:`write_xvid_avi`: MPEG-4 Part 2 with B-frames in "packed bitstream" (DivX 5 / XviD, the
  codec of UCF50, UCF101 and HMDB51), written by FFmpeg's libxvid as those datasets were; the
  timestamps FFmpeg reports run 2, 4, 3, 6, 5, ... while frames come out in display order;
* :func:`write_pyav`: any PyAV encoder and container with chosen timestamps: MPEG-4 B-frames in
  AVI (first timestamp 1, not 0), H.264 B-frames in MP4, VP9 in WebM / H.264 in MKV starting at
  t > 0, and variable frame rate.
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

WIDTH, HEIGHT, BANDS = 128, 64, 8


def index_frame(index: int) -> np.ndarray:
    """``uint8 [H, W, 3]``: band ``b`` white when bit ``b`` of the Gray code of ``index`` is set."""
    gray = index ^ (index >> 1)
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    band = WIDTH // BANDS
    for bit in range(BANDS):
        if gray >> bit & 1:
            image[:, bit * band:(bit + 1) * band] = 255
    return image


def read_index(frame) -> int:
    """The index drawn by :func:`index_frame`, from ``uint8 [H, W, 3]`` or ``[3, H, W]``."""
    array = np.asarray(frame)
    if array.shape[0] == 3:
        array = array.transpose(1, 2, 0)
    band = array.shape[1] // BANDS
    gray = sum(1 << bit for bit in range(BANDS) if array[:, bit * band + 3:(bit + 1) * band - 3].mean() > 127)
    index, shift = gray, gray >> 1
    while shift:
        index ^= shift
        shift >>= 1
    return index


def xvid_available() -> bool:
    """Whether the ``ffmpeg`` command (Debian's, installed by ``make ffmpeg-libs``) has libxvid."""
    if shutil.which("ffmpeg") is None:
        return False
    encoders = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return "libxvid" in encoders


def write_xvid_avi(path: Path, frames: int, fps: int = 25, gop: int = 12) -> Path:
    """A packed-bitstream XviD AVI with 2 B-frames between references, by FFmpeg's libxvid."""
    raw = b"".join(index_frame(i).tobytes() for i in range(frames))
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
                    f"{WIDTH}x{HEIGHT}", "-r", str(fps), "-i", "-", "-c:v", "libxvid", "-bf", "2", "-g", str(gop),
                    "-q:v", "2", str(path)], input=raw, check=True)
    return path


def write_pyav(path: Path, codec: str, times_ms: list[int], b_frames: int = 0, rate: int = 25,
               gop: int = 12, container_format: str | None = None) -> Path:
    """Frames ``0..len(times_ms)-1`` at the given presentation times (milliseconds), by PyAV."""
    time_base = Fraction(1, 1000)
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.time_base = time_base
        stream.codec_context.gop_size = gop
        if b_frames:
            stream.codec_context.max_b_frames = b_frames
        if codec == "mpeg4":
            stream.codec_context.qmax = 3
        if codec in ("libx264",):
            stream.options = {"crf": "10"}
        for index, time in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(index_frame(index), format="rgb24")
            frame.pts, frame.time_base = time, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def decoded_timestamps(path: Path) -> list[int | None]:
    """The ``pts`` of each frame as FFmpeg's decoder outputs it (display order)."""
    with av.open(str(path)) as container:
        return [frame.pts for frame in container.decode(video=0)]


def decoded_indices(path: Path) -> list[int]:
    """The index drawn in each frame, in the order FFmpeg's decoder outputs them."""
    with av.open(str(path)) as container:
        return [read_index(frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]
