"""Settings layering: defaults < TOML file < ACTCLI_* environment < command line."""

from __future__ import annotations

import pytest

from actcli.errors import UserError
from actcli.settings import load_settings, to_toml


def test_layers_and_sources(workdir, monkeypatch):
    config = workdir / "c.toml"
    config.write_text("[train]\nepochs = 3\nlr = 0.5\nbatch_size = 4\n[data]\nworkers = 0\n")
    monkeypatch.setenv("ACTCLI_TRAIN__LR", "0.25")
    monkeypatch.setenv("ACTCLI_TRAIN__BATCH_SIZE", "5")
    settings, sources = load_settings(config, {"train.batch_size": 6, "train.seed": None})
    assert settings.train.epochs == 3 and sources["train.epochs"] == f"file:{config}"
    assert settings.train.lr == 0.25 and sources["train.lr"] == "env:ACTCLI_TRAIN__LR"
    assert settings.train.batch_size == 6 and sources["train.batch_size"] == "cli"
    assert settings.train.seed == 0 and sources["train.seed"] == "default"
    assert settings.data.workers == 0


def test_resolved_settings_round_trip_through_toml(workdir):
    settings, _ = load_settings(None, {"train.epochs": 7, "data.crop": 64})
    path = workdir / "config.toml"
    path.write_text(to_toml(settings.model_dump(mode="json")))
    again, _ = load_settings(path)
    assert again == settings


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[train]\nepochs = 0\n", "train.epochs"),
        ("[train]\nepoch = 3\n", "train.epoch"),
        ("[train\n", "not valid TOML"),
        ("[train]\nexperiment = \"a/b\"\n", "train.experiment"),
    ],
)
def test_bad_files_name_the_key(workdir, toml, message):
    path = workdir / "bad.toml"
    path.write_text(toml)
    with pytest.raises(UserError, match=message):
        load_settings(path)


def test_unknown_environment_section(workdir, monkeypatch):
    monkeypatch.setenv("ACTCLI_TRIAN__EPOCHS", "3")
    with pytest.raises(UserError, match="ACTCLI_TRIAN__EPOCHS"):
        load_settings()


def test_config_show_prints_values_and_sources(cli, workdir, monkeypatch):
    monkeypatch.setenv("ACTCLI_TRAIN__EPOCHS", "4")
    out = cli("config", "show").output
    line = next(line for line in out.splitlines() if "train.epochs" in line)
    assert "4" in line and "env:ACTCLI_TRAIN__EPOCHS" in line
