"""Tensor video transforms: ``uint8 [T, C, H, W]`` frames in, ``float [C, T, H, W]`` out.

Built from torchvision.transforms.v2 (pytorchvideo's own transforms package does not import
on current torchvision). The same random parameters apply to every frame of a clip. Each
transform takes the model's :class:`~actcli.models.convention.Convention`: its normalisation and
the short side frames are resized to before the crop (default: pytorchvideo's).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from actcli.models.convention import PYTORCHVIDEO, Convention

# Kinetics statistics used by pytorchvideo's published models.
MEAN = PYTORCHVIDEO.mean
STD = PYTORCHVIDEO.std

VideoTransform = Callable[[torch.Tensor], torch.Tensor]


def _finish(steps: list[v2.Transform], convention: Convention = PYTORCHVIDEO) -> VideoTransform:
    pipeline = v2.Compose(
        [*steps, v2.ToDtype(torch.float32, scale=True),
         v2.Normalize(mean=list(convention.mean), std=list(convention.std))]
    )

    def apply(frames: torch.Tensor) -> torch.Tensor:
        """``uint8 [T, C, H, W]`` -> normalised ``float [C, T, H, W]``."""
        out = pipeline(tv_tensors.Video(frames))
        return out.as_subclass(torch.Tensor).permute(1, 0, 2, 3).contiguous()

    return apply


AUTO_AUGMENT: dict[str, Callable[[], v2.Transform]] = {
    "randaugment": v2.RandAugment,  # 2 ops, magnitude 9 of 31 bins (torchvision's defaults)
    "trivialaugment": v2.TrivialAugmentWide,  # 1 op, magnitude drawn uniformly
}
"""``data.auto_augment`` -> the torchvision.transforms.v2 policy (``none``: no entry)."""


def train_transform(crop: int, hflip: bool = True, convention: Convention = PYTORCHVIDEO,
                    auto_augment: str = "none") -> VideoTransform:
    """Random short-side scale in [S, 1.25 * S] (S: the convention's short side, the crop for
    pytorchvideo's), random square crop, optional flip, then ``auto_augment`` (``randaugment`` or
    ``trivialaugment``, see :data:`AUTO_AUGMENT`) on the uint8 crop before the float conversion.

    The clip passes through as one ``tv_tensors.Video``, so every random choice (scale, crop, flip,
    the auto-augment ops and their magnitudes) is drawn once per clip and applied to all its frames.
    """
    short = convention.short_side(crop)
    steps: list[v2.Transform] = [
        v2.RandomResize(short, int(round(short * 1.25)) + 1, antialias=True),
        v2.RandomCrop(crop),
    ]
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if auto_augment != "none":
        if auto_augment not in AUTO_AUGMENT:
            raise ValueError(f"auto_augment must be none or one of {', '.join(AUTO_AUGMENT)}, not {auto_augment!r}")
        steps.append(AUTO_AUGMENT[auto_augment]())
    return _finish(steps, convention)


def eval_transform(crop: int, convention: Convention = PYTORCHVIDEO) -> VideoTransform:
    """Short side resized to the convention's (``crop`` for pytorchvideo's), centre square crop: deterministic."""
    return _finish([v2.Resize(convention.short_side(crop), antialias=True), v2.CenterCrop(crop)], convention)


def spatial_views_transform(crop: int, views: int, convention: Convention = PYTORCHVIDEO
                            ) -> Callable[[torch.Tensor], torch.Tensor]:
    """Short side resized to ``crop``, then ``views`` square crops along the long side (a convention
    with a larger short side: the centre ``crop`` of the short side).

    ``uint8 [T, C, H, W]`` -> ``float [views, C, T, crop, crop]``. One view is the centre
    crop; three are the two ends and the centre (the usual 3-crop test), two are the ends.
    """
    short = convention.short_side(crop)
    resize = v2.Resize(short, antialias=True)
    finish = _finish([v2.CenterCrop(crop)] if short != crop else [], convention)

    def apply(frames: torch.Tensor) -> torch.Tensor:
        resized = resize(tv_tensors.Video(frames)).as_subclass(torch.Tensor)
        return _views(resized, short, views, finish)  # squares of the short side, finished (centre crop)

    return apply


def _views(resized: torch.Tensor, side: int, views: int, finish: VideoTransform) -> torch.Tensor:
    """``views`` squares of ``side`` pixels along the long side of ``resized`` (``uint8 [T, C, H, W]``), each
    finished: ``float [views, C, T, crop, crop]``."""
    height, width = resized.shape[-2:]
    long_side = max(height, width)
    if views == 1:
        offsets = [(long_side - side) // 2]
    else:
        offsets = [round(i * (long_side - side) / (views - 1)) for i in range(views)]
    crops = [
        resized[..., o : o + side, (width - side) // 2 : (width - side) // 2 + side] if height > width
        else resized[..., (height - side) // 2 : (height - side) // 2 + side, o : o + side]
        for o in offsets
    ]
    return torch.stack([finish(c) for c in crops])


def motion_transform(crop: int, training: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """Motion ``float [2, T, H, W]`` -> ``float [2, T, crop, crop]``: short side resized to ``crop``,
    then a random (training) or centre square crop. No flip: a mirrored flow would need ``u`` negated."""
    steps = v2.Compose([v2.Resize(crop, antialias=True), v2.RandomCrop(crop) if training else v2.CenterCrop(crop)])

    def apply(motion: torch.Tensor) -> torch.Tensor:
        out = steps(tv_tensors.Video(motion.permute(1, 0, 2, 3)))
        return out.as_subclass(torch.Tensor).permute(1, 0, 2, 3).contiguous()

    return apply
