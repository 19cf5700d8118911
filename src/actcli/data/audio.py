"""The audio modality: a video's sound over a clip's time span, as a log-mel spectrogram.

Decoding uses PyAV (FFmpeg in the wheel): the first audio stream is resampled to mono
``float32`` at :data:`SAMPLE_RATE` and cut to ``[start_s, stop_s)``. The spectrogram comes from
``torchaudio.transforms.MelSpectrogram`` (25 ms windows, 10 ms hop, 64 mel bands), then
``log(x + 1e-6)``. A video without an audio track raises :class:`NoAudio`, so callers decide
explicitly between zeros-plus-flag and skipping.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import av
import numpy as np
import torch

from actcli.data.video import DecodeError

SAMPLE_RATE = 16_000
N_MELS = 64
HOP = SAMPLE_RATE // 100  # 10 ms


class NoAudio(DecodeError):
    """The file is a readable video without an audio track."""


def read_audio(path: Path, start_s: float, stop_s: float, rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Mono samples of ``[start_s, stop_s)``: ``float32 [S]``, ``S = round((stop_s - start_s) * rate)``.

    Missing samples (past the end of the track) are zeros. Raises NoAudio or DecodeError.
    """
    count = max(1, int(round((stop_s - start_s) * rate)))
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise DecodeError(f"cannot open {path}: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise NoAudio(f"{path} has no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks, position = [], 0  # position: samples already emitted, from the track's start
        first = int(round(start_s * rate))
        try:
            if start_s > 1.0 and stream.time_base is not None:
                container.seek(int(max(0.0, start_s - 0.5) / stream.time_base), stream=stream, backward=True)
                position = -1  # unknown until the first frame's timestamp
            for frame in container.decode(stream):
                if position < 0:
                    position = int(round((frame.time or 0.0) * rate))
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1)
                    chunks.append((position, samples))
                    position += len(samples)
                if position >= first + count:
                    break
        except av.FFmpegError as exc:
            raise DecodeError(f"cannot decode the audio of {path}: {exc}") from exc
    out = np.zeros(count, dtype=np.float32)
    for begin, samples in chunks:
        lo, hi = max(begin, first), min(begin + len(samples), first + count)
        if lo < hi:
            out[lo - first:hi - first] = samples[lo - begin:hi - begin]
    return torch.from_numpy(out)


@lru_cache(maxsize=4)
def _mel(rate: int, n_mels: int):
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(sample_rate=rate, n_fft=int(0.025 * rate), hop_length=rate // 100,
                                                n_mels=n_mels)


def log_mel(samples: torch.Tensor, rate: int = SAMPLE_RATE, n_mels: int = N_MELS) -> torch.Tensor:
    """``float32 [S]`` samples -> ``float32 [1, n_mels, S // hop + 1]`` log-mel spectrogram."""
    return torch.log(_mel(rate, n_mels)(samples.float()) + 1e-6)[None]


def has_audio(path: Path) -> bool:
    """Whether ``path`` has an audio stream (False also for unreadable files)."""
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, OSError):
        return False
