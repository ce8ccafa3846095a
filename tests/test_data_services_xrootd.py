"""root:// against a real XRootD server on loopback (tools/services/xrootd.sh): root2npz reads
TTrees and RNTuples by URL, sizes and adler32 come from the server's checksum query and agree
with the local computation, and a missing file or a dead server is one line, quickly."""

from __future__ import annotations

import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import uproot

import hepbundle
from hepbundle.data.root2npz import root2npz
from hepbundle.errors import BuildError, DataError, SpecError
from hepbundle.remote import xrootd

from .services import XRootDServer
from .test_data_root2npz import write_root
from .test_data_root2npz_rntuple import write_rntuple

pytestmark = pytest.mark.services


def _adler(p: Path) -> str:
    return f"{zlib.adler32(p.read_bytes()):08x}"


def test_server_checksum_equals_local_computation(
    tmp_path: Path, xrootd_server: XRootDServer
) -> None:
    write_root(tmp_path / "t.root", 3000)
    path, url = xrootd_server.put(tmp_path / "t.root", f"{tmp_path.name}/t.root")
    got = xrootd.stat(url)
    assert got.size == path.stat().st_size and got.adler32 == _adler(path)
    # a changed file gets a new checksum from the server, not a cached one
    path.write_bytes(path.read_bytes() + b"\0")
    assert xrootd.stat(url).adler32 == _adler(path) != got.adler32


@pytest.mark.parametrize("kind", ["TTree", "RNTuple"])
def test_root2npz_reads_by_url_and_takes_checksums_from_the_server(
    tmp_path: Path, xrootd_server: XRootDServer, kind: str
) -> None:
    src = tmp_path / "in.root"
    if kind == "TTree":
        write_root(src, 2000)
    else:
        write_rntuple(src, 2000)
    path, url = xrootd_server.put(src, f"{tmp_path.name}/{kind}.root")
    local = root2npz([src], "Events", ["pt", "nhits"], tmp_path / "local.npz")
    remote = root2npz([url], "Events", ["pt", "nhits"], tmp_path / "remote.npz", step_size="64KB")
    zl, zr = np.load(tmp_path / "local.npz"), np.load(tmp_path / "remote.npz")
    assert all(np.array_equal(zl[b], zr[b]) for b in ("pt", "nhits"))
    (li,), (ri,) = local.record["inputs"], remote.record["inputs"]
    assert (ri["path"], ri["kind"], ri["checksumSource"]) == (url, kind, "xrootd")
    assert (li["kind"], li["checksumSource"]) == (kind, "local")
    assert ri["size"] == li["size"] == path.stat().st_size
    assert ri["adler32"] == li["adler32"] == _adler(path)
    assert ri["sha256"] is None  # XRootD offers adler32; a second read would double the transfer


def test_missing_file_and_dead_server_are_one_line(
    tmp_path: Path, xrootd_server: XRootDServer
) -> None:
    out = tmp_path / "o.npz"
    missing = xrootd_server.url_of(xrootd_server.export / "no" / "such.root")
    with pytest.raises(DataError, match="does not exist on the XRootD server") as e:
        root2npz([missing], "Events", ["pt"], out)
    assert "\n" not in str(e.value) and not out.exists()
    t0 = time.monotonic()
    with pytest.raises(DataError, match=r"the XRootD server 127\.0\.0\.1:1 did not answer"):
        root2npz(["root://127.0.0.1:1//data/x.root"], "Events", ["pt"], out)
    assert time.monotonic() - t0 < 30 and not out.exists()


def test_a_server_that_accepts_and_never_answers_times_out(
    tmp_path: Path, xrootd_server: XRootDServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No hang: a listener that never speaks XRootD is given up on within the bound."""
    import socket

    del xrootd_server  # only for the loopback permission
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)
    port = mute.getsockname()[1]
    monkeypatch.setenv(xrootd.TIMEOUT_ENV, "2")
    t0 = time.monotonic()
    try:
        with pytest.raises(DataError, match=rf"127\.0\.0\.1:{port} did not answer"):
            xrootd.stat(f"root://127.0.0.1:{port}//x.root")
    finally:
        mute.close()
        monkeypatch.delenv(xrootd.TIMEOUT_ENV)
        xrootd._client()  # the default bound again, for the tests after this one
    assert time.monotonic() - t0 < 10


def test_data_reference_by_url_checked_against_the_server(
    tmp_path: Path, xrootd_server: XRootDServer
) -> None:
    write_root(tmp_path / "t.root", 500)
    path, url = xrootd_server.put(tmp_path / "t.root", f"{tmp_path.name}/ref.root")
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    spec = tmp_path / "hepbundle.yaml"
    body = "name: atlas/x\nversion: 1.0.0\nfiles: [{path: m.onnx}]\ndata:\n"
    adler = _adler(path)
    spec.write_text(body + f"  - {{type: file, path: '{url}', adler32: '{adler.upper()}'}}\n")
    b = hepbundle.build(spec, tmp_path / "out")
    (ref,) = b.manifest.meta["data"]
    assert ref == {
        "type": "file",
        "path": url,
        "bytes": path.stat().st_size,
        "adler32": adler,
        "checksumSource": "xrootd",
        "verified": True,
    }
    spec.write_text(body + f"  - {{type: file, path: '{url}', adler32: '0badf00d'}}\n")
    with pytest.raises(
        SpecError, match=rf"spec says 0badf00d, the XRootD server has adler32 {adler}"
    ):
        hepbundle.build(spec, tmp_path / "out2")
    gone = xrootd_server.url_of(xrootd_server.export / "gone.root")
    spec.write_text(body + f"  - {{type: file, path: '{gone}'}}\n")
    with pytest.raises(
        BuildError, match=r"data\[0\]\.path: .*gone\.root does not exist on the XRootD"
    ):
        hepbundle.build(spec, tmp_path / "out3")
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()


def test_uproot_reads_the_same_bytes_through_xrootd(
    tmp_path: Path, xrootd_server: XRootDServer
) -> None:
    """The handler uproot picks for root:// (fsspec-xrootd) sees the file the server exports."""
    write_rntuple(tmp_path / "rn.root", 100)
    _, url = xrootd_server.put(tmp_path / "rn.root", f"{tmp_path.name}/rn.root")
    with uproot.open(url, timeout=10) as f:
        assert f.classnames(cycle=False)["Events"] == "ROOT::RNTuple"
