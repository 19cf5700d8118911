"""Manual downloads: safe zip extraction and existing folders."""

from __future__ import annotations

import json
import zipfile

import pytest

from actcli.data.download import extract_zip
from actcli.errors import UserError


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_zip_member_escaping_destination_is_refused(tmp_path):
    archive = _zip(tmp_path / "evil.zip", {"UCF50/A/v_A_g01_c01.avi": b"x", "../../escape.txt": b"x"})
    with pytest.raises(UserError, match="escape"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "escape.txt").exists()
    absolute = _zip(tmp_path / "abs.zip", {"/etc/evil": b"x"})
    with pytest.raises(UserError, match="escape"):
        extract_zip(absolute, tmp_path / "out")


def test_download_from_zip_and_folder(cli, workdir, tiny_dataset):
    members = {f"UCF50/{p.relative_to(tiny_dataset).as_posix()}": p.read_bytes() for p in tiny_dataset.rglob("*.avi")}
    archive = _zip(workdir / "ucf50.zip", members)
    cli("download", "ucf50", "--from", archive)
    registry = json.loads((workdir / "outputs" / "datasets.json").read_text())
    assert registry["ucf50"].endswith("data/ucf50/UCF50")
    assert len(list((workdir / "data" / "ucf50" / "UCF50").rglob("*.avi"))) == 18
    assert not [p for p in (workdir / "data").iterdir() if p.name.startswith(".")]

    cli("download", "hmdb51", "--from", tiny_dataset)
    assert json.loads((workdir / "outputs" / "datasets.json").read_text())["hmdb51"] == str(tiny_dataset.resolve())


def test_not_a_zip(cli, workdir):
    (workdir / "file.zip").write_bytes(b"not a zip")
    line = cli.fails("download", "ucf50", "--from", "file.zip")
    assert "neither a folder nor a zip" in line
