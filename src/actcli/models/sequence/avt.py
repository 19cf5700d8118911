"""AVT-h: the causal transformer head of Anticipative Video Transformer (Girdhar and Grauman, ICCV 2021).

Follows facebookresearch/AVT ``models/future_prediction.py`` (``AVTh``) and its EK100 recipe
(``expts/02_ek100_avt_tsn.txt``):

* features ``[B, T, D]`` are encoded by a linear layer (no bias) to ``hidden`` (``inter_dim``), get
  learned position embeddings, and pass a GPT-2 stack (pre-LayerNorm blocks of causal self-attention
  and a GELU MLP of 4 x hidden, a final LayerNorm): the output at step ``k`` sees steps ``<= k`` only;
* a linear decoder (no bias) maps every output back to ``D``: the **predicted next feature**. The
  future-prediction loss is the MSE between the prediction at step ``k`` and the observed feature of
  step ``k + 1`` (teacher forced, ``future_pred_loss``, weight ``feature_loss`` = 1);
* the classifier (dropout, linear) runs on every predicted feature (``classifier_on_past``): step ``k``
  is trained on the action at the next step's time (``past_cls_action``), the **next action at every
  step**;
* the final prediction rolls the transformer out past the last observed step, feeding back its own last
  hidden state as AVT does with ``output_len > 1``, for ``tau_a / alpha + 1`` steps, so it reaches past
  the action's start, and classifies the last predicted feature.

actcli's transformer blocks are ``torch.nn.TransformerEncoderLayer`` with ``norm_first`` and a causal
mask (GPT-2's block layout) rather than the ``transformers.GPT2Model`` AVT wraps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from actcli.models.sequence import SequenceConfig, single_stream

MAX_POSITIONS = 512


class CausalTransformer(nn.Module):
    """GPT-2-style stack over embeddings ``[B, T, H]`` (positions added inside)."""

    def __init__(self, hidden: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.positions = nn.Embedding(MAX_POSITIONS, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, 4 * hidden, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        steps = embeddings.shape[1]
        if steps > MAX_POSITIONS:
            raise ValueError(f"at most {MAX_POSITIONS} steps")
        x = self.drop(embeddings + self.positions(torch.arange(steps, device=embeddings.device)))
        mask = nn.Transformer.generate_square_subsequent_mask(steps, device=embeddings.device, dtype=x.dtype)
        return self.norm(self.blocks(x, mask=mask, is_causal=True))


class AVTHead(nn.Module):
    """Module docstring: ``forward`` gives the final logits (eval) or logits, per-step logits and the
    future-feature loss (training)."""

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.config = config
        dim = sum(config.streams.values()) // max(1, config.tokens) if config.tokens else sum(config.streams.values())
        heads = config.heads_attention
        if config.hidden % heads:
            raise ValueError(f"avt: hidden {config.hidden} must be divisible by heads {heads}")
        self.encoder = nn.Linear(dim, config.hidden, bias=False)
        self.transformer = CausalTransformer(config.hidden, config.layers, heads, 0.1)
        self.decoder = nn.Linear(config.hidden, dim, bias=False)
        self.classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(dim, config.outputs))

    def rollout_steps(self) -> int:
        return round(self.config.tau_a / self.config.alpha) + 1

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted next features for the observed steps ``[B, T, D]`` and after the rollout ``[B, D]``."""
        embedded = self.encoder(x)
        hidden = self.transformer(embedded)
        observed = self.decoder(hidden)
        sequence = embedded
        last = hidden[:, -1:]
        for _ in range(self.rollout_steps() - 1):  # AVT feeds back the last hidden state as the next input
            sequence = torch.cat([sequence, last], dim=1)
            last = self.transformer(sequence)[:, -1:]
        return observed, self.decoder(last[:, 0])

    def step_logits(self, x) -> torch.Tensor:
        """``[B, T, K]``: the one-step-ahead prediction of every observed step."""
        observed, _ = self._run(single_stream(x, self.config))
        return self.classifier(observed)

    def forward(self, x):
        x = single_stream(x, self.config)
        observed, future = self._run(x)
        logits = self.classifier(future)
        if not self.training:
            return logits
        feature_loss = F.mse_loss(observed[:, :-1], x[:, 1:]) if x.shape[1] > 1 else None
        aux = self.config.feature_loss * feature_loss if feature_loss is not None else None
        return {"logits": logits, "steps": self.classifier(observed), "aux": aux}
