"""The training objective for one head (a class per clip) or several (EK100: verb and noun).

With ``heads = (97, 300)`` the model's logits ``[B, 397]`` are the verb logits then the noun
logits, labels are ``long [B, 2]``, the loss is the sum of the two cross-entropies and a
clip counts as correct when every head is right (EK100's action accuracy). With ``heads =
()`` logits are ``[B, K]`` and labels ``long [B]``: plain cross-entropy and top-1; or soft targets
``float [B, K]`` (a batch mixed by :class:`BatchMixer`): cross-entropy against the target
distribution, and a clip is correct when its top-1 class is the target's dominant one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2


def objective_loss(logits: torch.Tensor, labels: torch.Tensor, heads: tuple[int, ...] = (),
                   label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy, summed over heads; soft targets (float ``[B, K]``, one head) give the
    soft-label cross-entropy ``-(target x log_softmax(logits)).sum(1).mean()`` (after smoothing
    the target towards uniform by ``label_smoothing``, as timm's mixup does)."""
    logits = logits.float()
    if not heads:
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    parts = logits.split(list(heads), dim=1)
    return sum(F.cross_entropy(part, labels[:, i], label_smoothing=label_smoothing) for i, part in enumerate(parts))


def objective_correct(logits: torch.Tensor, labels: torch.Tensor, heads: tuple[int, ...] = ()) -> torch.Tensor:
    """``bool [B]``: the top-1 class of every head is right (soft targets: is the dominant label)."""
    if not heads:
        if labels.is_floating_point():
            labels = labels.argmax(dim=1)
        return logits.argmax(dim=1) == labels
    right = torch.ones(len(labels), dtype=torch.bool, device=labels.device)
    for i, part in enumerate(logits.split(list(heads), dim=1)):
        right &= part.argmax(dim=1) == labels[:, i]
    return right


class BatchMixer:
    """Mixup and/or CutMix of a training batch, from ``torchvision.transforms.v2``.

    ``mixer(clips, labels)``: clips ``float [B, C, T, H, W]`` and labels ``long [B]`` -> mixed clips
    (same shape) and soft targets ``float [B, K]`` that sum to 1. Each batch is blended with itself
    rolled by one along the batch (torchvision's pairing): ``MixUp`` blends whole clips with a
    weight from Beta(alpha, alpha); ``CutMix`` pastes one box of the rolled clips, the same box in
    every frame and channel (it cuts the last two dimensions, H and W), and weights the targets by
    its area. With both alphas above 0 one of the two is picked per batch with equal odds
    (``v2.RandomChoice``), as torchvision's ``references/video_classification`` and timm's
    ``Mixup(switch_prob=0.5)`` do. Random draws come from torch's global RNG, which the trainer
    re-seeds every epoch.
    """

    def __init__(self, num_classes: int, mixup: float = 0.0, cutmix: float = 0.0) -> None:
        choices: list[v2.Transform] = []
        if mixup > 0:
            choices.append(v2.MixUp(alpha=mixup, num_classes=num_classes))
        if cutmix > 0:
            choices.append(v2.CutMix(alpha=cutmix, num_classes=num_classes))
        if not choices:
            raise ValueError("BatchMixer needs mixup or cutmix above 0")
        self.transform = choices[0] if len(choices) == 1 else v2.RandomChoice(choices)

    def __call__(self, clips: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mixed, targets = self.transform(tv_tensors.Video(clips), labels)
        return mixed.as_subclass(torch.Tensor), targets
