"""The torchvision family (``torchvision.models.video``): to be filled in."""

from __future__ import annotations

from actcli.models.families import ModelEntry

ENTRIES: tuple[ModelEntry, ...] = ()
