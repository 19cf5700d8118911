"""``actcli models``: every zoo model with its family, size, counted cost, clip spec, input convention
and published weights."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from actcli import console as ui
from actcli.errors import UserError
from actcli.fileio import write_json
from actcli.models.families import FAMILIES, family_module
from actcli.models.flops import model_cost
from actcli.models.zoo import MODELS

COST_CACHE = "cache/model_costs.json"


def _cost_key(entry) -> str:
    """What a model's counted cost depends on: its name, family, native clip, and the library versions."""
    import torch
    import torchvision

    import actcli

    return f"{entry.name}|{entry.family}|{entry.clip}|actcli {actcli.__version__}|torch {torch.__version__}|" \
           f"torchvision {torchvision.__version__}"


def _costs(entries: list, outputs: Path | None) -> dict[str, tuple[int, float]]:
    """``name -> (params, gflops)``, counted with :func:`model_cost` (meta device) and kept in
    ``<outputs>/cache/model_costs.json``: building the large transformers takes seconds each."""
    path = outputs / COST_CACHE if outputs is not None else None
    known: dict[str, list] = {}
    if path is not None and path.is_file():
        try:
            known = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
    if not isinstance(known, dict):
        known = {}
    out, changed = {}, False
    for entry in entries:
        key = _cost_key(entry)
        if key not in known:
            cost = model_cost(entry)
            known[key], changed = [cost.params, cost.gflops], True
        out[entry.name] = (int(known[key][0]), float(known[key][1]))
    if path is not None and changed:
        with contextlib.suppress(UserError):  # a cache only: an unwritable outputs folder costs a recount
            write_json(path, known)
    return out


def model_rows(family: str | None = None, outputs: Path | None = None) -> list[dict[str, Any]]:
    """One dict per zoo model (of ``family``, or all), in zoo order (families in :data:`FAMILIES` order).

    ``params`` counts the network with a 400-way classifier; ``gflops`` is FLOPs / 1e9 for one
    clip at the native clip spec, as counted by :func:`actcli.models.flops.model_cost` (a
    multiply-add is 2 FLOPs); ``weights`` names the published weights ``--weights kinetics``
    loads and ``cached`` says whether they are in their cache here (``cache_path``).
    """
    if family is not None and family not in FAMILIES:
        raise UserError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    entries = [e for e in MODELS.values() if family is None or e.family == family]
    costs = _costs(entries, outputs)
    rows = []
    for entry in entries:
        params, gflops = costs[entry.name]
        cache = family_module(entry).weights_cache(entry)
        rows.append({
            "name": entry.name,
            "family": entry.family,
            "params": params,
            "params_m": round(params / 1e6, 2),
            "gflops": round(gflops, 2),
            "clip": str(entry.clip),
            **asdict(entry.clip),
            "normalisation": entry.convention.describe(),
            "mean": list(entry.convention.mean),
            "std": list(entry.convention.std),
            "resize": entry.convention.resize,
            "layout": entry.convention.layout,
            "weights": entry.published,
            "kinetics_url": entry.weights_url,
            "accuracy": entry.accuracy,
            "cached": cache is not None and cache.exists(),
            "cache_path": str(cache) if cache is not None else None,
        })
    return rows


def list_models(as_json: bool, family: str | None = None, outputs: Path | None = None) -> None:
    """Print the zoo's models (of ``family``, or all) as a table, or as a JSON list of :func:`model_rows`."""
    rows = model_rows(family, outputs)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = ui.table(
        "zoo models",
        ["model", "family", "clip", "params (M)", "GFLOPs", "normalisation", "published weights", "cached"],
        [
            [r["name"], r["family"], r["clip"], f"{r['params_m']:.2f}", f"{r['gflops']:.2f}", r["normalisation"],
             r["weights"] or "-", ("yes" if r["cached"] else "no") if r["weights"] else "-"]
            for r in rows
        ],
    )
    for column in table.columns[3:5]:
        column.justify = "right"
    ui.console.print(table)
    ui.console.print(
        f"families: {', '.join(FAMILIES)}. clip: native frames x stride @ crop (what the published weights were "
        "trained with; override with --frames/--stride/--crop). GFLOPs: per clip at that spec, counted (a "
        "multiply-add is 2 FLOPs, so papers' GFLOPs are half). normalisation: what actcli applies for the model "
        "(stored in checkpoints and exports). published weights: what --weights kinetics loads (downloaded once; "
        "torch hub cache or Hugging Face cache); cached: already here. `actcli models --json` adds the published "
        "accuracy and cache paths.",
        soft_wrap=True, highlight=False, markup=False,
    )
