"""Sound for the synthetic dataset: classes that only the audio track separates.

With ``SyntheticSpec(audio=True)`` each class is a motion *and* a sound, e.g.
``MoveLeftBeep`` and ``MoveLeftHiss``: the two look alike and differ only in what they
sound like, while ``MoveLeftBeep`` and ``MoveRightBeep`` sound alike and differ only in
how they move. So an RGB-only model can reach at most about 1/2 and an audio-only model
about 1/(number of motions), and only a model that fuses both can tell every class apart.

* ``Beep``: a pure tone (random pitch 400-900 Hz) pulsing on and off;
* ``Hiss``: band-limited noise with a slow random swell.

Both sit on a quiet noise floor, and loudness varies per clip.
"""

from __future__ import annotations

import numpy as np

SOUNDS: tuple[str, ...] = ("Beep", "Hiss")
SAMPLE_RATE = 16_000


def render_sound(sound: str, seed_parts: list[int], seconds: float, rate: int = SAMPLE_RATE) -> np.ndarray:
    """``float32 [S]`` mono samples in [-1, 1] of ``sound`` lasting ``seconds``."""
    rng = np.random.default_rng([*seed_parts, 7_919])
    count = max(1, int(round(seconds * rate)))
    t = np.arange(count) / rate
    loudness = rng.uniform(0.25, 0.6)
    if sound == "Beep":
        pitch = rng.uniform(400, 900)
        pulse = (np.sin(2 * np.pi * rng.uniform(2, 4) * t + rng.uniform(0, 6.3)) > -0.3).astype(np.float32)
        signal = np.sin(2 * np.pi * pitch * t) * pulse
    elif sound == "Hiss":
        white = rng.normal(0, 1, count)
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(count, 1 / rate)
        low = rng.uniform(2_000, 3_000)
        spectrum[(freqs < low) | (freqs > low + 3_000)] = 0
        band = np.fft.irfft(spectrum, count)
        signal = band / (np.abs(band).max() + 1e-9) * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.3, 1) * t))
    else:
        raise ValueError(f"unknown sound {sound!r}; known: {', '.join(SOUNDS)}")
    floor = rng.normal(0, 0.01, count)
    return np.clip(loudness * signal + floor, -1, 1).astype(np.float32)
