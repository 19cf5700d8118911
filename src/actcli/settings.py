"""Validated settings for every command, built from four layers.

Priority, lowest first: the defaults below < a TOML file (``--config FILE``) <
``ACTCLI_*`` environment variables (nested with ``__``, e.g. ``ACTCLI_TRAIN__EPOCHS=5``)
< command-line options. :func:`load_settings` merges the layers, validates the result
once and remembers which layer each value came from (``actcli config show``).

All paths are relative to the working directory unless the user gives absolute ones.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from actcli.errors import UserError

ENV_PREFIX = "ACTCLI_"
ENV_DELIMITER = "__"


MAX_FRAMES = 1024  # frames per clip: beyond this a clip is a whole long video, not a clip
MAX_CROP = 1024  # pixels: 4K crops do not fit a clip batch in memory


class _Section(BaseModel):
    # Every number must be finite: inf or nan in a setting is one error line naming it, never an OverflowError later.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class PathsSettings(_Section):
    """Where actcli reads and writes, relative to the working directory."""

    data: Path = Field(Path("data"), description="Downloaded and generated datasets.")
    annotations: Path = Field(Path("annotations"), description="Split CSVs, one folder per dataset.")
    outputs: Path = Field(Path("outputs"), description="Runs, reports, caches and the dataset registry.")


class DataSettings(_Section):
    """Which dataset, where its videos are, and how clips are cut from them."""

    dataset: str = Field("ucf50", description="Dataset name (`actcli datasets` lists them).")
    root: Path | None = Field(
        None, description="Folder holding the class folders; default: where `download` put it."
    )
    annotations_dir: Path | None = Field(
        None, description="Folder with train/val/test CSVs; default: <paths.annotations>/<dataset>."
    )
    frames: int | None = Field(None, ge=1, le=MAX_FRAMES, description="Frames per clip; default: the model's.")
    stride: int | None = Field(None, ge=1, le=1000, description="Frame sampling stride; default: the model's.")
    crop: int | None = Field(None, ge=16, le=MAX_CROP, description="Square crop in pixels; default: the model's.")
    hflip: bool | None = Field(
        None, description="Random horizontal flip in training; default: on unless the dataset's "
        "labels depend on direction (synthetic)."
    )
    workers: int = Field(2, ge=0, description="DataLoader worker processes.")
    modalities: str = Field(
        "rgb", description="Inputs, comma-separated: rgb, audio (log-mel of the clip's sound), motion (optical "
        "flow or frame differences), features (precomputed per-frame features), e.g. rgb,audio."
    )
    motion: Literal["difference", "farneback"] = Field(
        "difference", description="How the motion modality is computed from decoded frames: difference (grey-level "
        "change from the previous frame) or farneback (OpenCV optical flow). EK100 reads its released flow_frames."
    )
    features: Path | None = Field(
        None, description="Precomputed features for the features modality: a folder of <video>.npy arrays "
        "[frames, D] or an LMDB in RULSTM's layout (<video>_frame_<10 digits>.jpg -> float32 bytes)."
    )
    features_fps: float = Field(30.0, gt=0, description="Feature rows (LMDB frames) per second of video.")
    @field_validator("modalities")
    @classmethod
    def _modalities(cls, value: str) -> str:
        from actcli.models.multimodal import parse_modalities

        return ",".join(parse_modalities(value))

    no_audio: Literal["zeros", "skip"] = Field(
        "zeros", description="A video without sound: a silent spectrogram (zeros) or left out (skip); counted."
    )
    skip_missing: bool = Field(
        False, description="EK100: leave out (and count) segments whose frames or video are missing, instead "
        "of stopping with an error."
    )
    cache_clips: bool = Field(
        False, description="Train from decoded, resized frames stored once under <outputs>/cache/clips "
        "(memory-mapped); training clips then start on the stride grid."
    )
    cache_limit_gb: float = Field(20.0, gt=0, description="Most disk space the clip cache may use, in GB.")
    decoder: Literal["auto", "torchcodec", "pyav", "torchcodec-cuda"] = Field(
        "auto", description="Video decoder: torchcodec (needs FFmpeg's libraries, faster), pyav, auto "
        "(torchcodec when it works here, else pyav), or torchcodec-cuda (GPU decoding, NVDEC; without a CUDA GPU "
        "one warning, then auto's choice)."
    )
    augment: bool = Field(
        True, description="Random clip position, scale, crop and flip in training; off: centred clips "
        "(with model.freeze=backbone the head then trains on cached backbone features)."
    )
    auto_augment: Literal["none", "randaugment", "trivialaugment"] = Field(
        "none", description="Training clips: torchvision's RandAugment (2 ops, magnitude 9 of 31) or "
        "TrivialAugmentWide (1 op, random magnitude), the same ops and magnitudes on every frame of a clip; "
        "none: off. Needs data.augment."
    )


ConfigValue = int | float | bool | str | list[int | float | bool | str]


def _config_scalar(raw: str) -> int | float | bool | str:
    """``"true"`` -> True, ``"3"`` -> 3, ``"0.1"`` -> 0.1, anything else the string."""
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def _config_pairs(text: str) -> list[str]:
    """``text`` split at the commas outside ``[...]``; ValueError on unbalanced brackets."""
    pairs, depth, current = [], 0, []
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth < 0 or depth > 1:
            raise ValueError(f"unbalanced or nested brackets in {text!r}")
        if char == "," and depth == 0:
            pairs.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise ValueError(f"unbalanced brackets in {text!r}")
    pairs.append("".join(current))
    return [p.strip() for p in pairs if p.strip()]


def parse_model_config(text: str) -> dict[str, ConfigValue]:
    """``"hidden_size=64,drop_path_rate=0.1,use_mean_pooling=true,depths=[2,2,6,2]"`` -> typed values
    (int, float, bool, str, or a list of them in brackets)."""
    out: dict[str, ConfigValue] = {}
    for pair in _config_pairs(text):
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"expected KEY=VALUE pairs separated by commas, got {pair!r}")
        raw = raw.strip()
        if raw.startswith("[") and raw.endswith("]"):
            out[key.strip()] = [_config_scalar(item.strip()) for item in raw[1:-1].split(",") if item.strip()]
        else:
            out[key.strip()] = _config_scalar(raw)
    return out


class ModelSettings(_Section):
    """Which network, which starting weights, what to train."""

    name: str = Field("x3d_xs", description="Model name (see `actcli models`).")
    weights: str | None = Field(
        None, description="'kinetics' (the model's published weights), hf:<repo>[@revision], a file or a Hugging Face "
        "folder, or empty for random initialisation."
    )
    freeze: str = Field(
        "none", description="Parts kept fixed: none, backbone, bn (all BatchNorm) or until:<block> "
        "(backbone blocks up to and including <block>, by index or name)."
    )
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="Dropout before the classifier.")
    drop_path: float | None = Field(
        None, ge=0.0, lt=1.0, description="Stochastic depth: the drop-path rate of the deepest block (rising "
        "linearly from 0 at the first), for networks that have it (transformers, pytorchvideo's MViT); default: "
        "the family recipe's, else the architecture's own. Stored in the checkpoint with model.config."
    )
    config: str = Field(
        "", description="Architecture overrides of a Hugging Face model, KEY=VALUE,...: e.g. hidden_size=64,"
        "num_hidden_layers=2,num_attention_heads=2,intermediate_size=128 for a narrow VideoMAE (any field of its "
        "transformers configuration). Stored in the checkpoint."
    )
    backbone: str | None = Field(
        None, description="Sequence models (rulstm, avt, attentive_probe, early_lstm): the zoo backbone whose "
        "per-time features they read, extracted into the feature cache on the fly (instead of --features)."
    )
    backbone_weights: str | None = Field(
        None, description="Sequence models: the weights of model.backbone (an actcli checkpoint of it, kinetics, "
        "hf:<repo> or a file)."
    )
    fusion: Literal["late", "weighted", "joint"] = Field(
        "late", description="Several modalities: late (a head per modality, log-probabilities averaged), weighted "
        "(late fusion with learned modality weights) or joint (pooled features concatenated into one head)."
    )

    @field_validator("config")
    @classmethod
    def _config_pairs(cls, value: str) -> str:
        parse_model_config(value)
        return value

    @field_validator("freeze")
    @classmethod
    def _freeze_mode(cls, value: str) -> str:
        if value in {"none", "backbone", "bn"} or (value.startswith("until:") and len(value) > len("until:")):
            return value
        raise ValueError("must be none, backbone, bn or until:<block>")


class TrainSettings(_Section):
    """The training loop."""

    experiment: str = Field("default", description="Run folder name under outputs/runs/.")
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1, description="Clips per batch and process (global batch: x processes).")
    sync_bn: bool = Field(False, description="Under torchrun: BatchNorm statistics over the global batch.")
    skip_nonfinite: bool = Field(False, description="Skip (and count) batches whose loss is NaN or infinite instead "
                                 "of stopping the run.")
    optimizer: Literal["sgd", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(5e-5, ge=0)
    warmup: float = Field(0.1, ge=0, lt=1, description="Fraction of steps with linear LR warm-up.")
    schedule: Literal["cosine", "step"] = Field("cosine", description="LR after warm-up: cosine to 0, or steps.")
    step_every: int = Field(10, ge=1, description="step schedule: epochs between LR drops.")
    step_gamma: float = Field(0.1, gt=0, le=1, description="step schedule: LR factor at each drop.")
    head_lr_mult: float = Field(1.0, gt=0, description="LR multiplier for the new classifier head.")
    layer_decay: float = Field(
        1.0, gt=0, le=1, description="Layer-wise LR decay F: with L backbone blocks, block i learns at lr x "
        "F^(L - i), what runs before block 0 at lr x F^(L + 1), the head and what follows the last block at lr; "
        "1: off."
    )
    mixup: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="Mixup alpha: each batch becomes a blend of itself and its "
        "rolled copy (weight from Beta(alpha, alpha)), targets blended alike; 0: off."
    )
    cutmix: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="CutMix alpha: each batch gets a box (the same in every frame) "
        "pasted from its rolled copy, targets weighted by area; 0: off. With mixup too: one of the two per batch."
    )
    repeated_aug: int = Field(
        1, ge=1, description="Repeated augmentation: every training clip is drawn N times per epoch, each with "
        "its own augmentation (several processes: the copies go to different processes)."
    )
    grad_checkpointing: bool = Field(
        False, description="Recompute each backbone block's activations in the backward pass instead of "
        "storing them: less memory, about a third more compute."
    )
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    precision: Literal["32", "bf16", "16"] = Field("32", description="32, bf16 (CPU or GPU) or 16 (GPU).")
    accumulate: int = Field(1, ge=1, description="Batches whose gradients are summed per optimizer step.")
    clip_grad: float | None = Field(None, gt=0, description="Clip the gradient norm to this value.")
    early_stop: int | None = Field(None, ge=1, description="Stop after this many epochs without improvement.")
    monitor: Literal["val_accuracy", "val_loss"] = Field(
        "val_accuracy", description="Metric for best.pt and early stop."
    )
    ema: float | None = Field(None, gt=0, lt=1, description="Decay of an exponential moving average of the weights.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Random seed (0 to 2^32 - 1).")
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    memory_format: Literal["auto", "channels_last", "contiguous"] = Field(
        "auto", description="CPU training: the memory format of 3D convolutions and clips; auto = the faster of the "
        "two, timed once per model, clip and precision and cached (outputs/cache/memory_format.json)."
    )

    observe_range: tuple[float, float] | None = Field(
        None, description="Early prediction: each training clip comes from only the first r of its video, "
        "r drawn uniformly from this range (0 < low <= high <= 1); off: whole videos."
    )

    @field_validator("observe_range")
    @classmethod
    def _observe_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 < value[0] <= value[1] <= 1:
            raise ValueError("must be two ratios with 0 < low <= high <= 1, e.g. 0.1 1.0")
        return value

    @field_validator("experiment")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not value or any(ch in value for ch in "/\\") or value in {".", ".."}:
            raise ValueError("must be a plain folder name (no slashes)")
        return value


class TestSettings(_Section):
    """Evaluation of a checkpoint."""

    __test__ = False  # not a pytest test class

    split: str = Field("test", description="Which split CSV to evaluate: train, val or test.")
    batch_size: int = Field(8, ge=1)
    views: str = Field("1x1", pattern=r"^[1-9][0-9]*x[1-3]$", description="Temporal clips x spatial crops per video.")
    observe: str | None = Field(
        None, description="Early prediction: comma-separated observation ratios, e.g. 0.1,0.5,1.0; each video "
        "is classified from its first r only, and accuracy is reported per ratio."
    )
    precision: Literal["auto", "32", "bf16", "16"] = Field(
        "auto", description="Inference precision of test, predict and benchmark: 32, bf16, 16 (CUDA), or auto = "
        "bf16 where the CPU/GPU computes bf16 natively (e.g. AMX), else 32."
    )
    runtime: Literal["auto", "torch", "openvino", "onnxruntime"] = Field(
        "auto", description="What runs the model in test, predict and benchmark: torch, openvino (CPU), onnxruntime "
        "(CPU, fp32), or auto = openvino on the CPU where it is installed and converts the model, else torch. "
        "Exported files run on their own runtime (an ONNX file also on openvino)."
    )

    tau_a: str | None = Field(
        None, description="Anticipation with sequence models: comma-separated anticipation times in seconds, e.g. "
        "2,1.5,1,0.5 (RULSTM's table), each scored in the same test; default: the annotated tau_a."
    )

    sls: tuple[int, int, int] = Field(
        (5, 5, 5), description="EK100 submissions: supervision levels (pretraining, training labels, training data), "
        "each 0-5, as the challenge asks every entry to declare."
    )

    @field_validator("sls")
    @classmethod
    def _sls(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if not all(0 <= v <= 5 for v in value):
            raise ValueError("supervision levels are integers from 0 to 5")
        return value

    @field_validator("tau_a")
    @classmethod
    def _tau_a(cls, value: str | None) -> str | None:
        if value is not None:
            anticipation_times(value)
        return value

    @field_validator("observe")
    @classmethod
    def _observe(cls, value: str | None) -> str | None:
        if value is not None:
            observe_ratios(value)
        return value


def anticipation_times(text: str) -> list[float]:
    """``"2,1.5,1,0.5"`` -> ``[2.0, 1.5, 1.0, 0.5]``: each a finite number of seconds >= 0, in the given order,
    no repeats."""
    import math

    try:
        times = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--tau-a takes comma-separated seconds such as 2,1.5,1,0.5, not {text!r}") from None
    if not times or not all(math.isfinite(t) and t >= 0 for t in times) or len(set(times)) != len(times):
        raise ValueError(f"--tau-a takes distinct finite seconds >= 0, got {text!r}")
    return times


def observe_ratios(text: str) -> list[float]:
    """``"0.1,0.5,1"`` -> ``[0.1, 0.5, 1.0]``; each in (0, 1], sorted, no repeats."""
    try:
        ratios = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise ValueError(f"--observe takes comma-separated ratios such as 0.1,0.5,1.0, not {text!r}") from None
    if not ratios or not all(0 < r <= 1 for r in ratios):
        raise ValueError(f"--observe ratios must be in (0, 1], got {text!r}")
    return ratios


class BenchmarkSettings(_Section):
    """Latency and throughput measurement."""

    batch_size: int = Field(2, ge=1)
    warmup: int = Field(3, ge=0, description="Untimed runs before measuring.")
    runs: int = Field(20, ge=1, description="Timed runs; p50 and p95 are taken over these.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads; default: torch's.")
    reference: bool = Field(
        True, description="Also time the prototype's way (eager fp32 model, whole video decoded) and report "
        "the speed-ups; skipped for exported models."
    )


class Settings(BaseSettings):
    """Every setting of every command. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(extra="forbid")

    paths: PathsSettings = PathsSettings()
    data: DataSettings = DataSettings()
    model: ModelSettings = ModelSettings()
    train: TrainSettings = TrainSettings()
    test: TestSettings = TestSettings()
    benchmark: BenchmarkSettings = BenchmarkSettings()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, *args, **kwargs):  # type: ignore[override]
        # Layering is done explicitly in load_settings, so only the merged dict counts here.
        return (init_settings,)


