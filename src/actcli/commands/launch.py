"""``--nproc N``: run ``actcli train`` / ``actcli test`` as N processes on this machine with torchrun.

The settings the user chose (from the command line, a config file or the environment; not
the defaults) are written to a temporary TOML file that every process reads with ``--config``,
so each rank resolves exactly the same settings, and defaults keep their usual meaning (e.g.
``test`` still takes the dataset from the checkpoint).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from actcli import console as ui
from actcli.engine.interrupt import EXIT_CODES, REPEAT_S, STOP_FILE_ENV
from actcli.errors import UserError
from actcli.settings import Settings, to_toml


def chosen_settings(settings: Settings, sources: dict[str, str]) -> dict[str, dict]:
    """The non-default settings as sections of values (``sources`` says where each came from)."""
    tree: dict[str, dict] = {}
    dumped = settings.model_dump(mode="json")
    for key, origin in sources.items():
        if origin == "default" or "." not in key:
            continue
        section, name = key.split(".", 1)
        if section in dumped and name in dumped[section]:
            tree.setdefault(section, {})[name] = dumped[section][name]
    return tree


def torchrun_command(command: str, config: Path, nproc: int, args: list[str]) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc-per-node N -m actcli COMMAND --config F ARGS``."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "actcli", command, "--config", str(config), *args]


def _run_with_stop_file(command: list[str], stop_file: Path) -> tuple[int, str | None]:
    """Run ``command`` (torchrun) in its own session and wait. The first SIGINT, SIGTERM or SIGHUP
    to this process writes its name to ``stop_file``, which the workers check after every step
    (:mod:`actcli.engine.interrupt`): they save and exit on their own. A second signal, 2 s or
    more later, terminates torchrun. Returns the exit status and the first signal's name, if any."""
    process = subprocess.Popen(command, env={**os.environ, STOP_FILE_ENV: str(stop_file)}, start_new_session=True)
    received: list[tuple[str, float]] = []

    def on_signal(number: int, _frame: object) -> None:
        if not received:
            received.append((signal.Signals(number).name, time.monotonic()))
            stop_file.write_text(received[0][0])
            ui.errors.print(f"{received[0][0]}: the processes stop after their current step and save; "
                            "send it again to stop at once")
        elif time.monotonic() - received[0][1] >= REPEAT_S:
            process.terminate()

    numbers = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {number: signal.signal(number, on_signal) for number in numbers}
    try:
        return process.wait(), (received[0][0] if received else None)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        stop_file.unlink(missing_ok=True)


def launch(command: str, settings: Settings, sources: dict[str, str], nproc: int, args: list[str]) -> None:
    """Run ``actcli COMMAND`` in ``nproc`` processes (gloo on CPU, NCCL with GPUs) and wait for them.

    Raises UserError if any process fails (torchrun then stops the others).
    """
    fd, name = tempfile.mkstemp(prefix="actcli-nproc-", suffix=".toml")
    config = Path(name)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(to_toml(chosen_settings(settings, sources)))
        ui.console.print(f"launching {nproc} processes with torchrun")
        code, stopped_by = _run_with_stop_file(torchrun_command(command, config, nproc, args),
                                               config.with_suffix(".stop"))
    finally:
        config.unlink(missing_ok=True)
    if stopped_by is not None:
        raise UserError(f"stopped by {stopped_by}; rank 0's line above says what was saved and how to resume",
                        EXIT_CODES.get(stopped_by, 1))
    if code != 0:
        raise UserError(f"`actcli {command}` on {nproc} processes failed (exit status {code}); the failing "
                        "process's error is printed above")
