"""From validated settings to the pieces a command needs: data source, clip spec, device.

Every command resolves its inputs here the same way, so ``train``, ``test`` and
``benchmark`` agree on where videos are, which classes exist and how clips are cut.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from actcli.console import warn
from actcli.data.annotate import find_class_root, load_classes, load_table, with_label_ids
from actcli.data.annotation_set import check_set
from actcli.data.datasets import VideoClipDataset, check_videos_exist
from actcli.data.features import FeatureStore
from actcli.data.registry import dataset_info, resolve_root
from actcli.data.transforms import eval_transform, motion_transform, train_transform
from actcli.data.video import ClipSpec, resolve_decoder
from actcli.errors import UserError
from actcli.models.convention import PYTORCHVIDEO, Convention
from actcli.models.zoo import check_clip, get_entry
from actcli.settings import Settings, parse_model_config


@dataclass(frozen=True)
class DataSource:
    """A dataset on disk: its videos' root, its split CSVs, its classes (id order) and the
    decoder that reads its videos (``pyav`` or ``torchcodec``, resolved from ``data.decoder``)."""

    dataset: str
    root: Path
    annotations_dir: Path
    classes: list[str]
    decoder: str = "pyav"


def annotations_dir(settings: Settings) -> Path:
    """``data.annotations_dir`` if set, else ``<paths.annotations>/<dataset>``."""
    return settings.data.annotations_dir or settings.paths.annotations / settings.data.dataset


def data_source(settings: Settings) -> DataSource:
    """Resolve root (given or remembered by ``download``) and read ``labels.csv``."""
    name = dataset_info(settings.data.dataset).name
    if name == "ek100":  # a media root of participants; features alone need none (missing media: one error later)
        try:
            root = resolve_root(settings.paths.outputs, name, settings.data.root)
        except UserError:
            root = Path(".")
    else:
        root = resolve_root(settings.paths.outputs, name, settings.data.root)
        if dataset_info(name).class_folders:
            root = find_class_root(root)
    folder = annotations_dir(settings)
    for name in check_set(folder):
        warn(f"{folder / name} was edited since `actcli annotate` wrote it; reading it as it is")
    classes = load_classes(folder / "labels.csv")
    return DataSource(name, root, folder, classes, resolve_decoder(settings.data.decoder))


def clip_spec(settings: Settings, model_name: str | None = None) -> ClipSpec:
    """The model's native clip spec with any ``data.frames/stride/crop`` override applied; a clip the
    model cannot take is one error line saying what it can take."""
    name = model_name or settings.model.name
    native = get_entry(name).clip
    data = settings.data
    spec = ClipSpec(data.frames or native.frames, data.stride or native.stride, data.crop or native.crop)
    check_clip(name, spec, model_config(settings), settings.train.batch_size)
    return spec


DROP_PATH = "drop_path"
"""The reserved ``config`` key of ``model.drop_path``: each family maps it to its networks' own
stochastic-depth setting (Hugging Face ``drop_path_rate``, torchvision ``stochastic_depth_prob``,
pytorchvideo MViT ``droppath_rate_block``) or refuses it for networks without stochastic depth."""


def model_config(settings: Settings) -> dict:
    """``model.config`` (``--model-config``) as typed overrides of the architecture, plus
    ``drop_path`` (:data:`DROP_PATH`) when ``model.drop_path`` is set."""
    config = parse_model_config(settings.model.config)
    if settings.model.drop_path is not None:
        config[DROP_PATH] = settings.model.drop_path
    return config


def split_table(source: DataSource, split: str) -> pd.DataFrame:
    """Rows of ``<split>.csv`` with label ids from ``labels.csv``; every video must exist. Only
    ``val.csv`` may be empty (``--split 85 0 15``, or a fold of ``annotate --folds``)."""
    path = source.annotations_dir / f"{split}.csv"
    table = load_table(path, allow_empty=split == "val")
    unknown = sorted(set(table["label"]) - set(source.classes))
    if unknown:
        raise UserError(
            f"{path} has label {unknown[0]!r} missing from labels.csv; re-run `actcli annotate`"
        )
    table = with_label_ids(table, source.classes)
    check_videos_exist(source.root, table, path)
    return table


def hflip_enabled(settings: Settings) -> bool:
    """``data.hflip`` if set, else whether the dataset's labels survive a mirror image."""
    if settings.data.hflip is not None:
        return settings.data.hflip
    return dataset_info(settings.data.dataset).flip_safe


@dataclass(frozen=True)
class Inputs:
    """Which modalities a model reads and how each is made (``data.*`` settings of the same names)."""

    modalities: tuple[str, ...] = ("rgb",)
    no_audio: str = "zeros"
    motion: str = "difference"
    features: Path | None = None
    features_fps: float = 30.0
    convention: Convention = PYTORCHVIDEO  # how RGB clips are resized and normalised for the model

    def feature_store(self) -> FeatureStore | None:
        """The store of the ``features`` modality (None without it); a missing --features is one error line."""
        if "features" not in self.modalities:
            return None
        if self.features is None:
            raise UserError("--modalities features needs --features PATH (a folder of .npy files or an LMDB)")
        return FeatureStore(self.features, self.features_fps)


def inputs_of(settings: Settings, modalities: list[str] | tuple[str, ...] | None = None,
              convention: Convention | None = None) -> Inputs:
    """:class:`Inputs` from ``data.*``; ``modalities`` (e.g. a checkpoint's) overrides ``data.modalities``,
    ``convention`` (a checkpoint's) the convention of ``model.name``'s zoo entry."""
    data = settings.data
    chosen = tuple(modalities) if modalities is not None else tuple(data.modalities.split(","))
    convention = convention or get_entry(settings.model.name).convention
    return Inputs(chosen, data.no_audio, data.motion, data.features, data.features_fps, convention)


