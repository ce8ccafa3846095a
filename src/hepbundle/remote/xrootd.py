"""``root://`` files through the XRootD client (PyPI ``xrootd``): size and adler32 from the server.

A server configured with ``xrootd.chksum adler32`` (EOS and the grid's storage elements are)
answers a checksum query from its own record, so a data reference or a ``root2npz`` input on
XRootD is checked without a second read of its bytes over the network. Every call is bounded:
one connection attempt of at most :func:`timeout` seconds, requests of at most as long, so a
server that is down, or that accepts and never answers, is one line within about three times
that, never a hang. ``HEPBUNDLE_XROOTD_TIMEOUT`` (seconds, default 30) sets it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import DataError
from ..extras import require
from . import seconds_from_env

__all__ = ["TIMEOUT_ENV", "RemoteFile", "is_root_url", "remote_options", "stat", "timeout"]

TIMEOUT_ENV = "HEPBUNDLE_XROOTD_TIMEOUT"
_DEFAULT_TIMEOUT = 30
_SCHEMES = ("root", "roots", "xroot", "xroots")


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """What the server says of one file: its size and, when it offers one, its adler32."""

    url: str
    size: int
    adler32: str | None
    #: why there is no adler32 (the server does not compute checksums, or refused the query)
    reason: str = ""


def is_root_url(name: str) -> bool:
    """True for ``root://host[:port]//path`` (and the ``roots``/``xroot`` spellings)."""
    return urlsplit(name).scheme.lower() in _SCHEMES and "://" in name


def timeout() -> int:
    """Seconds any one XRootD step may take (``HEPBUNDLE_XROOTD_TIMEOUT``, default 30)."""
    return seconds_from_env(TIMEOUT_ENV, _DEFAULT_TIMEOUT)


def remote_options(name: str) -> dict[str, Any]:
    """Extra ``uproot.open`` options for ``name``: a bounded timeout for ``root://``."""
    if not is_root_url(name):
        return {}
    _client()  # bounded connection retries before uproot's handler connects
    return {"timeout": timeout()}


def stat(url: str, *, checksum: bool = True) -> RemoteFile:
    """Size and (``checksum``) the server's adler32 of ``url``. A missing file, a server that is
    down or does not answer in time is a one-line :class:`DataError`."""
    client, flags = _client()
    server, path = _split(url)
    fs = client.FileSystem(server)
    status, info = fs.stat(path, timeout=timeout())
    if not status.ok:
        raise _error(url, status)
    if info.flags & (flags.StatInfoFlags.IS_DIR | flags.StatInfoFlags.OTHER):
        raise DataError(f"{url} is not a file on the XRootD server")
    if not checksum:
        return RemoteFile(url, int(info.size), None, "not asked")
    status, answer = fs.query(flags.QueryCode.CHECKSUM, path, timeout=timeout())
    if not status.ok:
        return RemoteFile(url, int(info.size), None, _one_line(status.message))
    kind, _, value = bytes(answer or b"").rstrip(b"\0").decode("ascii", "replace").partition(" ")
    value = value.strip().lower()
    if kind.lower() != "adler32" or len(value) != 8:
        return RemoteFile(url, int(info.size), None, f"the server offers {kind or 'no'} checksum")
    return RemoteFile(url, int(info.size), value)


def _split(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if not parts.hostname:
        raise DataError(f"{url} is not a root://host//path URL")
    # root://host:port//abs/path: the server wants /abs/path
    return f"{parts.scheme}://{parts.netloc}", "/" + parts.path.lstrip("/")


def _error(url: str, status: Any) -> DataError:
    msg = _one_line(status.message)
    server = url.split("//", 2)[1] if url.count("//") >= 2 else url
    if status.errno == 3011 or "no such file" in msg.lower():
        return DataError(f"{url} does not exist on the XRootD server")
    if (
        status.code in (103, 108, 109, 206)
        or "connection" in msg.lower()
        or "timeout" in msg.lower()
    ):
        return DataError(
            f"the XRootD server {server} did not answer ({msg})",
            hint=f"is it up? each step waits at most {timeout()} s ({TIMEOUT_ENV})",
        )
    return DataError(f"XRootD cannot stat {url}: {msg}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:200]


def _client() -> tuple[Any, Any]:
    """The XRootD client module, set (at every call: the bound may change) for one bounded
    connection attempt; its defaults retry a dead server for minutes."""
    client = require("XRootD.client")
    flags = client.flags
    EnvPutInt = require("XRootD.client.env").EnvPutInt
    t = timeout()
    for key, value in (
        ("ConnectionRetry", 1),
        ("ConnectionWindow", t),
        ("RequestTimeout", t),
        ("StreamTimeout", t),
        # how often the client looks for expired requests (default 15 s, longer than a bound)
        ("TimeoutResolution", 1),
    ):
        EnvPutInt(key, value)
    return client, flags
