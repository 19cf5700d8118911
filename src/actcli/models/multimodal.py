"""Models over several modalities (``rgb``, ``audio``, ``motion``, ``features``) and how they are fused.

Inputs are a dict: ``{"rgb": float [B, 3, T, H, W], "audio": float [B, 1, M, F], "motion": float
[B, 2, T, H, W], "features": float [B, T, D]}`` (see :mod:`actcli.data.audio`,
:mod:`actcli.data.motion`, :mod:`actcli.data.features`). Each modality has an encoder to pooled
features ``[B, D_m]``: a zoo backbone for ``rgb``, the same backbone with a two-channel stem
for ``motion``, :class:`AudioEncoder` for ``audio``, :class:`FeatureEncoder` for ``features``. Fusion:

* ``late``: one linear head per modality; the fused scores are the average of the heads'
  log-softmax, and :meth:`MultiModalModel.modality_logits` gives each head on its own, so
  reports can show per-modality and fused accuracy side by side;
* ``weighted``: late fusion with learned weights, ``softmax(w)`` over modalities (equal at the
  start), trained with the rest; :meth:`MultiModalModel.fusion_weights` reads them;
* ``joint``: the pooled features are concatenated into one head (mid-level fusion).

A model of ``rgb`` alone stays the plain :class:`actcli.models.zoo.ActionModel`.
"""

from __future__ import annotations

import torch
from torch import nn

from actcli.data.video import ClipSpec
from actcli.models.zoo import ClassifierHead, build_backbone, build_model

MODALITIES = ("rgb", "audio", "motion", "features")
FUSIONS = ("late", "weighted", "joint")
LATE_FUSIONS = ("late", "weighted")


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


class FeatureEncoder(nn.Module):
    """Per-frame features ``[B, T, D]`` -> ``[B, 256]``: a linear projection, then a GRU whose last
    state summarises the sequence in time order (RULSTM's rolling LSTM, reduced to one layer)."""

    feature_dim = 256

    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.LayerNorm(input_dim), nn.Linear(input_dim, self.feature_dim), nn.ReLU())
        self.gru = nn.GRU(self.feature_dim, self.feature_dim, batch_first=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        _, last = self.gru(self.project(features.float()))
        return last[-1]


def adapt_input_channels(network: nn.Module, channels: int) -> nn.Module:
    """Give every RGB stem convolution (``Conv3d`` with 3 input channels) ``channels`` inputs, in place.

    The new weights are the RGB weights averaged over colour and repeated (TSN's cross-modality
    initialisation), so Kinetics weights loaded afterwards into the RGB layout do not fit, but a
    trained motion stream reloads exactly.
    """
    for parent in list(network.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv3d) and child.in_channels == 3:
                conv = nn.Conv3d(channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                                 child.dilation, child.groups, child.bias is not None)
                with torch.no_grad():
                    conv.weight.copy_(child.weight.mean(dim=1, keepdim=True).expand_as(conv.weight))
                    if child.bias is not None:
                        conv.bias.copy_(child.bias)
                setattr(parent, name, conv)
    return network


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
        if fusion in LATE_FUSIONS:
            self.heads = nn.ModuleDict({m: ClassifierHead(d, num_classes, dropout) for m, d in dims.items()})
            if fusion == "weighted":
                self.fusion_logits = nn.Parameter(torch.zeros(len(dims)))
        else:
            self.head = ClassifierHead(sum(dims.values()), num_classes, dropout)

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def head_parameters(self) -> list[nn.Parameter]:
        """The parameters that map features to class scores: every modality's head and the
        fusion weights (late fusions), or the joint head."""
        if self.fusion == "joint":
            return self.head.head_parameters()
        weights = [self.fusion_logits] if self.fusion == "weighted" else []
        return [p for head in self.heads.values() for p in head.head_parameters()] + weights

    def modality_logits(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each modality's own logits ``[B, K]`` (late fusion only)."""
        return {m: self.heads[m](self.encoders[m](inputs[m])) for m in self.encoders}

    def fusion_weights(self) -> dict[str, float] | None:
        """Each modality's weight in the fused scores (late fusions; None for joint)."""
        if self.fusion == "joint":
            return None
        if self.fusion == "late":
            return dict.fromkeys(self.modalities, 1.0 / len(self.modalities))
        return dict(zip(self.modalities, self.fusion_logits.detach().softmax(0).tolist(), strict=True))

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.fusion in LATE_FUSIONS:
            scores = torch.stack([logits.float().log_softmax(dim=1)
                                  for logits in self.modality_logits(inputs).values()])  # [M, B, K]
            if self.fusion == "late":
                return scores.mean(dim=0)
            return (self.fusion_logits.float().softmax(0)[:, None, None] * scores).sum(dim=0)
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
              fusion: str = "late", feature_dim: int | None = None, config: dict | None = None) -> nn.Module:
    """:func:`build_model` for ``rgb`` alone, else a :class:`MultiModalModel` (rgb and motion
    encoders: zoo model ``name``, with architecture overrides ``config``); ``feature_dim`` is D of
    the ``features`` modality."""
    if modalities == ["rgb"]:
        return build_model(name, spec, num_classes, dropout, config)
    encoders: dict[str, tuple[nn.Module, int]] = {}
    if "rgb" in modalities:
        encoders["rgb"] = build_backbone(name, spec, config)
    if "audio" in modalities:
        encoders["audio"] = (AudioEncoder(), AudioEncoder.feature_dim)
    if "motion" in modalities:
        network, dim = build_backbone(name, spec, config)
        encoders["motion"] = (adapt_input_channels(network, 2), dim)
    if "features" in modalities:
        if not feature_dim:
            raise ValueError("the features modality needs feature_dim")
        encoders["features"] = (FeatureEncoder(feature_dim), FeatureEncoder.feature_dim)
    return MultiModalModel(encoders, num_classes, dropout, fusion)

