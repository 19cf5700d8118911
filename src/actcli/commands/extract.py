"""``actcli extract``: per-time features of a zoo backbone for a whole dataset (see :mod:`actcli.data.extract`).

The same code extracts into the feature cache when a sequence model is trained with ``--backbone M
--backbone-weights W`` (:func:`cached_store`): ``<outputs>/cache/sequence-features/<model key>/``,
keyed like the frozen-backbone feature cache (:func:`actcli.data.cache.model_key`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch
from torchvision.io import ImageReadMode, decode_jpeg, read_file

from actcli import console as ui
from actcli.data.cache import file_digest, model_key
from actcli.data.datasets import feature_key
from actcli.data.extract import Extractor, FeatureWriter, VideoSource, extract_all, file_source
from actcli.data.video import ClipSpec, DecodeError
from actcli.errors import UserError
from actcli.models.checkpoint import (
    clip_of,
    convention_of,
    is_actcli_checkpoint,
    load_file,
    load_initial_weights,
    weights_path,
)
from actcli.models.convention import Convention
from actcli.models.zoo import build_model, get_entry
from actcli.pipeline import DataSource, data_source, resolve_device
from actcli.settings import Settings, parse_model_config


def load_backbone(name: str, weights: str | None, settings: Settings) -> tuple[torch.nn.Module, ClipSpec, Convention,
                                                                               str]:
    """Zoo model ``name``'s backbone filled from ``weights`` (an actcli checkpoint of that model, ``kinetics``,
    ``hf:<repo>`` or the publisher's file): ``(backbone, clip spec, convention, weights id)``.

    An actcli checkpoint gives its own clip spec and convention (``--frames/--stride/--crop`` override the
    spec); a checkpoint of another model is one error line.
    """
    entry = get_entry(name)
    if not weights:
        raise UserError("extract needs --weights: an actcli checkpoint (e.g. outputs/runs/<run>/checkpoints/best.pt), "
                        "kinetics, hf:<repo> or the publisher's file (a random backbone's features mean nothing)")
    path = weights_path(name, weights)
    spec, convention, classes, config = entry.clip, entry.convention, ["a", "b"], parse_model_config(
        settings.model.config)
    if path.is_file():
        data = load_file(path)
        if is_actcli_checkpoint(data):
            if data.get("kind") == "sequence" or data.get("model") != name:
                raise UserError(f"{path} holds a {data.get('model')} model, not {name}; pass --model "
                                f"{data.get('model')} (a backbone checkpoint of the model to extract with)")
            spec, convention, classes = clip_of(data), convention_of(data), list(data["classes"])
            config = data.get("model_config") or config
    d = settings.data
    spec = ClipSpec(d.frames or spec.frames, d.stride or spec.stride, d.crop or spec.crop)
    model = build_model(name, spec, len(classes), config=config)
    load_initial_weights(model, name, weights, classes, config)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return model.backbone, spec, convention, ":".join(file_digest(p) for p in files)


def _ek100_source(root: Path, video_id: str, decoder: str) -> VideoSource:
    from actcli.ek100.annotations import frames_fps
    from actcli.ek100.media import frame_path, layout, video_path

    if layout(root, video_id) == "videos":
        return file_source(video_id, video_path(root, video_id), decoder)
    folder = frame_path(root, video_id, 0).parent
    count = len(list(folder.glob("frame_*.jpg")))

    def read(indices) -> torch.Tensor:
        images = []
        for index in indices:
            path = frame_path(root, video_id, index)
            if not path.is_file():
                raise DecodeError(f"frame {path} is missing")
            images.append(decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB))
        return torch.stack(images)

    return VideoSource(video_id, folder, read, count, float(frames_fps(video_id)))


def dataset_sources(source: DataSource, warn=ui.warn) -> list[VideoSource]:
    """Every video of the annotated dataset, as :class:`VideoSource` (unreadable ones warned about and left out)."""
    folder = source.annotations_dir
    sources, bad = [], []
    if source.dataset == "ek100":
        from actcli.ek100.dataset import load_split

        ids = sorted({v for s in ("train", "val", "test", "challenge") if (folder / f"{s}.csv").is_file()
                      for v in load_split(folder, s)["video_id"]})
        for video_id in ids:
            try:
                sources.append(_ek100_source(source.root, video_id, source.decoder))
            except DecodeError as exc:
                bad.append(f"{video_id}: {exc}")
    else:
        from actcli.data.annotate import load_table

        listing = folder / "annotations.csv"
        tables = [load_table(listing)] if listing.is_file() else [
            load_table(folder / f"{s}.csv", allow_empty=True) for s in ("train", "val", "test")]
        paths = sorted(set(pd.concat(tables)["path"].astype(str)))
        for rel in paths:
            try:
                sources.append(file_source(feature_key(rel), source.root / rel, source.decoder))
            except DecodeError as exc:
                bad.append(f"{rel}: {exc}")
    for line in bad[:5]:
        warn(f"unreadable video left out: {line}")
    if len(bad) > 5:
        warn(f"... and {len(bad) - 5} more unreadable video(s)")
    if not sources:
        raise UserError(f"no readable video in the annotations of {folder}; check --root")
    return sources


def _meta(name: str, weights: str, weights_id: str, spec: ClipSpec, convention: Convention, fps: float,
          tokens: bool, layout: str, decoder: str, config: str) -> dict:
    view = f"causal@{fps:g}fps" + ("+tokens" if tokens else "")
    label = name + (f"[{config}]" if config else "")
    return {"format": "actcli-features/1", "layout": layout, "fps": fps, "tokens": tokens, "model": name,
            "weights": weights, "cache_key": model_key(label, weights_id, spec, view, decoder), "clip": asdict(spec),
            "convention": convention.to_dict()}


def run_extraction(settings: Settings, source: DataSource, name: str, weights: str | None, out: Path | None,
                   fps: float, layout: str, tokens: bool, batch_size: int) -> tuple[Path, dict]:
    """Extract the dataset's features into ``out`` (default: the feature cache); returns the store and its meta."""
    if fps <= 0:
        raise UserError(f"--fps must be positive, not {fps:g}")
    backbone, spec, convention, weights_id = load_backbone(name, weights, settings)
    device = resolve_device(settings.train.device)
    meta = _meta(name, str(weights), weights_id, spec, convention, fps, tokens, layout, source.decoder,
                 settings.model.config)
    out = out or settings.paths.outputs / "cache" / "sequence-features" / meta["cache_key"]
    extractor = Extractor(backbone, spec, convention, fps, tokens, device, batch_size)
    meta["dim"], meta["tokens"] = extractor.dims()
    meta["tokens"] = meta["tokens"] if tokens else 0
    writer = FeatureWriter(out, layout, meta)
    sources = dataset_sources(source)
    with ui.progress() as bars:
        stats = extract_all(sources, extractor, writer, bars, ui.warn, settings.data.workers)
    return out, {**writer.meta, "stats": stats}


