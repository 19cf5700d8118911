"""The Hugging Face family (``transformers`` video models): to be filled in."""

from __future__ import annotations

from actcli.models.families import ModelEntry

ENTRIES: tuple[ModelEntry, ...] = ()
