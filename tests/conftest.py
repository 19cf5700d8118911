"""Shared fixtures: a tiny synthetic dataset made of real video files, and a CLI runner."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from actcli.cli import app
from actcli.data.registry import remember_root
from actcli.data.synthetic import SyntheticSpec, generate

# Small but real: 3 classes x 6 clips (3 groups), 16 frames of 64x48 MPEG-4.
TINY = SyntheticSpec(classes=3, groups=3, clips_per_class=6, frames=16, width=64, height=48, seed=0)
TRAIN_FLAGS = ["--frames", "4", "--stride", "2", "--crop", "32", "--workers", "0", "--batch-size", "3"]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only tiny synthetic dataset; copy it before changing anything."""
    root = tmp_path_factory.mktemp("tiny") / "synthetic"
    generate(root, TINY)
    return root


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder (outputs/, annotations/, data/ land here), no ACTCLI_* env."""
    for key in list(os.environ):
        if key.startswith("ACTCLI_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture()
def dataset_copy(tiny_dataset: Path, workdir: Path) -> Path:
    """A private copy of the tiny dataset under the working folder."""
    root = workdir / "data" / "synthetic"
    shutil.copytree(tiny_dataset, root)
    remember_root(workdir / "outputs", "synthetic", root)
    return root


class Cli:
    """Invoke ``actcli`` in-process and check the outcome."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0):
        result = self.runner.invoke(app, [str(a) for a in args])
        if result.exit_code != code:
            raise AssertionError(
                f"actcli {' '.join(map(str, args))} exited {result.exit_code}, expected {code}\n"
                f"{result.output}\n{result.exception!r}"
            )
        return result

    def fails(self, *args: str) -> str:
        """Run a command that must fail cleanly; return its single error line."""
        result = self(*args, code=1)
        assert "Traceback" not in result.output
        assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.output
        return errors[0]


@pytest.fixture()
def cli() -> Cli:
    return Cli()


@pytest.fixture()
def annotated(cli: Cli, dataset_copy: Path) -> Path:
    """The tiny dataset with annotations/synthetic/ written by `actcli annotate`."""
    cli("annotate", "--dataset", "synthetic")
    return dataset_copy


def no_temp_files(folder: Path) -> bool:
    """True when no atomic-write temporary file was left behind under ``folder``."""
    return not [p for p in folder.rglob(".*.tmp")]


def clean_env() -> dict[str, str]:
    """This process's environment without ACTCLI_* settings (for actcli subprocesses)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ACTCLI_")}


def extend_run(run: Path, epochs: int) -> None:
    """Rewrite a run's last.pt as if it had been started for ``epochs`` epochs (to resume it further)."""
    import torch

    last = run / "checkpoints" / "last.pt"
    checkpoint = torch.load(last, weights_only=True)
    checkpoint["settings"]["train"]["epochs"] = epochs
    torch.save(checkpoint, last)