def extract(settings: Settings, out: Path, fps: float, layout: str, tokens: bool, batch_size: int) -> Path:
    """``actcli extract``: write the store and print what was done."""
    source = data_source(settings)
    name = settings.model.name
    out, meta = run_extraction(settings, source, name, settings.model.weights, out, fps, layout, tokens, batch_size)
    stats = meta["stats"]
    shape = f"{meta['tokens']} tokens x {meta['dim']}" if meta["tokens"] else f"{meta['dim']}"
    ui.console.print(f"{stats['extracted']} video(s) extracted, {stats['done_before']} already done, "
                     f"{stats['unreadable']} unreadable: {name} features [{shape}] at {fps:g} rows/s, clip "
                     f"{ClipSpec(**meta['clip'])} ending at each row's time, in {out} ({layout})")
    return out


def cached_store(settings: Settings, source: DataSource, fps: float, tokens: bool = False) -> Path:
    """``--backbone M --backbone-weights W``: the features of the dataset in the feature cache, extracted
    where missing (the same store for every sequence model trained on them)."""
    model = settings.model
    out, meta = run_extraction(settings.model_copy(update={"model": model.model_copy(update={"config": ""})}),
                               source, model.backbone, model.backbone_weights, None, fps, "npy", tokens, 16)
    stats = meta["stats"]
    ui.console.print(f"backbone features ({model.backbone}): {stats['done_before']} cached, {stats['extracted']} "
                     f"extracted ({out})")
    return out

