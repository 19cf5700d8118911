"""The torchvision family (``torchvision.models.video``): R3D, MC3, R(2+1)D, S3D, MViT v1/v2, Video Swin.

Networks are torchvision's own classes built by its own model builders (random init), their
classifier replaced by an identity so they return pooled features; parameter names stay
torchvision's, so its published state dicts load as they are, the classifier keys dropped
(``fc.*``, ``classifier.*``, ``head.*``). ``--weights kinetics`` loads torchvision's Kinetics-400
weights (``<Model>_Weights.KINETICS400_V1``): its URL, its hash check (the SHA-256 prefix in the file
name, as ``torch.hub.load_state_dict_from_url(check_hash=True)`` does), its cache
(``<torch hub dir>/checkpoints/<file name>``, shared with torchvision itself).

Each model's convention (mean/std, evaluation resize) is read from its weights' own
``transforms()``; the native clip follows torchvision's recipes (:data:`_NATIVE`).

What the networks take (:func:`check_clip`): the ResNets and Swin3D any clip (Swin3D pads to its
patches and shrinks its windows to small inputs); S3D at least 6 frames and 17 px (it pools time 8x
and space 32x); MViT v1/v2 an even number of frames and a crop divisible by 4 (2x4x4 patches, whose
grid sizes the positional encodings), v2 a crop of 32 px or more. MViT is built for the requested
clip, and published weights for 16x224 are resampled to it when loaded (:func:`adapt_positions`).
"""

from __future__ import annotations

import re
import socket
import sys
import urllib.error
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import get_model_weights
from torchvision.models import video as tv
from torchvision.models.video import mvit as tv_mvit
from torchvision.models.video import swin_transformer as tv_swin
from torchvision.models.video.resnet import VideoResNet
from torchvision.models.video.s3d import S3D

from actcli.data.video import ClipSpec
from actcli.errors import UserError
from actcli.models.convention import Convention
from actcli.models.families import ModelEntry

SOURCE = "torchvision docs"
DROP_PATH = "drop_path"  # the reserved config key of --drop-path (actcli.pipeline.DROP_PATH)
DOWNLOAD_TIMEOUT = 60.0
"""Seconds a socket operation of the weights download may stall before it fails."""

_NATIVE: dict[str, tuple[int, int]] = {
    # frames, stride (source frames at 30 fps) of the clips the published weights were trained on:
    # the weights' meta "_docs" (clip_len, frame_rate: 15 fps is every 2nd frame, 7.5 every 4th) and,
    # for S3D, references/video_classification/README.md (trained with --clip-len 64; evaluated at 128).
    "r3d_18": (16, 2), "mc3_18": (16, 2), "r2plus1d_18": (16, 2), "s3d": (64, 2),
    "mvit_v1_b": (16, 4), "mvit_v2_s": (16, 4),
    "swin3d_t": (32, 2), "swin3d_s": (32, 2), "swin3d_b": (32, 2),
}
KIND = {"r3d_18": "resnet", "mc3_18": "resnet", "r2plus1d_18": "resnet", "s3d": "s3d",
        "mvit_v1_b": "mvit", "mvit_v2_s": "mvit", "swin3d_t": "swin", "swin3d_s": "swin", "swin3d_b": "swin"}
CLASSIFIER = {"resnet": "fc.", "s3d": "classifier.", "mvit": "head.", "swin": "head."}
"""Key prefix of the Kinetics-400 classifier in torchvision's state dicts, by kind."""
PRIVATE_BUILDER = {"mvit": (tv_mvit, "_mvit"), "swin": (tv_swin, "_swin_transformer3d")}
"""The function each transformer's public builder hands its architecture to (module, name); these two
kinds have stochastic depth."""
SWIN_CONFIG = {"embed_dim": int, "depths": list, "num_heads": list, "window_size": list, "patch_size": list,
               "mlp_ratio": float}
"""``--model-config`` keys of Swin3D: arguments of torchvision's ``SwinTransformer3d`` (a narrower or
shallower Swin3D, e.g. ``embed_dim=48,depths=[2,2,2,2]``)."""


def kinetics_weights(name: str) -> Any:
    """torchvision's Kinetics-400 weights enum member for model ``name`` (``KINETICS400_V1``)."""
    return get_model_weights(name).KINETICS400_V1


