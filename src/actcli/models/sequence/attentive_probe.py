"""The attentive probe of V-JEPA 2 on a frozen video encoder (Assran et al., 2025; its EK100 anticipation eval).

Follows facebookresearch/vjepa2 ``src/models/attentive_pooler.py`` (``AttentivePooler``) and
``evals/action_anticipation_frozen/models.py`` (``AttentiveClassifier``):

* the input is the frozen encoder's tokens of the observed window: every step's tokens
  (``--tokens`` extraction: ``[T, N, D]``) or its pooled feature (one token per step), flattened to
  ``[B, T x N, D]``;
* ``layers - 1`` self-attention blocks (pre-LayerNorm ViT blocks, MLP ratio 4) over the tokens, then
  one cross-attention block whose **learned queries** (``trunc_normal(std=0.02)``) attend to them
  (``CrossAttentionBlock``: ``q + xattn(q, norm(x))``, then ``q + mlp(norm(q))``);
* one query per output: one for a single label, one each for verb and noun on EK100 (V-JEPA 2 has a
  third for the action; actcli's EK100 action scores come from verb x noun as the official
  evaluator derives them), each followed by its linear classifier. Defaults: 4 blocks
  (``num_probe_blocks``), 16 heads, the encoder's width.

Adaptations: V-JEPA 2's tokens carry the encoder's positions; per-time features do not, so a learned
embedding of the step (time) is added to each step's tokens. When ``hidden`` differs from the feature
width a linear projection comes first. The loss is cross-entropy (V-JEPA 2 uses a sigmoid focal loss).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from actcli.models.sequence import SequenceConfig

INIT_STD = 0.02


class CrossAttentionBlock(nn.Module):
    """``q + attention(q, norm(x))``, then ``q + mlp(norm(q))`` (V-JEPA 2's ``CrossAttentionBlock``)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, queries: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        keys = self.norm1(tokens)
        queries = queries + self.attention(queries, keys, keys, need_weights=False)[0]
        return queries + self.mlp(self.norm2(queries))


class AttentiveProbe(nn.Module):
    """Module docstring. ``forward``: the logits of every query's classifier side by side ``[B, K]``."""

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.config = config
        dim = sum(config.streams.values())
        self.token_dim = dim // config.tokens if config.tokens else dim
        width = config.hidden or self.token_dim
        if width % config.heads_attention:
            raise ValueError(f"attentive_probe: width {width} must be divisible by heads {config.heads_attention}")
        self.project = nn.Linear(self.token_dim, width) if width != self.token_dim else nn.Identity()
        self.time = nn.Parameter(torch.zeros(1, config.steps, 1, width))
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(width, config.heads_attention, 4 * width, 0.0, activation="gelu",
                                       batch_first=True, norm_first=True) for _ in range(max(0, config.layers - 1)))
        outputs = config.heads or [config.num_classes]
        self.queries = nn.Parameter(torch.zeros(1, len(outputs), width))
        self.cross = CrossAttentionBlock(width, config.heads_attention)
        self.dropout = nn.Dropout(config.dropout)
        self.classifiers = nn.ModuleList(nn.Linear(width, n) for n in outputs)
        nn.init.trunc_normal_(self.queries, std=INIT_STD)
        nn.init.trunc_normal_(self.time, std=INIT_STD)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=INIT_STD)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for depth, block in enumerate(self.blocks, 1):  # V-JEPA 2's _rescale_blocks
            block.linear2.weight.data.div_(math.sqrt(2.0 * depth))
        self.cross.mlp[2].weight.data.div_(math.sqrt(2.0 * (len(self.blocks) or 1)))

    def tokens(self, x) -> torch.Tensor:
        """``[B, T x N, width]``: every step's tokens, projected, with the step's time embedding."""
        if isinstance(x, dict):
            x = torch.cat([x[name] for name in self.config.streams], dim=-1)
        x = x.float()
        batch, steps = x.shape[:2]
        x = self.project(x.reshape(batch, steps, max(1, self.config.tokens), self.token_dim))
        x = x + self.time[:, :steps]
        return x.reshape(batch, -1, x.shape[-1])

    def forward(self, x):
        tokens = self.tokens(x)
        for block in self.blocks:
            tokens = block(tokens)
        pooled = self.cross(self.queries.expand(len(tokens), -1, -1), tokens)  # [B, outputs, width]
        logits = torch.cat([head(self.dropout(pooled[:, i])) for i, head in enumerate(self.classifiers)], dim=1)
        if not self.training:
            return logits
        return {"logits": logits, "steps": None, "aux": None}
