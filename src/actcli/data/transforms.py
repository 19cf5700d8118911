"""Tensor video transforms: ``uint8 [T, C, H, W]`` frames in, ``float [C, T, H, W]`` out.

Built from torchvision.transforms.v2 (pytorchvideo's own transforms package does not import
on current torchvision). The same random parameters apply to every frame of a clip.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

# Kinetics statistics used by pytorchvideo's published models.
MEAN = (0.45, 0.45, 0.45)
STD = (0.225, 0.225, 0.225)

VideoTransform = Callable[[torch.Tensor], torch.Tensor]


def _finish(steps: list[v2.Transform]) -> VideoTransform:
    pipeline = v2.Compose(
        [*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=MEAN, std=STD)]
    )

    def apply(frames: torch.Tensor) -> torch.Tensor:
        """``uint8 [T, C, H, W]`` -> normalised ``float [C, T, H, W]``."""
        out = pipeline(tv_tensors.Video(frames))
        return out.as_subclass(torch.Tensor).permute(1, 0, 2, 3).contiguous()

    return apply


def train_transform(crop: int, hflip: bool = True) -> VideoTransform:
    """Random short-side scale in [crop, 1.25 * crop], random square crop, optional flip."""
    steps: list[v2.Transform] = [
        v2.RandomResize(crop, int(round(crop * 1.25)) + 1, antialias=True),
        v2.RandomCrop(crop),
    ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    return _finish(steps)


def eval_transform(crop: int) -> VideoTransform:
    """Short side resized to ``crop``, centre square crop: deterministic."""
    return _finish([v2.Resize(crop, antialias=True), v2.CenterCrop(crop)])


def spatial_views_transform(crop: int, views: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Short side resized to ``crop``, then ``views`` square crops along the long side.

    ``uint8 [T, C, H, W]`` -> ``float [views, C, T, crop, crop]``. One view is the centre
    crop; three are the two ends and the centre (the usual 3-crop test), two are the ends.
    """
    resize = v2.Resize(crop, antialias=True)
    finish = _finish([])

    def apply(frames: torch.Tensor) -> torch.Tensor:
        resized = resize(tv_tensors.Video(frames)).as_subclass(torch.Tensor)
        height, width = resized.shape[-2:]
        long_side = max(height, width)
        if views == 1:
            offsets = [(long_side - crop) // 2]
        else:
            offsets = [round(i * (long_side - crop) / (views - 1)) for i in range(views)]
        crops = [
            resized[..., o : o + crop, (width - crop) // 2 : (width - crop) // 2 + crop] if height > width
            else resized[..., (height - crop) // 2 : (height - crop) // 2 + crop, o : o + crop]
            for o in offsets
        ]
        return torch.stack([finish(c) for c in crops])

    return apply


def motion_transform(crop: int, training: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """Motion ``float [2, T, H, W]`` -> ``float [2, T, crop, crop]``: short side resized to ``crop``,
    then a random (training) or centre square crop. No flip: a mirrored flow would need ``u`` negated."""
    steps = v2.Compose([v2.Resize(crop, antialias=True), v2.RandomCrop(crop) if training else v2.CenterCrop(crop)])

    def apply(motion: torch.Tensor) -> torch.Tensor:
        out = steps(tv_tensors.Video(motion.permute(1, 0, 2, 3)))
        return out.as_subclass(torch.Tensor).permute(1, 0, 2, 3).contiguous()

    return apply
