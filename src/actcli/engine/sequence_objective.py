"""The training objective of sequence models (:mod:`actcli.models.sequence`): final and per-step losses.

Labels are ``long [B, H, 1 + T]``: for each of the ``H`` heads (one label, or EK100's verb and
noun) the target of the final prediction, then one label per step (``-1``: that step is not
supervised; see :data:`actcli.models.sequence.STEP_LABELS`). A model's training output is a dict
with ``logits`` ``[B, K]``, ``steps`` ``[B, T, K]`` or None and ``aux`` (a scalar loss, e.g. AVT's
future-feature regression) or None; in eval mode it is the final logits alone.

The loss is the cross-entropy of the final prediction, plus the mean cross-entropy over the
supervised steps (when the model predicts per step; RULSTM's final prediction is itself its last
step, so it is counted in the steps, as in RULSTM's loss over its anticipation steps), plus ``aux``.
Each cross-entropy is summed over heads. A sample is correct when every head's final top-1 is right.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class SequenceObjective:
    """``loss(output, labels)`` and ``correct(output, labels)`` for :class:`actcli.engine.train.Trainer`."""

    def __init__(self, heads: tuple[int, ...] = (), label_smoothing: float = 0.0, final_in_steps: bool = False):
        self.heads, self.smoothing, self.final_in_steps = tuple(heads), label_smoothing, final_in_steps

    def _split(self, logits: torch.Tensor) -> list[torch.Tensor]:
        return list(logits.split(list(self.heads), dim=-1)) if self.heads else [logits]

    def _cross_entropy(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Summed over heads: ``logits [N, K]``, ``labels [N, H]`` (``-1`` ignored)."""
        total = logits.new_zeros(())
        for i, part in enumerate(self._split(logits.float())):
            target = labels[:, i]
            if (target >= 0).any():
                total = total + F.cross_entropy(part, target, ignore_index=-1, label_smoothing=self.smoothing)
        return total

    def loss(self, output, labels: torch.Tensor) -> torch.Tensor:
        final = labels[:, :, 0]
        if isinstance(output, torch.Tensor):
            return self._cross_entropy(output, final)
        steps = output.get("steps")
        loss = output["logits"].new_zeros(())
        if not (self.final_in_steps and steps is not None):
            loss = loss + self._cross_entropy(output["logits"], final)
        if steps is not None:
            step_labels = labels[:, :, 1:].transpose(1, 2).reshape(-1, labels.shape[1])  # [B * T, H]
            if (step_labels >= 0).any():
                loss = loss + self._cross_entropy(steps.reshape(-1, steps.shape[-1]), step_labels)
        if output.get("aux") is not None:
            loss = loss + output["aux"]
        return loss

    def correct(self, output, labels: torch.Tensor) -> torch.Tensor:
        logits = output if isinstance(output, torch.Tensor) else output["logits"]
        right = torch.ones(len(labels), dtype=torch.bool, device=labels.device)
        for i, part in enumerate(self._split(logits)):
            right &= part.argmax(dim=-1) == labels[:, i, 0]
        return right