def convention_of(weights: Any) -> Convention:
    """The input convention of torchvision ``weights``, read from its own ``transforms()``:
    mean/std, and the evaluation resize as a multiple of the crop (``[128, 171]`` -> crop 112:
    short side 128; ``[256]`` or ``[256, 256]`` -> crop 224: 256)."""
    preset = weights.transforms()
    return Convention(tuple(preset.mean), tuple(preset.std), preset.resize_size[0] / preset.crop_size[0], "BCTHW")


def _entry(name: str) -> ModelEntry:
    weights = kinetics_weights(name)
    frames, stride = _NATIVE[name]
    clip = ClipSpec(frames, stride, weights.transforms().crop_size[0])
    top1 = weights.meta["_metrics"]["Kinetics-400"]["acc@1"]
    options = {} if KIND[name] in PRIVATE_BUILDER else {"drop_path": False}  # the CNNs have no stochastic depth
    return ModelEntry(name, lambda spec: network(name, spec), clip, None, family="torchvision",
                      convention=convention_of(weights), weights=weights.url,
                      accuracy=f"Kinetics-400 top-1 {top1:g} ({SOURCE})", options=options)


ENTRIES: tuple[ModelEntry, ...] = tuple(_entry(name) for name in _NATIVE)


# ---------------------------------------------------------------------------- networks


def _rebuilt(builder: Callable[..., nn.Module], kind: str, overrides: dict[str, Any]) -> nn.Module:
    """torchvision's ``builder`` (``mvit_v1_b``, ``swin3d_t``, ...) with some of the arguments it passes on
    replaced: the public builders fix ``spatial_size=(224, 224), temporal_size=16`` (MViT: they size its
    positional encodings and relative-position tables) and ``stochastic_depth_prob``, so the builder's call
    to its private function is caught and repeated with ``overrides``, everything else (block settings,
    depths, windows) as it passed."""
    module, name = PRIVATE_BUILDER[kind]
    captured: dict[str, Any] = {}
    original = getattr(module, name)

    def capture(**kwargs: Any) -> None:
        captured.update(kwargs)

    setattr(module, name, capture)
    try:
        builder()
    finally:
        setattr(module, name, original)
    return original(**{**captured, **overrides})


def network(name: str, spec: ClipSpec, drop_path: float | None = None,
            architecture: dict[str, Any] | None = None) -> nn.Module:
    """torchvision's network ``name`` as its builder makes it (random init, Kinetics-400 classifier), for
    clips of ``spec`` (only MViT depends on the clip); ``drop_path``: the stochastic depth of the deepest
    block (``stochastic_depth_prob``, rising linearly from 0 at the first; None: torchvision's default,
    MViT 0.2, Swin3D 0.1); ``architecture``: Swin3D's :data:`SWIN_CONFIG` overrides."""
    builder, kind = getattr(tv, name), KIND[name]
    overrides: dict[str, Any] = dict(architecture or {})
    if kind == "mvit":
        overrides.update(spatial_size=(spec.crop, spec.crop), temporal_size=spec.frames)
    if drop_path is not None and kind in PRIVATE_BUILDER:
        overrides["stochastic_depth_prob"] = float(drop_path)
    return _rebuilt(builder, kind, overrides) if overrides else builder(weights=None)


def _s3d_pool(x: torch.Tensor) -> torch.Tensor:
    """S3D's ``AvgPool3d((2, 7, 7), stride=1)`` with the kernel clamped to the feature map, so
    reduced clips run; on maps of 2x7x7 or more (the clips torchvision's S3D takes) it is that pool
    exactly, and as S3D's 1x1 classifier commutes with the mean it takes after it, the mean of this
    pool is S3D's penultimate feature."""
    t, h, w = (int(size) for size in x.shape[-3:])  # constants when traced: exports take one clip size
    return F.avg_pool3d(x, kernel_size=(min(2, t), min(7, h), min(7, w)), stride=1)


torch.fx.wrap("_s3d_pool")  # shape arithmetic: one call in torch.fx graphs, so BatchNorm folding can trace S3D


