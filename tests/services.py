"""Real XRootD and Rucio servers on loopback for the tests that need them.

The servers are the project's own (``tools/services/``): ``xrootd.sh`` and ``rucio.sh`` install
what is missing (Debian xrootd packages; a Rucio server venv cached under
``~/.cache/hepbundle-ci``), start on 127.0.0.1 and print the client settings. The session
fixtures here use the servers on the default ports when both run (``make unit`` starts them
first), and otherwise start a private pair (own directory, free ports) once per test session
and stop it at the end: two sessions side by side never stop each other's servers. Where a server cannot be installed or
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
import tempfile
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


def _script(
    name: str, action: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(TOOLS / name), action],
        capture_output=True,
        text=True,
        timeout=_START_TIMEOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )


def _exports(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            out[key] = shlex.split(value)[0]
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Instance:
    """Which servers this session uses: the shared ones on the default ports (started by
    ``make unit`` / ``up.sh start``: used, never stopped here), or a private pair in a directory
    and on ports of its own (started and stopped by this session), so that two test sessions
    running side by side never stop each other's servers."""

    env: dict[str, str]
    private: bool
    started: list[str]

    def start(self, name: str) -> dict[str, str]:
        if shutil.which("bash") is None:
            missing("bash is not available to run tools/services")
        res = _script(name, "start", self.env)
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
            missing(f"tools/services/{name} could not start its server: {last}")
        if self.private:
            self.started.append(name)
        return _exports(res.stdout)


def _instance() -> _Instance:
    if all(_script(n, "status").returncode == 0 for n in ("xrootd.sh", "rucio.sh")):
        return _Instance({}, private=False, started=[])
    home = tempfile.mkdtemp(prefix="hepbundle-services-")
    env = {
        "HEPBUNDLE_SERVICES_DIR": home,
        "HEPBUNDLE_XROOTD_PORT": str(_free_port()),
        "HEPBUNDLE_RUCIO_PORT": str(_free_port()),
    }
    return _Instance(env, private=True, started=[])


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
def _services() -> Iterator[_Instance]:
    inst = _instance()
    yield inst
    for name in reversed(inst.started):
        _script(name, "stop", inst.env)
    if inst.private:
        shutil.rmtree(inst.env["HEPBUNDLE_SERVICES_DIR"], ignore_errors=True)


@pytest.fixture(scope="session")
def _xrootd_session(_services: _Instance) -> XRootDServer:
    if importlib.util.find_spec("XRootD") is None:
        missing(
            "the XRootD Python bindings are not installed: pip install 'hepbundle[data-services]'"
        )
    env = _services.start("xrootd.sh")
    return XRootDServer(env["XROOTD_URL"], Path(env["XROOTD_EXPORT"]))


@pytest.fixture(scope="session")
def _rucio_session(_services: _Instance, _xrootd_session: XRootDServer) -> RucioServer:
    if importlib.util.find_spec("rucio") is None:
        missing("rucio-clients is not installed: pip install 'hepbundle[data-services]'")
    env = _services.start("rucio.sh")
    seeded = _script(
        "rucio.sh",
        "seed",
        {
            **_services.env,
            "XROOTD_URL": _xrootd_session.url,
            "XROOTD_EXPORT": str(_xrootd_session.export),
        },
    )
    if seeded.returncode != 0:
        missing(f"tools/services/rucio.sh seed failed: {seeded.stderr.strip()[-300:]}")
    return RucioServer(Path(env["RUCIO_CONFIG"]), _xrootd_session)


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
