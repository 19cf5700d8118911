"""RULSTM: rolling-unrolling LSTMs with modality attention (Furnari and Farinella, ICCV 2019 / TPAMI 2020).

Follows fpv-iplab/rulstm ``RULSTM/models.py``:

* the **rolling** LSTM reads the observed features step by step (``alpha`` = 0.25 s apart) and keeps
  its hidden and cell state at every step (``OpenLSTM``);
* at each step ``k`` the **unrolling** LSTM starts from that state and is fed the step's own features
  repeated ``tau_k / alpha + 1`` times, ``tau_k`` being the time left to the action
  (``tau_a + (T - 1 - k) alpha``, RULSTM's ``inputs.shape[0] - t + 1`` copies); its last hidden state
  goes through dropout and a linear classifier: one prediction per step, each anticipating the same
  action from further away. The final prediction is the last step's (``tau_a`` before the action);
* **sequence completion** pre-training (``sequence_completion = True``): the unrolling LSTM is fed
  the window's actual later features ``x[k:]`` instead of copies (only features inside the observed
  window: nothing after ``start - tau_a``);
* **MATT** fusion of several streams (``RULSTMFusion``): each stream has its own rolling-unrolling
  branch; an MLP (``in -> in/4 -> in/8 -> branches``, ReLU and dropout) over the concatenated
  unrolled hidden states and rolling cell states of all branches gives softmax attention weights per
  step, and the fused scores are the weighted sum of the branches' scores.

Differences, for speed and for actcli's loop: the unrolling LSTM runs every step's unrolling in one
batched call (the outputs are the same as the per-step loop); the branches and MATT train together
in one run (RULSTM trains each branch, then the fusion).
"""

from __future__ import annotations

import torch
from torch import nn

from actcli.models.sequence import SequenceConfig, single_stream


class RollingUnrolling(nn.Module):
    """One stream: features ``[B, T, D]`` -> per-step logits ``[B, T, K]`` and contexts ``[B, T, 2 x hidden]``."""

    def __init__(self, input_dim: int, config: SequenceConfig) -> None:
        super().__init__()
        self.config = config
        self.dropout = nn.Dropout(config.dropout)
        self.rolling = nn.LSTM(input_dim, config.hidden, num_layers=config.layers,
                               dropout=config.dropout if config.layers > 1 else 0.0, batch_first=True)
        self.unrolling = nn.LSTM(input_dim, config.hidden, num_layers=config.layers,
                                 dropout=config.dropout if config.layers > 1 else 0.0, batch_first=True)
        self.classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.hidden, config.outputs))
        self.sequence_completion = False

    def unroll_counts(self, steps: int) -> list[int]:
        """Unrolling steps after each rolling step: ``tau_k / alpha + 1``."""
        c = self.config
        return [round((c.tau_a + (steps - 1 - k) * c.alpha) / c.alpha) + 1 for k in range(steps)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps, _ = x.shape
        x = self.dropout(x)
        hidden, cells, state = [], [], None
        for k in range(steps):  # OpenLSTM: the state after every step
            _, state = self.rolling(x[:, k:k + 1], state)
            hidden.append(state[0])
            cells.append(state[1])
        h = torch.stack(hidden, dim=2)  # [layers, B, T, H]
        c = torch.stack(cells, dim=2)
        if self.sequence_completion:
            counts = [steps - k for k in range(steps)]
            length = max(counts)
            inputs = torch.zeros(batch, steps, length, x.shape[-1], device=x.device, dtype=x.dtype)
            for k in range(steps):
                inputs[:, k, :steps - k] = x[:, k:]
        else:
            counts = self.unroll_counts(steps)
            length = max(counts)
            inputs = x[:, :, None].expand(batch, steps, length, x.shape[-1])
        flat = inputs.reshape(batch * steps, length, x.shape[-1])
        start = (h.reshape(h.shape[0], batch * steps, -1).contiguous(), c.reshape(c.shape[0], batch * steps, -1)
                 .contiguous())
        out, _ = self.unrolling(flat, start)  # [B*T, length, H]
        last = torch.tensor([n - 1 for n in counts] * batch, device=x.device)
        unrolled = out[torch.arange(batch * steps, device=x.device), last].reshape(batch, steps, -1)
        logits = self.classifier(unrolled)
        context = torch.cat([unrolled, c[-1]], dim=-1)  # RULSTM's return_context: [x, c]
        return logits, context


class RULSTM(nn.Module):
    """One branch per stream, MATT fusion when there are several (module docstring)."""

    def __init__(self, config: SequenceConfig) -> None:
        super().__init__()
        self.config = config
        self.branches = nn.ModuleDict({name: RollingUnrolling(dim // max(1, config.tokens) if config.tokens
                                                              else dim, config)
                                       for name, dim in config.streams.items()})
        if len(self.branches) > 1:
            size = 2 * len(self.branches) * config.hidden
            self.matt = nn.Sequential(nn.Linear(size, size // 4), nn.ReLU(), nn.Dropout(config.dropout),
                                      nn.Linear(size // 4, size // 8), nn.ReLU(), nn.Dropout(config.dropout),
                                      nn.Linear(size // 8, len(self.branches)))

    @property
    def sequence_completion(self) -> bool:
        return next(iter(self.branches.values())).sequence_completion

    @sequence_completion.setter
    def sequence_completion(self, value: bool) -> None:
        for branch in self.branches.values():
            branch.sequence_completion = value

    def step_logits(self, x) -> torch.Tensor:
        """``[B, T, K]``: the prediction after every observed step (fused over streams)."""
        if not isinstance(x, dict):
            x = {next(iter(self.branches)): x}
        outputs = {name: self.branches[name](single_stream(x[name], self._one(name))) for name in self.branches}
        if len(outputs) == 1:
            return next(iter(outputs.values()))[0]
        scores = torch.stack([s for s, _ in outputs.values()], dim=-1)  # [B, T, K, M]
        weights = self.matt(torch.cat([c for _, c in outputs.values()], dim=-1)).softmax(dim=-1)  # [B, T, M]
        return (scores * weights[:, :, None, :]).sum(dim=-1)

    def _one(self, name: str) -> SequenceConfig:
        from dataclasses import replace

        return replace(self.config, streams={name: self.config.streams[name]})

    def attention(self, x) -> torch.Tensor | None:
        """MATT's weights ``[B, T, streams]`` (None with one stream)."""
        if len(self.branches) == 1:
            return None
        contexts = [self.branches[n](single_stream(x[n], self._one(n)))[1] for n in self.branches]
        return self.matt(torch.cat(contexts, dim=-1)).softmax(dim=-1)

    def forward(self, x):
        steps = self.step_logits(x)
        if not self.training:
            return steps[:, -1]
        return {"logits": steps[:, -1], "steps": steps, "aux": None}


def build_rulstm(config: SequenceConfig) -> RULSTM:
    return RULSTM(config)
