"""Run folders: ``<outputs>/runs/<experiment>/<timestamp>/`` and finding the latest one.

A run folder holds ``config.toml``, ``checkpoints/{best,last}.pt``, ``tensorboard/``,
reports and plots. Timestamps sort lexically, so the latest run is the largest name.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from actcli.errors import UserError

BEST = Path("checkpoints") / "best.pt"
LAST = Path("checkpoints") / "last.pt"


def runs_root(outputs: Path) -> Path:
    return outputs / "runs"


def new_run_dir(outputs: Path, experiment: str, now: datetime | None = None) -> Path:
    """Create and return a fresh run folder (a suffix keeps two runs in one second apart)."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = runs_root(outputs) / experiment
    candidate, n = base / stamp, 1
    while candidate.exists():
        n += 1
        candidate = base / f"{stamp}-{n}"
    try:
        candidate.mkdir(parents=True)
    except OSError as exc:
        raise UserError(f"cannot create the run folder {candidate}: {exc.strerror or exc}; set paths.outputs "
                        "(ACTCLI_PATHS__OUTPUTS) to a writable folder") from None
    return candidate


def latest_checkpoint(outputs: Path, experiment: str | None = None) -> Path:
    """``best.pt`` of the most recent finished run (of ``experiment`` if given)."""
    root = runs_root(outputs)
    pattern = f"{experiment}/*/{BEST.as_posix()}" if experiment else f"*/*/{BEST.as_posix()}"
    found = sorted(root.glob(pattern), key=lambda p: (p.parent.parent.name, p.stat().st_mtime))
    if not found:
        which = f"experiment {experiment!r}" if experiment else "any experiment"
        raise UserError(
            f"no trained checkpoint for {which} under {root}; run `actcli train` first "
            "or pass --weights PATH"
        )
    return found[-1]


def run_dir_of(weights: Path) -> Path | None:
    """The run folder a checkpoint belongs to, or None if it is not inside one."""
    if weights.parent.name == "checkpoints" and (weights.parent.parent / "config.toml").is_file():
        return weights.parent.parent
    return None