class S3DPool(nn.Module):
    """:func:`_s3d_pool` as a module, in place of S3D's ``avgpool`` (no parameters)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _s3d_pool(x)


# Backbones: torchvision's classes with what actcli's freezing needs (``blocks``: the stages or
# transformer blocks in forward order; ``before_blocks``: what runs in front of block 0). An
# instance is a torchvision network whose class is swapped for one of these (same layout, same
# forward, same parameter names), its classifier replaced by an identity.


class VideoResNetBackbone(VideoResNet):
    """R3D / MC3 / R(2+1)D: clip -> ``stem``, ``layer1..4``, global average pool -> ``[B, 512]``."""

    @property
    def blocks(self) -> nn.ModuleList:
        return nn.ModuleList([self.layer1, self.layer2, self.layer3, self.layer4])

    def before_blocks(self) -> list[tuple[str, nn.Module]]:
        return [("stem", self.stem)]


class S3DBackbone(S3D):
    """S3D: clip -> ``features`` (its convolutions, pools and inception blocks) -> :class:`S3DPool`,
    mean -> ``[B, 1024]``."""

    @property
    def blocks(self) -> nn.Sequential:
        return self.features

    def before_blocks(self) -> list[tuple[str, nn.Module]]:
        return []


class MViTBackbone(tv_mvit.MViT):
    """MViT v1/v2: ``conv_proj`` (patches), ``pos_encoding`` (cls token, positions), ``blocks``,
    ``norm``, the cls token -> ``[B, 768]``."""

    def before_blocks(self) -> list[tuple[str, nn.Module]]:
        return [("conv_proj", self.conv_proj), ("pos_encoding", self.pos_encoding)]


class Swin3dBackbone(tv_swin.SwinTransformer3d):
    """Video Swin: ``patch_embed``, ``features`` (4 stages with patch merging between), ``norm``,
    global average pool -> ``[B, 768]`` (``swin3d_b``: 1024)."""

    @property
    def blocks(self) -> nn.Sequential:
        return self.features

    def before_blocks(self) -> list[tuple[str, nn.Module]]:
        return [("patch_embed", self.patch_embed), ("pos_drop", self.pos_drop)]


def strip(net: nn.Module) -> tuple[nn.Module, int]:
    """A torchvision video network without its classifier, in place: ``(backbone, feature_dim)``."""
    if isinstance(net, VideoResNet):
        feature_dim, net.fc, cls = net.fc.in_features, nn.Identity(), VideoResNetBackbone
    elif isinstance(net, S3D):
        feature_dim, net.classifier, cls = net.classifier[-1].in_channels, nn.Identity(), S3DBackbone
        net.avgpool = S3DPool()
    elif isinstance(net, tv_mvit.MViT):
        feature_dim, net.head, cls = net.head[-1].in_features, nn.Identity(), MViTBackbone
    elif isinstance(net, tv_swin.SwinTransformer3d):
        feature_dim, net.head, cls = net.head.in_features, nn.Identity(), Swin3dBackbone
    else:
        raise TypeError(f"no known classifier on {type(net).__name__}; teach strip about it")
    net.__class__ = cls
    return net, feature_dim


# ---------------------------------------------------------------------------- clips


def architecture(entry: ModelEntry, config: dict[str, Any]) -> dict[str, Any]:
    """The architecture overrides in ``config`` (``--model-config``; Swin3D only, :data:`SWIN_CONFIG`),
    checked: a :class:`UserError` naming the keys the model takes."""
    given = {key: value for key, value in config.items() if key != DROP_PATH}
    if not given:
        return {}
    if KIND[entry.name] != "swin":
        raise UserError(f"--model-config: {entry.name} ({entry.family}) takes no architecture overrides (of the "
                        "torchvision models only Swin3D does; Hugging Face models take their configuration's fields)")
    unknown = sorted(set(given) - set(SWIN_CONFIG))
    if unknown:
        raise UserError(f"--model-config for {entry.name}: unknown key {unknown[0]!r}; Swin3D takes "
                        f"{', '.join(SWIN_CONFIG)}")
    for key, kind in SWIN_CONFIG.items():
        value = given.get(key)
        if value is None:
            continue
        positive_ints = isinstance(value, list) and value and all(isinstance(v, int) and v > 0 for v in value)
        if kind is list and not positive_ints:
            raise UserError(f"--model-config for {entry.name}: {key} is a list of positive integers, e.g. "
                            f"{key}=[2,2,2,2], not {value!r}")
        if kind is not list and (isinstance(value, (bool, list, str)) or value <= 0):
            raise UserError(f"--model-config for {entry.name}: {key} is a positive number, not {value!r}")
    defaults = {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24]}
    dim, depths, heads = (given.get(k, v) for k, v in defaults.items())
    if len(depths) != len(heads):
        raise UserError(f"--model-config for {entry.name}: depths {depths} and num_heads {heads} need one entry per "
                        "stage each")
    for stage, count in enumerate(heads):
        if (int(dim) * 2**stage) % count:
            raise UserError(f"--model-config for {entry.name}: stage {stage} has width {int(dim) * 2**stage} "
                            f"(embed_dim x 2^stage), not divisible by its {count} heads")
    for key in ("window_size", "patch_size"):
        if key in given and len(given[key]) != 3:
            raise UserError(f"--model-config for {entry.name}: {key} is [time,height,width], not {given[key]}")
    return {**given, **({"mlp_ratio": float(given["mlp_ratio"])} if "mlp_ratio" in given else {})}


def check_clip(entry: ModelEntry, spec: ClipSpec, config: dict[str, Any]) -> None:
    architecture(entry, config)
    kind = KIND[entry.name]
    if config.get(DROP_PATH) and kind not in PRIVATE_BUILDER:
        raise UserError(f"--drop-path: {entry.name} has no stochastic depth (of the torchvision models only MViT and "
                        "Swin3D have); drop the option")
    if spec.frames < 1 or spec.crop < 1:
        raise UserError(f"{entry.name} needs at least 1 frame and 1 pixel, not {spec}")
    if kind == "mvit" and (spec.frames % 2 or spec.crop % 4):
        raise UserError(f"{entry.name} takes an even number of frames and a crop divisible by 4 (2x4x4 patches), "
                        f"not {spec}")
    if kind == "mvit" and entry.name != "mvit_v1_b" and spec.crop < 32:
        raise UserError(f"{entry.name} takes a crop of at least 32 px (its relative-position tables need a patch "
                        f"grid of 8 or more, which its 3 pooling stages halve), not {spec}")
    if kind == "s3d" and (spec.frames < 6 or spec.crop < 17):
        # time: /2 (stem), /2 (pool), then a 2x2x2 pool that needs 2 steps: ceil(ceil(T/2)/2) >= 2 -> T >= 5;
        # space: /2 four times, then that pool: H >= 17. At exactly 5 frames the backward pass of the stem's
        # temporal convolution (kernel 7, stride 2) corrupts memory in oneDNN on CPUs (PyTorch 2.14): 6 or more.
        raise UserError(f"{entry.name} takes at least 6 frames and a crop of at least 17 px (it pools time 8x and "
                        f"space 32x), not {spec}")


def backbone(entry: ModelEntry, spec: ClipSpec, config: dict[str, Any]) -> tuple[nn.Module, int]:
    """The network without its classifier; ``config["drop_path"]`` (MViT, Swin3D) sets its stochastic depth."""
    check_clip(entry, spec, config)
    return strip(network(entry.name, spec, config.get(DROP_PATH), architecture(entry, config)))


# ---------------------------------------------------------------------------- weights


def weights_cache(entry: ModelEntry) -> Path | None:
    """Where torchvision caches the published weights: ``<torch hub dir>/checkpoints/<file name>``."""
    if entry.weights is None:
        return None
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(entry.weights).path).name


@contextmanager
def _socket_timeout(seconds: float):
    """A default socket timeout while downloading (``torch.hub``'s ``urlopen`` sets none), unless one is set."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def published_weights(entry: ModelEntry) -> Path:
    """The cached Kinetics-400 state dict, downloaded once with torchvision's hash check;
    offline: one line naming ``--weights PATH``."""
    cache = weights_cache(entry)
    if cache is None:
        raise UserError(f"{entry.name} has no published Kinetics-400 weights; train it from scratch or pass "
                        "--weights PATH")
    if cache.is_file():
        return cache
    match = torch.hub.HASH_REGEX.search(cache.name)  # torchvision's file names end in -<sha256 prefix>.pth
    cache.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT):
            torch.hub.download_url_to_file(entry.weights, str(cache), match.group(1) if match else None,
                                           progress=sys.stderr.isatty())
    except RuntimeError as exc:  # torch.hub: 'invalid hash value (expected "...", got "...")'; nothing kept
        raise UserError(f"the download of {entry.weights} does not match the hash in its name ({_first_line(exc)}); "
                        "try again, or download the file yourself and pass --weights PATH") from None
    except (urllib.error.URLError, OSError) as exc:  # no network, HTTP errors, timeouts
        reason = getattr(exc, "reason", None) or _first_line(exc)
        raise UserError(f"cannot download {entry.weights} ({reason}); Kinetics-400 weights for {entry.name} could "
                        "not be fetched: download the file where you are online and pass --weights PATH") from None
    return cache


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def resolve(entry: ModelEntry, source: str) -> Path:
    """The local file ``--weights source`` names: ``kinetics`` -> the cached published state dict."""
    if source.startswith("hf:"):
        raise UserError(f"{entry.name} is a torchvision model: hf: weights are for Hugging Face models; "
                        "pass --weights kinetics or a file")
    return published_weights(entry) if source == "kinetics" else Path(source)