def clip_dataset(
    source: DataSource, split: str, spec: ClipSpec, training: bool, hflip: bool = False,
    observe: float | tuple[float, float] | None = None, inputs: Inputs = Inputs(), auto_augment: str = "none",
) -> VideoClipDataset:
    """A dataset of ``split``: random clips and augmentation when ``training`` (plus ``auto_augment``,
    see :func:`~actcli.data.transforms.train_transform`), else centred; ``observe`` limits each video
    to its first part (early prediction)."""
    convention = inputs.convention
    transform = (train_transform(spec.crop, hflip, convention, auto_augment) if training
                 else eval_transform(spec.crop, convention))
    return VideoClipDataset(source.root, split_table(source, split), spec, transform, training, source.decoder,
                            observe, inputs.modalities, inputs.no_audio, inputs.motion, inputs.feature_store(),
                            convention)


def ek100_dataset(settings: Settings, source: DataSource, split: str, spec: ClipSpec, training: bool,
                  inputs: Inputs | None = None):
    """An EK100 split as :class:`actcli.ek100.dataset.Ek100Dataset`; missing videos: error or skipped.

    ``inputs`` defaults to ``data.*``; ``audio`` is not read from EK100 here. Features alone need no media.
    """
    from actcli.ek100.dataset import Ek100Dataset, check_media, load_split, video_rates

    inputs = inputs or inputs_of(settings)
    if "audio" in inputs.modalities:
        raise UserError("EK100 reads rgb, motion (flow_frames) and features; drop audio from --modalities")
    table = load_split(source.annotations_dir, split)
    if "observable" in table.columns:  # anticipation: segments whose window lies before the video
        table = table[table["observable"].astype(bool)]
    gone: list[str] = []
    if "rgb" in inputs.modalities or "motion" in inputs.modalities:
        table, gone = check_media(source.root, table, settings.data.skip_missing)
    if table.empty:
        raise UserError(f"no {split} segment has media under {source.root}; check --root")
    convention = inputs.convention
    transform = (train_transform(spec.crop, hflip_enabled(settings), convention, settings.data.auto_augment)
                 if training else eval_transform(spec.crop, convention))
    return Ek100Dataset(source.root, table, spec.frames, transform, training, video_rates(settings.paths.outputs),
                        source.decoder, gone, inputs.modalities, inputs.feature_store(),
                        motion_transform(spec.crop, training))


def class_difference(trained: list[str], dataset: list[str]) -> str:
    """What differs between two class lists, in words: counts, names only on one side, or the first
    position where the order differs."""
    trained, dataset = list(trained), list(dataset)
    only_trained = [c for c in trained if c not in set(dataset)]
    only_dataset = [c for c in dataset if c not in set(trained)]
    parts = [f"{len(trained)} classes vs the dataset's {len(dataset)}"]
    if only_trained:
        parts.append(f"only in the weights: {', '.join(only_trained[:3])}" + (", ..." if len(only_trained) > 3 else ""))
    if only_dataset:
        parts.append(f"only in the dataset: {', '.join(only_dataset[:3])}" + (", ..." if len(only_dataset) > 3 else ""))
    if not only_trained and not only_dataset:
        i = next(i for i, (a, b) in enumerate(zip(trained, dataset, strict=True)) if a != b)
        parts.append(f"the same names in another order (class {i} is {trained[i]!r} in the weights, {dataset[i]!r} "
                     "in the dataset)")
    return "; ".join(parts)


def check_classes(weights: Path, trained: list[str], dataset: list[str]) -> None:
    """Weights must predict exactly the dataset's classes, in the same order; else one line saying what differs."""
    if list(trained) != list(dataset):
        raise UserError(f"{weights} does not predict this dataset's classes ({class_difference(trained, dataset)}); "
                        "pass weights trained on this dataset or the matching --dataset / --annotations")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an unavailable choice is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but no CUDA GPU is visible; use --device cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps requested but MPS is not available; use --device cpu")
    return torch.device(name)


def channels_last_3d(model: torch.nn.Module) -> torch.nn.Module:
    """Put every ``Conv3d`` weight in channels-last-3d memory (other layers are left as they are)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Conv3d):
            module.to(memory_format=torch.channels_last_3d)
    return model


def to_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move ``model``; on CPU also use channels-last-3d memory, ~2.3x faster for X3D there."""
    model = model.to(device)
    if device.type == "cpu":
        model = channels_last_3d(model)
    return model


def clips_to_device(clips: torch.Tensor | dict[str, torch.Tensor], device: torch.device,
                    channels_last: bool = True):
    """``float [B, C, T, H, W]`` on ``device`` in the memory format :func:`to_device` chose
    (other shapes, e.g. cached features ``[B, D]``, are only moved); a dict of modalities
    is moved entry by entry. ``channels_last=False``: contiguous (a model training contiguous,
    :mod:`actcli.engine.memory_format`)."""
    if isinstance(clips, dict):
        return {name: clips_to_device(value, device, channels_last) for name, value in clips.items()}
    clips = clips.to(device, non_blocking=True)
    if device.type == "cpu" and clips.ndim == 5 and channels_last:
        clips = clips.contiguous(memory_format=torch.channels_last_3d)
    return clips
