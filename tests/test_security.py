"""Hostile or broken input from outside: downloads verified before use (served by a real local
HTTP server), zip members that escape or link out refused, credentials kept out of messages."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import zipfile
from pathlib import Path

import pytest

from actcli.data.download import extract_zip
from actcli.ek100.annotations import FILES
from actcli.ek100.download import check_folder, fetch
from actcli.errors import UserError
from actcli.net import DownloadError, download, redact

EK100 = Path(__file__).parent / "data" / "ek100"
PAYLOAD = os.urandom(5000)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/short.bin":  # announces 5000 bytes, sends 2000, hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD[:2000])
            self.close_connection = True
            return
        body = PAYLOAD if self.path == "/ok.bin" else None
        name = self.path.split("/")[-1].replace("_train.csv", "_validation.csv")  # no train rows are shipped here
        if self.path.startswith("/ek100/") and (EK100 / name).is_file():
            body = (EK100 / name).read_bytes()
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    saved = {k: os.environ.get(k) for k in ("no_proxy", "NO_PROXY")}
    os.environ["no_proxy"] = os.environ["NO_PROXY"] = "127.0.0.1,localhost"  # straight to the local server
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_downloads_are_verified_before_use(server, tmp_path):
    target = tmp_path / "file.bin"
    download(f"{server}/ok.bin", target, sha256=hashlib.sha256(PAYLOAD).hexdigest())
    assert target.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="SHA-256"):
        download(f"{server}/ok.bin", tmp_path / "other.bin", sha256="0" * 64)
    with pytest.raises(DownloadError, match="cut short|IncompleteRead"):
        download(f"{server}/short.bin", target)
    assert target.read_bytes() == PAYLOAD  # the good copy is untouched by the failed one
    with pytest.raises(DownloadError, match="Not Found"):
        download(f"{server}/missing.bin", tmp_path / "missing.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]  # nothing half-written


def test_ek100_annotations_fetched_and_checked(server, tmp_path):
    written = fetch(tmp_path / "ek100", base_url=f"{server}/ek100")
    assert sorted(p.name for p in written) == sorted(FILES.values())
    check_folder(tmp_path / "ek100")  # every file passes its loader's checks
    with pytest.raises(UserError, match="--from FOLDER"):
        fetch(tmp_path / "elsewhere", base_url=f"{server}/nothing-here")


def test_zip_links_are_refused(tmp_path):
    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("UCF50/A/v_A_g01_c01.avi", b"x")
        link = zipfile.ZipInfo("UCF50/A/escape.avi")
        link.external_attr = (0o120777 << 16)  # a symbolic link ...
        zf.writestr(link, "../../../../etc/passwd")  # ... pointing out of the destination
    with pytest.raises(UserError, match="symbolic link"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_credentials_never_appear_in_messages(cli, workdir, monkeypatch):
    secret = "0123456789abcdefSECRET"
    assert "SECRET" not in redact(f"401 for key {secret} via http://me:{secret}@proxy:3128/", [secret])
    assert redact("via http://me:hunter22@proxy:3128/", []) == "via http://me:***@proxy:3128/"
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", secret)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, f"http://someone:{secret}@127.0.0.1:9")  # the key in a proxy URL, unreachable
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(workdir / "kaggle-cache"))
    result = cli("download", "ucf50", code=1)
    assert "--from" in result.output and secret not in result.output
    assert not any(secret in p.read_text(errors="ignore") for p in workdir.rglob("*") if p.is_file())