def read_toml(path: Path) -> dict[str, Any]:
    """Read a settings TOML file; a missing or malformed file is a :class:`UserError`."""
    if path.is_dir():
        raise UserError(f"config file {path} is a folder; pass a TOML file to --config (e.g. {path / 'actcli.toml'})")
    if not path.is_file():
        raise UserError(f"config file {path} not found; pass an existing TOML file to --config")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} is not valid TOML: {exc}") from None


def read_env() -> dict[str, Any]:
    """The ``ACTCLI_*`` variables as a nested dict (``ACTCLI_TRAIN__EPOCHS`` -> train.epochs)."""
    unknown = [
        key for key in os.environ
        if key.upper().startswith(ENV_PREFIX)
        and key[len(ENV_PREFIX):].split(ENV_DELIMITER)[0].lower() not in Settings.model_fields
    ]
    if unknown:
        sections = ", ".join(f"{ENV_PREFIX}{name.upper()}__..." for name in Settings.model_fields)
        raise UserError(f"unknown environment variable {unknown[0]}; settings variables are {sections}")
    source = EnvSettingsSource(
        Settings, env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, case_sensitive=False
    )
    try:
        return source()
    except Exception as exc:  # pydantic-settings raises SettingsError for bad JSON values
        raise UserError(f"bad ACTCLI_* environment variable: {exc}") from None


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"epochs": 3}}`` -> ``{"train.epochs": 3}``."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`flatten`."""
    tree: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = tree
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def load_settings(
    config_file: Path | None = None,
    cli: Mapping[str, Any] | None = None,
) -> tuple[Settings, dict[str, str]]:
    """Merge defaults < TOML < environment < CLI and validate once.

    Args:
        config_file: optional TOML file with the same sections as :class:`Settings`.
        cli: flat ``{"section.field": value}`` overrides from command-line options; ``None``
            values mean "option not given" and are ignored.

    Returns:
        The settings and, for every flat key, where its value came from: ``default``,
        ``file:<path>``, ``env:<VARIABLE>`` or ``cli``.
    """
    layers: list[tuple[str, dict[str, Any]]] = []
    if config_file is not None:
        layers.append((f"file:{config_file}", flatten(read_toml(config_file))))
    layers.append(("env", flatten(read_env())))
    layers.append(("cli", {k: v for k, v in (cli or {}).items() if v is not None}))

    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, layer in layers:
        for key, value in layer.items():
            merged[key] = value
            sources[key] = (
                f"env:{ENV_PREFIX}{key.replace('.', ENV_DELIMITER).upper()}" if name == "env" else name
            )
    try:
        settings = Settings(**unflatten(merged))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        where = sources.get(key, "settings")
        raise UserError(f"invalid setting {key} (from {where}): {first['msg']}") from None
    for key in flatten(settings.model_dump()):
        sources.setdefault(key, "default")
    return settings, sources


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def to_toml(tree: Mapping[str, Any]) -> str:
    """Settings sections as TOML that ``--config`` reads back (unset ``None`` values omitted).

    Hand-written because the standard library reads TOML but cannot write it, and the
    settings are one level of tables holding scalars and short lists.
    """
    lines: list[str] = []
    for section, values in tree.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None)
        lines.append("")
    return "\n".join(lines)
