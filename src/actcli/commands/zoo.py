"""``actcli models``: every zoo model with its family, size, counted cost, clip spec, input convention
and published weights."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from actcli import console as ui
from actcli.models.families import FAMILIES, family_module
from actcli.models.flops import model_cost
from actcli.models.zoo import MODELS


def model_rows() -> list[dict[str, Any]]:
    """One dict per zoo model, in zoo order (families in :data:`FAMILIES` order).

    ``params`` counts the network with a 400-way classifier; ``gflops`` is FLOPs / 1e9 for one
    clip at the native clip spec, as counted by :func:`actcli.models.flops.model_cost` (a
    multiply-add is 2 FLOPs); ``weights`` names the published weights ``--weights kinetics``
    loads and ``cached`` says whether they are in their cache here (``cache_path``).
    """
    rows = []
    for entry in MODELS.values():
        cost = model_cost(entry)
        cache = family_module(entry).weights_cache(entry)
        rows.append({
            "name": entry.name,
            "family": entry.family,
            "params": cost.params,
            "params_m": round(cost.params_m, 2),
            "gflops": round(cost.gflops, 2),
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


def list_models(as_json: bool) -> None:
    """Print every zoo model as a table, or as a JSON list of :func:`model_rows` on stdout."""
    rows = model_rows()
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
