"""The training objective for one head (a class per clip) or several (EK100: verb and noun).

With ``heads = (97, 300)`` the model's logits ``[B, 397]`` are the verb logits then the noun
logits, labels are ``long [B, 2]``, the loss is the sum of the two cross-entropies and a
clip counts as correct when every head is right (EK100's action accuracy). With ``heads =
()`` logits are ``[B, K]`` and labels ``long [B]``: plain cross-entropy and top-1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def objective_loss(logits: torch.Tensor, labels: torch.Tensor, heads: tuple[int, ...] = (),
                   label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy, summed over heads."""
    logits = logits.float()
    if not heads:
        return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
    parts = logits.split(list(heads), dim=1)
    return sum(F.cross_entropy(part, labels[:, i], label_smoothing=label_smoothing) for i, part in enumerate(parts))


def objective_correct(logits: torch.Tensor, labels: torch.Tensor, heads: tuple[int, ...] = ()) -> torch.Tensor:
    """``bool [B]``: the top-1 class of every head is right."""
    if not heads:
        return logits.argmax(dim=1) == labels
    right = torch.ones(len(labels), dtype=torch.bool, device=labels.device)
    for i, part in enumerate(logits.split(list(heads), dim=1)):
        right &= part.argmax(dim=1) == labels[:, i]
    return right
