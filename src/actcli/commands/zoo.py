"""``actcli models``: every zoo model with its size, counted cost, clip spec and weights."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from actcli import console as ui
from actcli.models.flops import model_cost
from actcli.models.zoo import MODELS


def model_rows() -> list[dict[str, Any]]:
    """One dict per zoo model, in zoo order.

    ``params`` counts the network with its Kinetics-400 classifier; ``gflops`` is
    FLOPs / 1e9 for one clip at the native clip spec, as counted by
    :func:`actcli.models.flops.model_cost` (a multiply-add is 2 FLOPs); ``cached`` says
    whether the Kinetics-400 checkpoint is already in the torch hub cache.
    """
    rows = []
    for entry in MODELS.values():
        cost = model_cost(entry)
        cache = entry.weights_cache
        rows.append({
            "name": entry.name,
            "params": cost.params,
            "params_m": round(cost.params_m, 2),
            "gflops": round(cost.gflops, 2),
            "clip": str(entry.clip),
            **asdict(entry.clip),
            "kinetics_url": entry.weights_url,
            "cached": cache is not None and cache.is_file(),
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
        ["model", "clip", "params (M)", "GFLOPs", "Kinetics-400", "cached"],
        [
            [r["name"], r["clip"], f"{r['params_m']:.2f}", f"{r['gflops']:.2f}",
             "yes" if r["kinetics_url"] else "-", ("yes" if r["cached"] else "no") if r["kinetics_url"] else "-"]
            for r in rows
        ],
    )
    for column in table.columns[2:4]:
        column.justify = "right"
    ui.console.print(table)
    ui.console.print(
        "clip: native frames x stride @ crop (what the Kinetics-400 weights were trained with); GFLOPs: per clip "
        "at that spec, counted (a multiply-add is 2 FLOPs, so papers' GFLOPs are half); cached: Kinetics-400 "
        f"weights in {Path(torch.hub.get_dir()) / 'checkpoints'} (downloaded on first use of --weights kinetics)",
        soft_wrap=True, highlight=False, markup=False,
    )
