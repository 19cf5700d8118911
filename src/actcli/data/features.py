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

A store written by ``actcli extract`` also holds ``features.json`` (:mod:`actcli.data.extract`):
its rate, ``dim``, ``tokens`` and backbone, read by :attr:`FeatureStore.meta`.
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
META_FILE = "features.json"
_ENVS: dict[tuple[str, int], object] = {}  # one LMDB environment per path and process (py-lmdb allows one)


def _environment(path: Path):
    """The read-only LMDB environment of ``path`` for this process, opened once (a forked DataLoader worker
    opens its own: an inherited handle must not be used)."""
    import os

    import lmdb

    key = (str(path.resolve()), os.getpid())
    if key not in _ENVS:
        for inherited in [k for k in _ENVS if k[0] == key[0]]:  # the parent's, in a forked worker: unmapped here only
            _ENVS.pop(inherited).close()
        _ENVS[key] = lmdb.open(str(path), readonly=True, lock=False, readahead=False)
    return _ENVS[key]


def forget_environment(path: Path) -> None:
    """Close this process's read-only environment of ``path`` (before writing to the LMDB, so later reads
    open it afresh and see the new rows)."""
    import os

    env = _ENVS.pop((str(path.resolve()), os.getpid()), None)
    if env is not None:
        env.close()


def feature_meta(path: Path) -> dict:
    """``features.json`` of a store written by ``actcli extract`` ({} for other stores, e.g. RULSTM's LMDBs)."""
    import json

    meta = path / META_FILE
    if not meta.is_file():
        return {}
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


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
        self.meta = feature_meta(path)

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
            # One environment per process (py-lmdb refuses a second open of a path in one process, and a
            # handle inherited by a forked DataLoader worker must not be used): see _environment.
            with _environment(self.path).begin() as txn:
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
