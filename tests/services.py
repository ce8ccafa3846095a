"""Real XRootD and Rucio servers on loopback for the tests that need them.

The servers are the project's own (``tools/services/``): ``xrootd.sh`` and ``rucio.sh`` install
what is missing (Debian xrootd packages; a Rucio server venv cached under
``~/.cache/hepbundle-ci``), start on 127.0.0.1 and print the client settings. The session
fixtures here run them once per test session, reuse servers that already run (``make unit``
starts them first), and stop only what they started. Where a server cannot be installed or
started the tests skip with the reason — and fail in CI (``HEPBUNDLE_REQUIRE_SERVICES=1``,
:mod:`tests.needs`).

Tests using these fixtures are marked ``services``; the Rucio ones also ``slow`` (its server
takes about 10 s to start, XRootD well under one).
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import socket
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .needs import missing

TOOLS = Path(__file__).resolve().parent.parent / "tools" / "services"
#: the real connect, taken before the autouse socket guard replaces it
_REAL_CONNECT = socket.socket.connect
_START_TIMEOUT = 900  # a cold install of the Rucio server venv takes minutes


def _script(name: str, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(TOOLS / name), action],
        capture_output=True,
        text=True,
        timeout=_START_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def _exports(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            out[key] = shlex.split(value)[0]
    return out


def _start(name: str) -> tuple[dict[str, str], bool]:
    """Start (or reuse) one service; its env lines and whether this call started it."""
    if shutil.which("bash") is None:
        missing("bash is not available to run tools/services")
    running = _script(name, "status").returncode == 0
    res = _script(name, "start")
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        missing(f"tools/services/{name} could not start its server: {last}")
    return _exports(res.stdout), not running


def adler32(path: Path) -> str:
    return f"{zlib.adler32(path.read_bytes()) & 0xFFFFFFFF:08x}"


@dataclass
class XRootDServer:
    url: str  # root://127.0.0.1:PORT
    export: Path  # the exported directory (URL path = absolute local path)

    def url_of(self, path: Path) -> str:
        return f"{self.url}/{path}"

    def put(self, src: Path, rel: str) -> tuple[Path, str]:
        """Copy ``src`` under the export (as a local file the server serves); its path and URL."""
        dest = self.export / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
        return dest, self.url_of(dest)


@dataclass
class RucioServer:
    config: Path  # RUCIO_CONFIG for rucio-clients
    xrootd: XRootDServer

    def client(self) -> Any:
        from rucio.client import Client

        return Client()

    def register(self, local: Path, scope: str, name: str, rse: str = "XRD_LOCAL") -> str:
        """Register ``local`` as a file DID with its bytes and adler32, put its bytes at the PFN
        Rucio computes for ``rse`` (through xrdcp, i.e. the XRootD server), return the PFN."""
        c = self.client()
        c.add_replicas(
            rse,
            [
                {
                    "scope": scope,
                    "name": name,
                    "bytes": local.stat().st_size,
                    "adler32": adler32(local),
                }
            ],
        )
        pfn = self.pfn(scope, name, rse)
        subprocess.run(
            ["xrdcp", "--silent", "--force", "--path", str(local), pfn],
            check=True,
            timeout=60,
            env={**os.environ, "XRD_CONNECTIONRETRY": "1", "XRD_REQUESTTIMEOUT": "30"},
        )
        return pfn

    def pfn(self, scope: str, name: str, rse: str = "XRD_LOCAL") -> str:
        reps = list(self.client().list_replicas([{"scope": scope, "name": name}]))
        pfns = reps[0]["rses"][rse]
        return str(pfns[0])

    def local_path(self, pfn: str) -> Path:
        """The file behind an XRD_LOCAL PFN (root://h:p//abs/path → /abs/path)."""
        return Path("/" + pfn.split("//", 2)[2].lstrip("/"))


def _loopback_connect(sock: socket.socket, address: Any) -> None:
    host = address[0] if isinstance(address, tuple) else address
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise RuntimeError(f"network access beyond loopback in a services test: {address!r}")
    _REAL_CONNECT(sock, address)


@pytest.fixture(scope="session")
def _xrootd_session() -> Iterator[XRootDServer]:
    if importlib.util.find_spec("XRootD") is None:
        missing(
            "the XRootD Python bindings are not installed: pip install 'hepbundle[data-services]'"
        )
    env, started = _start("xrootd.sh")
    yield XRootDServer(env["XROOTD_URL"], Path(env["XROOTD_EXPORT"]))
    if started:
        _script("xrootd.sh", "stop")


@pytest.fixture(scope="session")
def _rucio_session(_xrootd_session: XRootDServer) -> Iterator[RucioServer]:
    if importlib.util.find_spec("rucio") is None:
        missing("rucio-clients is not installed: pip install 'hepbundle[data-services]'")
    env, started = _start("rucio.sh")
    seeded = subprocess.run(
        ["bash", str(TOOLS / "rucio.sh"), "seed"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "XROOTD_URL": _xrootd_session.url,
            "XROOTD_EXPORT": str(_xrootd_session.export),
        },
    )
    if seeded.returncode != 0:
        missing(f"tools/services/rucio.sh seed failed: {seeded.stderr.strip()[-300:]}")
    yield RucioServer(Path(env["RUCIO_CONFIG"]), _xrootd_session)
    if started:
        _script("rucio.sh", "stop")


@pytest.fixture
def xrootd_server(_xrootd_session: XRootDServer, monkeypatch: pytest.MonkeyPatch) -> XRootDServer:
    """The running XRootD server (loopback connections allowed in this test)."""
    monkeypatch.setattr(socket.socket, "connect", _loopback_connect)
    return _xrootd_session


@pytest.fixture
def rucio_server(
    _rucio_session: RucioServer, xrootd_server: XRootDServer, monkeypatch: pytest.MonkeyPatch
) -> RucioServer:
    """The running Rucio server, with RUCIO_CONFIG set for this test."""
    monkeypatch.setenv("RUCIO_CONFIG", str(_rucio_session.config))
    return _rucio_session
