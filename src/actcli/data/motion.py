"""The motion modality: two channels of movement per clip frame, ``float [2, T, H, W]`` in [-1, 1].

Three sources, one format:

* ``difference`` (on the fly): the grey-level change from the previous frame, split into its
  brightening and darkening parts (``relu(d)``, ``relu(-d)``), so the leading and trailing
  edges of a moving object land in different channels and direction stays visible;
* ``farneback`` (on the fly): OpenCV's dense Farneback optical flow from the previous frame,
  ``(u, v)`` in pixels of the cropped clip, clipped to +-:data:`FLOW_BOUND` and scaled to [-1, 1];
* EK100's released ``flow_frames`` (TV-L1 ``u``/``v`` JPEGs, +-20 px stored as 0..255), read by
  :mod:`actcli.ek100.media` and scaled to [-1, 1] by :func:`flow_from_jpeg`.

On-the-fly motion at clip frame ``i`` uses frames ``i - 1`` and ``i`` only (frame 0 pairs with
itself: no motion), so it never looks past the frame the RGB clip shows, which keeps early
prediction honest. Which of the two on-the-fly methods is the default was decided by
``benchmarks/motion.py`` (see docs/multimodal.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from actcli.errors import UserError
from actcli.models.convention import PYTORCHVIDEO, Convention

METHODS = ("difference", "farneback")
FLOW_BOUND = 20.0  # pixels; EK100's released flow uses the same bound


def with_previous(indices: Sequence[int]) -> list[int]:
    """``[i0, i1, ...]`` -> ``[i0 - 1, i0, i1 - 1, i1, ...]`` (never below 0): the frames motion needs."""
    return [j for i in indices for j in (max(i - 1, 0), i)]


def grey(clip: torch.Tensor, convention: Convention = PYTORCHVIDEO) -> torch.Tensor:
    """A clip ``float [3, T, H, W]`` normalised with ``convention`` (:mod:`actcli.data.transforms`) -> grey
    ``[T, H, W]`` in [0, 1]."""
    mean = torch.tensor(convention.mean, dtype=clip.dtype).view(3, 1, 1, 1)
    std = torch.tensor(convention.std, dtype=clip.dtype).view(3, 1, 1, 1)
    return (clip * std + mean).mean(dim=0).clamp(0.0, 1.0)


def frame_difference(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Grey frames ``[T, H, W]`` in [0, 1] -> ``float [2, T, H, W]``: brightening, darkening (each in [0, 1])."""
    change = current - previous
    return torch.stack([change.clamp(min=0.0), (-change).clamp(min=0.0)])


def farneback_flow(previous: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Grey frames ``[T, H, W]`` in [0, 1] -> Farneback flow ``float [2, T, H, W]``: ``(u, v) / FLOW_BOUND``,
    clipped to [-1, 1]."""
    try:
        import cv2
    except ImportError:
        raise UserError("--motion farneback needs OpenCV: pip install opencv-python-headless, "
                        "or use --motion difference") from None
    cv2.setNumThreads(1)  # DataLoader workers already use the cores
    to_u8 = lambda frames: (frames * 255).round().to(torch.uint8).numpy()  # noqa: E731
    before, after = to_u8(previous), to_u8(current)
    flows = [torch.from_numpy(cv2.calcOpticalFlowFarneback(b, a, None, 0.5, 3, 15, 3, 5, 1.2, 0))
             for b, a in zip(before, after, strict=True)]  # each [H, W, 2]
    return (torch.stack(flows).permute(3, 0, 1, 2) / FLOW_BOUND).clamp(-1.0, 1.0)


def clip_motion(pairs: torch.Tensor, method: str, convention: Convention = PYTORCHVIDEO) -> torch.Tensor:
    """Motion of a clip of frame pairs ``float [3, 2T, H, W]`` normalised with ``convention`` (previous,
    current, ..., as :func:`with_previous` orders them) -> ``float [2, T, H, W]``."""
    frames = grey(pairs, convention)
    previous, current = frames[0::2], frames[1::2]
    if method == "difference":
        return frame_difference(previous, current)
    if method == "farneback":
        return farneback_flow(previous, current)
    raise ValueError(f"motion method must be one of {METHODS}, got {method!r}")


def flow_from_jpeg(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """EK100 flow JPEGs ``uint8 [T, H, W]`` each -> ``float [2, T, H, W]`` in [-1, 1] (128 is no motion)."""
    return (torch.stack([u, v]).float() / 255.0 - 0.5) * 2.0