def _resample(table: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``table`` ``[*grid, D]`` linearly resampled to ``[*size, D]`` (1D: linear, 2D: bilinear)."""
    mode = {1: "linear", 2: "bilinear"}[len(size)]
    grid = table.movedim(-1, 0).unsqueeze(0).float()
    return F.interpolate(grid, size=size, mode=mode, align_corners=False)[0].movedim(0, -1).to(table.dtype)


def adapt_positions(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> list[str]:
    """Resize MViT's position tables in ``state`` (published for 16x224) to the model's (``own``), in place.

    * v1's absolute encodings are separable, ``temporal_pos [T', D]`` + ``spatial_pos [H' W', D]``
      (the cls token's ``class_pos`` and ``class_token`` are kept): temporal linearly, spatial
      bilinearly over the square patch grid, which is a trilinear resampling of their sum over the
      (t, h, w) grid;
    * v2's relative tables ``rel_pos_h/w/t [2 n - 1, d]``: linearly, as torchvision's own
      ``_interpolate`` does when an input is not the size the tables were made for.

    Returns the keys resized.
    """
    resized = []
    for key, value in list(state.items()):
        target = own.get(key)
        if target is None or target.shape == value.shape or value.dim() != 2 or value.shape[1] != target.shape[1]:
            continue
        if key.endswith("pos_encoding.spatial_pos"):
            side, new_side = round(value.shape[0] ** 0.5), round(target.shape[0] ** 0.5)
            if side * side != value.shape[0] or new_side * new_side != target.shape[0]:
                continue
            grid = value.reshape(side, side, -1)
            state[key] = _resample(grid, (new_side, new_side)).reshape(target.shape)
        elif key.endswith("pos_encoding.temporal_pos") or re.search(r"\.rel_pos_[hwt]$", key):
            state[key] = _resample(value, (target.shape[0],))
        else:
            continue
        resized.append(key)
    return resized


def load_weights(entry: ModelEntry, network: nn.Module, path: Path, config: dict[str, Any]) -> str:
    """A torchvision state dict (what torchvision publishes; or its reference scripts' checkpoints,
    ``{"model": ...}``) fills the backbone, the Kinetics-400 classifier dropped; MViT's position
    tables are resampled to the model's clip (:func:`adapt_positions`)."""
    from actcli.models.checkpoint import load_file, load_state

    data = load_file(path)
    state = data["model"] if isinstance(data.get("model"), dict) else data
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} holds no torchvision state dict (tensors at top level or under 'model')")
    prefix = CLASSIFIER[KIND[entry.name]]
    state = {k: v for k, v in state.items() if not k.startswith(prefix)}
    resized = adapt_positions(state, network.state_dict()) if KIND[entry.name] == "mvit" else []
    load_state(network, state, path)
    note = f" ({len(resized)} position tables resampled to the clip)" if resized else ""
    return f"backbone from {path}{note}"
