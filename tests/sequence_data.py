"""Shared test data for anticipation: tiny synthetic sequences (real MP4 videos), generated once per session.

:func:`tiny_sequences` writes into the session's base temporary folder and is idempotent (the generator
keeps videos already there), so every test module that asks gets the same files without generating twice.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from actcli.data.features import lmdb_key
from actcli.data.registry import remember_root
from actcli.data.synthetic_sequences import SequenceSpec, generate

TINY_SEQUENCES = SequenceSpec(videos=9, groups=3, actions=6, width=32, height=32, seed=3)


def tiny_sequences(tmp_path_factory) -> Path:
    """The read-only tiny synthetic sequences (9 videos of 6 actions, 32x32, 3 scene groups)."""
    root = tmp_path_factory.getbasetemp() / "tiny-sequences"
    if not (root / "synthetic-sequences.json").is_file():
        generate(root, TINY_SEQUENCES, workers=1)
    return root


def copy_to(root: Path, workdir: Path) -> Path:
    """A private copy under ``workdir/data``, remembered as the dataset's root."""
    target = workdir / "data" / "synthetic-sequences"
    shutil.copytree(root, target)
    remember_root(workdir / "outputs", "synthetic-sequences", target)
    return target


def write_lmdb(path: Path, videos: dict[str, float], dim: int, fps: float = 30.0, seed: int = 0) -> Path:
    """An LMDB in RULSTM's layout with random ``float32 [dim]`` features for frames 1 .. ``seconds x fps + 1``."""
    import lmdb

    rng = np.random.default_rng(seed)
    env = lmdb.open(str(path), map_size=1 << 28)
    with env.begin(write=True) as txn:
        for video, seconds in videos.items():
            for frame in range(1, int(seconds * fps) + 2):
                txn.put(lmdb_key(video, frame), rng.random(dim, dtype=np.float32).tobytes())
    env.close()
    return path
