"""The features modality: precomputed per-frame features, ``float [T, D]`` per clip.

Two stores, chosen by what ``--features PATH`` is:

* a folder of ``.npy`` files, one ``float [N, D]`` array per video, row ``r`` the features of
  time ``r / fps`` (``<features>/<video path without suffix>.npy`` for folder datasets,
  ``<features>/<video_id>.npy`` for EK100);
* an LMDB environment (a folder holding ``data.mdb``) in RULSTM's layout: key
  ``<video>_frame_<10 digits>.jpg`` (``<video>``: the EK100 video id, or for folder datasets the
  path without suffix, e.g. ``Basketball/v_Basketball_g01_c01``), value the raw ``float32``
  bytes of one frame's features, frame number ``floor(t * fps)`` counted from 1, at RULSTM's
  30 fps. As in RULSTM, a time before the first frame reads frame 1.

Times map to rows with ``floor(t * fps)``, so a time never reads features of a frame that
starts after it (anticipation and early prediction stay honest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from actcli.data.video import DecodeError
from actcli.errors import UserError

DEFAULT_FPS = 30.0  # RULSTM's feature rate on EPIC-KITCHENS


def lmdb_key(video: str, frame: int) -> bytes:
    """RULSTM's key for 1-based ``frame`` of ``video``: ``P01_01_frame_0000000042.jpg``."""
    return f"{video}_frame_{frame:010d}.jpg".encode()


class FeatureStore:
    """Reads ``float [T, D]`` features of a video at given times from ``.npy`` files or an LMDB.

    Args:
        path: the ``.npy`` folder or the LMDB folder (module docstring).
        fps: rows (or LMDB frames) per second.
    """

    def __init__(self, path: Path, fps: float = DEFAULT_FPS) -> None:
        if not path.exists():
            raise UserError(f"features path {path} does not exist; pass --features with the .npy folder or LMDB")
        self.path, self.fps = path, fps
        self.is_lmdb = (path / "data.mdb").is_file()

    def rows(self, times: Sequence[float]) -> list[int]:
        """0-based row (``.npy``) or 1-based frame (LMDB) read for each time in seconds."""
        rows = [max(0, math.floor(t * self.fps)) for t in times]
        return [max(1, r) for r in rows] if self.is_lmdb else rows

    def read(self, video: str, times: Sequence[float]) -> torch.Tensor:
        """Features of ``video`` (a video id, or a relative path without suffix) at ``times``: ``float [T, D]``.

        Raises DecodeError naming the missing file or key.
        """
        rows = self.rows(times)
        if self.is_lmdb:
            import lmdb

            # Opened per read: py-lmdb refuses a second open of a path in one process, and a handle
            # inherited by a forked DataLoader worker counts as one. Opening maps the file lazily (cheap).
            with lmdb.open(str(self.path), readonly=True, lock=False, readahead=False) as env, env.begin() as txn:
                values = []
                for frame in rows:
                    raw = txn.get(lmdb_key(video, frame))
                    if raw is None:
                        raise DecodeError(f"{self.path} has no key {lmdb_key(video, frame).decode()}")
                    values.append(np.frombuffer(raw, dtype=np.float32))
            return torch.from_numpy(np.stack(values))
        file = self.path / f"{video}.npy"
        if not file.is_file():
            raise DecodeError(f"features file {file} is missing")
        try:
            table = np.load(file, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise DecodeError(f"cannot read {file}: {exc}") from None
        if table.ndim != 2 or len(table) == 0:
            raise DecodeError(f"{file} holds shape {table.shape}; expected [frames, features]")
        picked = np.asarray(table[[min(r, len(table) - 1) for r in rows]], dtype=np.float32)
        return torch.from_numpy(picked)

    def dimension(self, video: str) -> int:
        """D, the features per frame, from the first row of ``video``."""
        return int(self.read(video, [0.0]).shape[1])
