"""Sequence models over per-time features: anticipation (``rulstm``, ``avt``, ``attentive_probe``) and
early prediction (``early_lstm``).

They are not clip models (:mod:`actcli.models.zoo`): their input is a sequence of features
``float [B, T, D]`` read at ``T`` times of the observed window from a feature store
(:mod:`actcli.data.features`, written by ``actcli extract`` or RULSTM's LMDBs), or a dict of such
sequences, one per stream (``rgb``, ``flow``, ``obj``). Their checkpoints are actcli checkpoints
with ``"kind": "sequence"`` and a ``"sequence"`` entry (:class:`SequenceConfig`), so ``actcli
test`` rebuilds them from the file alone.

Every model returns, in eval mode, the logits of its final prediction ``[B, K]`` (``K`` classes,
or 97 verbs then 300 nouns for EK100); in training mode a dict with ``logits`` ``[B, K]``,
``steps`` ``[B, T, K]`` (a prediction per observed step, or None) and ``aux`` (an extra loss such
as AVT's future-feature regression, or None), which :class:`actcli.engine.sequence_objective.
SequenceObjective` turns into the loss. ``step_logits(x)`` gives every step's prediction in one
pass (the early-prediction curve).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from actcli.errors import UserError

ANTICIPATION = ("rulstm", "avt", "attentive_probe")
EARLY = ("early_lstm",)
SEQUENCE_MODELS = (*ANTICIPATION, *EARLY)

STEP_LABELS = {"rulstm": "same", "avt": "next", "attentive_probe": "none", "early_lstm": "same"}
"""What each step of a model is trained to predict: ``same`` (the target action, RULSTM's loss on its
anticipation steps and the early model's on every prefix), ``next`` (the action at the next step's
time, AVT's per-step loss) or ``none`` (the final prediction alone, the attentive probe)."""

ARCHITECTURE: dict[str, dict[str, Any]] = {
    # RULSTM (fpv-iplab/rulstm RULSTM/main.py): --hidden 1024, --dropout 0.8, one layer, S_ant = 8 anticipation steps
    "rulstm": {"hidden": 1024, "layers": 1, "supervised_steps": 8},
    # AVT-h (facebookresearch/AVT expts/02_ek100_avt_tsn.txt): inter_dim 2048, n_layer 6, n_head 4, feature loss 1.0
    "avt": {"hidden": 2048, "layers": 6, "heads": 4, "feature_loss": 1.0},
    # V-JEPA 2 EK100 probe (facebookresearch/vjepa2 configs/eval/vitl/ek100.yaml): 4 blocks, 16 heads
    "attentive_probe": {"hidden": 0, "layers": 4, "heads": 16},  # hidden 0: the features' own dimension
    # early prediction: RULSTM's early-recognition branch reduced to the rolling LSTM, S_ant = 8 samples per action
    "early_lstm": {"hidden": 1024, "layers": 1},
}

RECIPES: dict[str, dict[str, Any]] = {
    "rulstm": {"train.optimizer": "sgd", "train.lr": 0.01, "train.batch_size": 128, "train.epochs": 100,
               "model.dropout": 0.8, "train.weight_decay": 0.0, "train.warmup": 0.0},
    "avt": {"train.optimizer": "sgd", "train.lr": 0.001, "train.batch_size": 64, "train.epochs": 50,
            "model.dropout": 0.2, "train.weight_decay": 1e-6, "train.warmup": 0.4},
    "attentive_probe": {"train.optimizer": "adamw", "train.lr": 0.005, "train.epochs": 20, "model.dropout": 0.0,
                        "train.weight_decay": 1e-4, "train.warmup": 0.0},
    "early_lstm": {"train.optimizer": "sgd", "train.lr": 0.01, "train.batch_size": 128, "train.epochs": 100,
                   "model.dropout": 0.8, "train.weight_decay": 0.0, "train.warmup": 0.0},
}
"""Training defaults from each model's public code, applied where the user left a setting at its default:
RULSTM ``main.py`` (SGD lr 0.01 momentum 0.9, batch 128, 100 epochs, dropout 0.8); AVT's EK100 TSN
recipe (SGD Nesterov lr 1e-3, weight decay 1e-6, 50 epochs with 20 of warm-up, cosine, batch 64,
dropout 0.2); V-JEPA 2's EK100 probe (20 epochs, lr 0.005 without warm-up, weight decay 1e-4,
AdamW as in its eval code's optimizer)."""

TUNABLE = ("hidden", "layers", "heads", "steps", "alpha", "pretrain_epochs", "feature_loss", "supervised_steps")
"""``--model-config`` keys a sequence model takes (``hidden=128,layers=2``)."""


@dataclass
class SequenceConfig:
    """Everything needed to rebuild a sequence model; stored in its checkpoint as ``"sequence"``.

    ``streams``: feature dimension per stream (``{"rgb": 1024, "flow": 1024, "obj": 352}``), ``tokens``:
    tokens per step (0: one pooled vector per step), ``heads``: the class split of the output (``[97,
    300]`` for EK100, ``[]`` for one label), ``steps``: time steps per window, ``alpha``: seconds
    between steps (anticipation), ``tau_a``: the anticipation time the window ends before the action
    (RULSTM unrolls ``tau_a / alpha`` steps past it, AVT rolls out as many), ``task``: ``anticipation``
    (windows before the action) or ``recognition`` (steps spread over the segment).
    """

    model: str
    streams: dict[str, int]
    num_classes: int
    heads: list[int] = field(default_factory=list)
    tokens: int = 0
    steps: int = 8
    alpha: float = 0.25
    tau_a: float = 1.0
    task: str = "anticipation"
    hidden: int = 1024
    layers: int = 1
    heads_attention: int = 4
    dropout: float = 0.5
    feature_loss: float = 1.0
    supervised_steps: int = 8
    pretrain_epochs: int = 0
    feature_fps: float = 30.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequenceConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def outputs(self) -> int:
        return sum(self.heads) if self.heads else self.num_classes


def is_sequence_model(name: str) -> bool:
    return name in SEQUENCE_MODELS


def check_name(name: str) -> None:
    if name not in SEQUENCE_MODELS:
        raise UserError(f"unknown sequence model {name!r}; known: {', '.join(SEQUENCE_MODELS)}")


def build_sequence_model(config: SequenceConfig) -> nn.Module:
    """The network of ``config.model`` (see the package docstring for its interface)."""
    check_name(config.model)
    if config.model == "rulstm":
        from actcli.models.sequence.rulstm import build_rulstm

        return build_rulstm(config)
    if config.model == "avt":
        from actcli.models.sequence.avt import AVTHead

        return AVTHead(config)
    if config.model == "attentive_probe":
        from actcli.models.sequence.attentive_probe import AttentiveProbe

        return AttentiveProbe(config)
    from actcli.models.sequence.early import EarlyLSTM

    return EarlyLSTM(config)


def single_stream(x, config: SequenceConfig):
    """One ``[B, T, D]`` tensor from a stream dict (streams concatenated along D) and pooled tokens
    (``[B, T, N x D]`` -> mean over N) for models that read one vector per step."""
    import torch

    if isinstance(x, dict):
        x = torch.cat([x[name] for name in config.streams], dim=-1)
    x = x.float()
    if config.tokens:
        x = x.reshape(*x.shape[:2], config.tokens, -1).mean(dim=2)
    return x
