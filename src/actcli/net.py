"""Verified downloads: a file is used only once its size (and checksum, where the publisher gives
one) match; otherwise nothing is written and the error says what to do.

Written on ``urllib`` rather than ``requests`` because the standard library suffices and the
checks are the point: ``Content-Length`` against the bytes received (a cut connection otherwise
leaves a short file that looks complete), and SHA-256 against the published digest.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from actcli.errors import UserError
from actcli.fileio import atomic_path

CHUNK = 1 << 20


class DownloadError(UserError):
    """A download failed or did not verify; the message names the URL and the reason."""


def download(url: str, target: Path, sha256: str | None = None, timeout: float = 60.0,
             progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Stream ``url`` into ``target`` atomically, verifying size and, if given, SHA-256 (hex).

    Args:
        progress: called with (bytes so far, total bytes or None) after each chunk.
    Raises:
        DownloadError: no network, an HTTP error, a short body, or a checksum mismatch;
            ``target`` is then left as it was.
    """
    digest = hashlib.sha256()
    try:
        # A fresh opener reads the proxy settings now; urlopen's would keep the first ones it saw.
        opener = urllib.request.build_opener()
        with opener.open(url, timeout=timeout) as response, atomic_path(target) as tmp, open(tmp, "wb") as handle:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            received = 0
            while chunk := response.read(CHUNK):
                handle.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if progress:
                    progress(received, expected)
            if expected is not None and received != expected:
                raise DownloadError(f"download of {url} was cut short: {received} of {expected} bytes; try again")
            if sha256 and digest.hexdigest() != sha256.lower():
                raise DownloadError(f"download of {url} does not match its published SHA-256 ({digest.hexdigest()[:12]}"
                                    f"... vs {sha256[:12]}...); try again, or report it if it persists")
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
        raise DownloadError(f"cannot download {url} ({reason})") from None
    return target


_SECRET_URL = re.compile(r"(//[^/\s:@]+):[^@\s/]+@")


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value and every ``user:password@`` in URLs replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _SECRET_URL.sub(r"\1:***@", text)
