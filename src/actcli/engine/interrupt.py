"""Stopping a training run cleanly: Ctrl-C (SIGINT) or SIGTERM finish the current step, then the
trainer saves ``last.pt`` and the report and the command says how to resume.

A second signal, 2 s or more after the first, stops at once (``KeyboardInterrupt``; an echo
within 2 s is ignored, since under torchrun a Ctrl-C reaches each worker twice: from the
terminal and as torchrun's SIGTERM); files already written stay complete
because every write is atomic (:mod:`actcli.fileio`). DataLoader workers ignore SIGINT
(:func:`actcli.data.datasets.seed_worker`), so a Ctrl-C in the terminal, which reaches the whole
process group, cannot kill a worker mid-batch. Under torchrun the decision is collective: a
signal seen by any rank stops every rank after the same step.

``--nproc`` runs torchrun in its own session and asks for a stop through a file
(:data:`STOP_FILE_ENV` names it) instead of a signal: torchrun answers signals by killing its
workers 30 s later, which may be before they have saved.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from actcli.engine.distributed import all_sum

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # the shell's 128 + signal number
REPEAT_S = 2.0  # a second signal sooner than this after the first is the same request
STOP_FILE_ENV = "X_ACTCLI_STOP_FILE"  # set by --nproc (not ACTCLI_*: those are settings); names the stop file


class StopRequest:
    """While active (``with``), SIGINT and SIGTERM are recorded instead of stopping the process."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._first_at = 0.0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            for number in SIGNALS:
                self._previous[number] = signal.signal(number, self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _record(self, number: int, frame: FrameType | None) -> None:
        if self.signal_name is None:
            self.signal_name, self._first_at = signal.Signals(number).name, time.monotonic()
        elif time.monotonic() - self._first_at >= REPEAT_S:
            raise KeyboardInterrupt  # asked again: stop now

    def requested(self) -> bool:
        """Whether this process (or, under torchrun, any process) received a stop signal, or the
        ``--nproc`` launcher asked for a stop through its file."""
        stop_file = os.environ.get(STOP_FILE_ENV)
        if self.signal_name is None and stop_file and Path(stop_file).is_file():
            self.signal_name = Path(stop_file).read_text().strip() or "SIGTERM"
        return all_sum([float(self.signal_name is not None)])[0] > 0
