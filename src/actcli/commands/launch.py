"""``--nproc N``: run ``actcli train`` / ``actcli test`` as N processes on this machine with torchrun.

The settings the user chose (from the command line, a config file or the environment; not
the defaults) are written to a temporary TOML file that every process reads with ``--config``,
so each rank resolves exactly the same settings, and defaults keep their usual meaning (e.g.
``test`` still takes the dataset from the checkpoint).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from actcli import console as ui
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
        code = subprocess.run(torchrun_command(command, config, nproc, args), check=False).returncode
    finally:
        config.unlink(missing_ok=True)
    if code != 0:
        raise UserError(f"`actcli {command}` on {nproc} processes failed (exit status {code}); the failing "
                        "process's error is printed above")
