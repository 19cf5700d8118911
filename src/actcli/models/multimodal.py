"""Models over several modalities (``rgb``, ``audio``) and how they are fused.

Inputs are a dict: ``{"rgb": float [B, C, T, H, W], "audio": float [B, 1, M, F]}`` (log-mel,
see :mod:`actcli.data.audio`). Each modality has an encoder to pooled features ``[B, D_m]``:
a zoo backbone for ``rgb``, :class:`AudioEncoder` for ``audio``. Fusion:

* ``late``: one linear head per modality; the fused scores are the average of the heads'
  log-softmax, and :meth:`MultiModalModel.modality_logits` gives each head on its own, so
  reports can show per-modality and fused accuracy side by side;
* ``joint``: the pooled features are concatenated into one head (mid-level fusion).

A model of ``rgb`` alone stays the plain :class:`actcli.models.zoo.ActionModel`.
"""

from __future__ import annotations

import torch
from torch import nn

from actcli.data.video import ClipSpec
from actcli.models.zoo import build_model, get_entry, strip_classifier

MODALITIES = ("rgb", "audio")
FUSIONS = ("late", "joint")


class AudioEncoder(nn.Module):
    """A small 2D CNN over log-mel spectrograms: ``[B, 1, M, F]`` -> ``[B, 128]``.

    Hand-built (four conv-BN-ReLU stages and global pooling) because pytorchvideo's only
    audio network is the audio pathway of its audio-visual SlowFast, far too large for the
    short clips and CPU budget here.
    """

    feature_dim = 128

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = [1, 16, 32, 64, 128]
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out),
                       nn.ReLU(inplace=True)]
        self.net = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        return self.net(spectrogram)


class MultiModalModel(nn.Module):
    """Encoders per modality plus late or joint fusion (module docstring)."""

    def __init__(self, encoders: dict[str, tuple[nn.Module, int]], num_classes: int, dropout: float,
                 fusion: str) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}")
        self.fusion = fusion
        self.encoders = nn.ModuleDict({m: enc for m, (enc, _) in encoders.items()})
        dims = {m: d for m, (_, d) in encoders.items()}
        if fusion == "late":
            self.heads = nn.ModuleDict({m: nn.Sequential(nn.Dropout(dropout), nn.Linear(d, num_classes))
                                        for m, d in dims.items()})
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(sum(dims.values()), num_classes))
        self.keep_eval: list[nn.Module] = []

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def modality_logits(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each modality's own logits ``[B, K]`` (late fusion only)."""
        return {m: self.heads[m](self.encoders[m](inputs[m])) for m in self.encoders}

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.fusion == "late":
            scores = [logits.float().log_softmax(dim=1) for logits in self.modality_logits(inputs).values()]
            return torch.stack(scores).mean(dim=0)
        return self.head(torch.cat([self.encoders[m](inputs[m]) for m in self.encoders], dim=1))


class HeadsView(nn.Module):
    """Every head of a late-fusion model side by side: logits ``[B, M * K]`` in :attr:`modalities`
    order, so one pass over the data scores each modality alone (split with ``.split(K, dim=1)``)."""

    def __init__(self, model: MultiModalModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat(list(self.model.modality_logits(inputs).values()), dim=1)


def parse_modalities(text: str) -> list[str]:
    """``"rgb,audio"`` -> ``["rgb", "audio"]`` in a fixed order; unknown names raise ValueError."""
    chosen = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in MODALITIES]
    if unknown or not chosen:
        raise ValueError(f"modalities must be among {', '.join(MODALITIES)}, got {text!r}")
    return [m for m in MODALITIES if m in chosen]


def build_any(name: str, spec: ClipSpec, num_classes: int, dropout: float, modalities: list[str],
              fusion: str = "late") -> nn.Module:
    """:func:`build_model` for ``rgb`` alone, else a :class:`MultiModalModel` (rgb encoder: zoo model ``name``)."""
    if modalities == ["rgb"]:
        return build_model(name, spec, num_classes, dropout)
    encoders: dict[str, tuple[nn.Module, int]] = {}
    if "rgb" in modalities:
        encoders["rgb"] = strip_classifier(get_entry(name).build(spec))
    if "audio" in modalities:
        encoders["audio"] = (AudioEncoder(), AudioEncoder.feature_dim)
    return MultiModalModel(encoders, num_classes, dropout, fusion)

