"""Model families: each is one small module that builds its networks, strips and replaces their
classifier, loads its publisher's weights and states its input convention.

A family module (``actcli.models.families.<name>``) defines:

* ``ENTRIES``: its :class:`ModelEntry` rows (the zoo is the flat union of every family's);
* ``backbone(entry, spec, config) -> (nn.Module, feature_dim)``: the network without its
  classifier for clips ``float [B, 3, T, H, W]`` of ``spec`` -> pooled features ``[B, D]``;
  ``config`` overrides the architecture (``--model-config``, e.g. a narrower transformer);
* ``check_clip(entry, spec, config)``: a :class:`~actcli.errors.UserError` naming what the model
  can take when it cannot take ``spec``;
* ``resolve(entry, source) -> Path``: the local file or folder ``--weights source`` names:
  ``"kinetics"`` (the published weights of ``entry.weights``, downloaded once and cached; offline:
  one line naming ``--weights PATH``), ``hf:<repo>[@revision]`` (Hugging Face), or a path;
* ``load_weights(entry, backbone, path, config) -> str``: fill ``backbone`` from weights in the
  publisher's own format at ``path`` (the classifier dropped); returns what was loaded;
* ``weights_cache(entry) -> Path | None``: where the published weights are (or would be) cached.

Optional: ``enable_gradient_checkpointing(backbone)`` (``--grad-checkpointing`` uses it instead of
checkpointing each of ``backbone.blocks``); an entry's ``options["recipe"]`` names its training
recipe (:data:`actcli.engine.recipe.RECIPES`) and ``options["drop_path"] = False`` says it has no
stochastic depth. ``config`` may hold the reserved key ``drop_path`` (``--drop-path``), which each
family maps to its architecture's own field.

The rest of actcli sees only :class:`~actcli.models.zoo.ActionModel` and the entry's
:class:`~actcli.models.convention.Convention`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from torch import nn

from actcli.data.video import ClipSpec
from actcli.models.convention import PYTORCHVIDEO, Convention

FAMILIES = ("pytorchvideo", "torchvision", "huggingface")


@dataclass(frozen=True)
class ModelEntry:
    """One zoo model.

    ``family`` names its module; ``clip`` is the spec its published weights were trained with and
    ``convention`` how they were fed; ``weights`` names those weights for users (a URL or a
    Hugging Face repo id; None: none published) and ``accuracy`` their published top-1 with its
    source. ``build`` (pytorchvideo) returns the network with its Kinetics-400 classifier;
    ``options`` holds what the family needs to build it (e.g. a Hugging Face configuration).
    """

    name: str
    build: Callable[[ClipSpec], nn.Module] | None
    clip: ClipSpec
    weights_url: str | None = None
    family: str = "pytorchvideo"
    convention: Convention = PYTORCHVIDEO
    weights: str | None = None
    accuracy: str | None = None
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def published(self) -> str | None:
        """The published weights ``--weights kinetics`` loads (URL or repo id), if any."""
        return self.weights or self.weights_url


def family_module(entry: ModelEntry) -> ModuleType:
    """The module of ``entry.family`` (see the package docstring)."""
    return importlib.import_module(f"actcli.models.families.{entry.family}")


def all_entries() -> list[ModelEntry]:
    """Every family's entries, families in :data:`FAMILIES` order."""
    return [entry for name in FAMILIES for entry in importlib.import_module(f"actcli.models.families.{name}").ENTRIES]
