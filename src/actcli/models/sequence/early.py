"""Early action prediction as a model of its own: a causal LSTM over clip features that predicts after every
observed prefix, in one pass.

The segment is read at ``T`` times (RULSTM's early recognition: ``S_ant`` = 8 samples, the end of each
of ``T`` equal parts of the action, so step ``k`` has seen the first ``(k + 1) / T`` of it and nothing
later). Features go through dropout, a linear projection with ReLU, and an LSTM; a classifier runs on
the hidden state after every step. Training puts the segment's label on every step (all prefixes at
once, as RULSTM's early-recognition loss does over its ``S_ant`` predictions); testing with
``--observe r`` reads the prediction of the last step inside the first ``r`` of the segment, every
ratio from the same single pass.
"""

from __future__ import annotations

import torch
from torch import nn

from actcli.models.sequence import SequenceConfig, single_stream


class EarlyLSTM(nn.Module):
    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.config = config
        dim = sum(config.streams.values()) // max(1, config.tokens) if config.tokens else sum(config.streams.values())
        self.project = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(dim, config.hidden), nn.ReLU())
        self.lstm = nn.LSTM(config.hidden, config.hidden, num_layers=config.layers,
                            dropout=config.dropout if config.layers > 1 else 0.0, batch_first=True)
        self.classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.hidden, config.outputs))

    def step_logits(self, x) -> torch.Tensor:
        """``[B, T, K]``: the prediction after each prefix of the segment."""
        hidden, _ = self.lstm(self.project(single_stream(x, self.config)))
        return self.classifier(hidden)

    def forward(self, x):
        steps = self.step_logits(x)
        if not self.training:
            return steps[:, -1]
        return {"logits": steps[:, -1], "steps": steps, "aux": None}
