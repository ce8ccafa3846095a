"""Typed data references: form checks, checksums computed and compared, NPZ records, Rucio."""

from __future__ import annotations

import importlib.util
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import hepbundle
from hepbundle.digest import data_checksums, sha256_bytes
from hepbundle.errors import BuildError, SpecError
from hepbundle.provenance.datarefs import NPZ_RECORD_SUFFIX

from .needs import missing
from .provenance_fixtures import write_npz_with_record

PAYLOAD = bytes(range(256)) * 4099  # > 1 MiB: adler32 carries across read blocks


def build_with_data(tmp_path: Path, data_yaml: str, out: str = "out") -> hepbundle.Bundle:
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    spec = tmp_path / "hepbundle.yaml"
    spec.write_text("name: atlas/x\nversion: 1.0.0\nfiles: [{path: m.onnx}]\ndata:\n" + data_yaml)
    return hepbundle.build(spec, tmp_path / out)


def test_data_checksums_match_reference_implementations(tmp_path: Path) -> None:
    f = tmp_path / "d.bin"
    f.write_bytes(PAYLOAD)
    c = data_checksums(f, md5=True)
    assert c.size == len(PAYLOAD) and c.sha256 == sha256_bytes(PAYLOAD)
    assert c.adler32 == f"{zlib.adler32(PAYLOAD):08x}"
    import hashlib

    assert c.md5 == hashlib.md5(PAYLOAD).hexdigest()


def test_file_reference_is_hashed_and_given_checksums_checked(tmp_path: Path) -> None:
    (tmp_path / "train.h5").write_bytes(PAYLOAD)
    adler = f"{zlib.adler32(PAYLOAD):08X}"  # upper case as some tools print it
    b = build_with_data(
        tmp_path,
        f"  - {{type: file, path: train.h5, adler32: {adler}, bytes: {len(PAYLOAD)}, split: train}}\n"
        "  - {type: file, path: /eos/atlas/not/mounted/here.root, adler32: 0000abcd}\n"
        "  - {type: file, path: 'https://opendata.example.org/x.root'}\n",
    )
    local, eos, url = b.manifest.meta["data"]
    assert local == {
        "type": "file",
        "path": "train.h5",
        "bytes": len(PAYLOAD),
        "sha256": sha256_bytes(PAYLOAD),
        "adler32": adler.lower(),
        "verified": True,
        "split": "train",
    }
    assert (eos["verified"], eos["reason"], eos["adler32"]) == (
        False,
        "not readable here",
        "0000abcd",
    )
    assert (url["verified"], url["reason"]) == (False, "remote URL, not read")


def test_root_url_reference_on_a_server_that_is_down_is_one_line(tmp_path: Path) -> None:
    """root:// references are asked of their XRootD server (tests/test_data_services.py runs a
    real one); nothing listens on port 1, so this one fails fast, with a clear message."""
    if importlib.util.find_spec("XRootD") is None:
        missing("the XRootD bindings are not installed (hepbundle[data-services])")
    with pytest.raises(BuildError, match=r"data\[0\]\.path: the XRootD server 127\.0\.0\.1:1 "):
        build_with_data(tmp_path, "  - {type: file, path: 'root://127.0.0.1:1//eos/x.root'}\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        # bad DIDs: no scope, empty name, a space, scope too long
        (
            "  - {type: rucio, did: DAOD_PHYS.root, bytes: 1, adler32: 0a1b2c3d}\n",
            r":5: data\[0\].did: 'DAOD_PHYS.root' is invalid: a Rucio DID is scope:name",
        ),
        ("  - type: rucio\n    did: 'mc23:'\n", r":6: data\[0\].did: 'mc23:' is invalid"),
        ("  - {type: rucio, did: 'mc23:a b'}\n", r"data\[0\].did: 'mc23:a b' is invalid"),
        (
            "  - {type: rucio, did: 'abcdefghijklmnopqrstuvwxyz:x'}\n",
            r"data\[0\].did: .* is invalid",
        ),
        (
            "  - {type: rucio, did: 'mc23:x', adler32: xyz}\n",
            r"data\[0\].adler32: 'xyz' is invalid: adler32 as 8 hex",
        ),
        (
            "  - type: rucio\n    did: 'mc23:x'\n",
            r":6: data\[0\]: Rucio DID mc23:x needs 'bytes:' and 'adler32:' .*no Rucio server configured.*rucio list-files mc23:x",
        ),
        # checksum mismatches: each names the line of the wrong value
        (
            "  - type: file\n    path: d.bin\n    sha256: '" + "0" * 64 + "'\n",
            r":7: data\[0\].sha256: 0{64} does not match .*d.bin",
        ),
        (
            "  - type: file\n    path: d.bin\n    adler32: '00000001'\n",
            r":7: data\[0\].adler32: 00000001 does not match",
        ),
        (
            "  - type: file\n    path: d.bin\n    adler32: 00000001\n",
            r":7: data\[0\].adler32: YAML read this checksum as the number 1 \(quote it",
        ),
        (
            "  - type: file\n    path: d.bin\n    bytes: 3\n",
            r":7: data\[0\].bytes: 3 does not match .*bytes 1049344",
        ),
        (
            "  - type: file\n    path: d.bin\n    md5: " + "f" * 32 + "\n",
            r":7: data\[0\].md5: f{32} does not match",
        ),
        (
            "  - {type: file, path: missing.bin}\n",
            r":5: data\[0\].path: .*missing.bin does not exist",
        ),
        # unknown types and malformed records
        (
            "  - {type: file, path: d.bin}\n  - type: eos\n    path: /eos/x\n",
            r":6: data\[1\].type: 'eos' is not one of rucio, file, opendata, npz",
        ),
        (
            "  - {type: rucoi, did: 'a:b'}\n",
            r"data\[0\].type: 'rucoi' is not one of .*did you mean 'rucio'",
        ),
        ("  - {path: d.bin}\n", r":5: data\[0\].type: required field is missing"),
        (
            "  - {type: opendata, doi: 10.1234/foo}\n",
            r"data\[0\].doi: '10.1234/foo' is invalid: a CERN Open Data DOI",
        ),
        (
            "  - {type: opendata, record: abc}\n",
            r":5: data\[0\].record: 'abc' is not a CERN Open Data record id",
        ),
        ("  - {type: opendata}\n", r"data\[0\]: .*(doi|record)"),
        ("  - {type: file, path: d.bin, did: 'a:b'}\n", r"data\[0\].did: unknown key"),
    ],
)
def test_bad_references_are_errors_naming_the_line(tmp_path: Path, data: str, message: str) -> None:
    (tmp_path / "d.bin").write_bytes(PAYLOAD)
    with pytest.raises(SpecError, match=message):
        build_with_data(tmp_path, data)
    assert not (tmp_path / "out").exists()


def test_opendata_record_forms(tmp_path: Path) -> None:
    b = build_with_data(
        tmp_path,
        "  - {type: opendata, record: 12345}\n"
        "  - {type: opendata, record: 'https://opendata.cern.ch/record/678'}\n",
    )
    assert [(d["record"], d["uri"]) for d in b.manifest.meta["data"]] == [
        (12345, "https://opendata.cern.ch/record/12345"),
        (678, "https://opendata.cern.ch/record/678"),
    ]


def test_npz_record_embedded_and_checked(tmp_path: Path) -> None:
    npz = tmp_path / "data" / "jets.npz"
    digest = write_npz_with_record(npz)
    b = build_with_data(tmp_path, "  - {type: npz, path: data/jets.npz, split: train}\n")
    (ref,) = b.manifest.meta["data"]
    assert ref["sha256"] == digest
    assert ref["record"] == json.loads(npz.with_name(npz.name + NPZ_RECORD_SUFFIX).read_text())
    # the NPZ is replaced after conversion: its record no longer describes it
    np.savez(npz, x=np.zeros(3))
    with pytest.raises(
        SpecError, match=r":5: data\[0\].path: .*jets.npz is not the NPZ its record"
    ):
        build_with_data(tmp_path, "  - {type: npz, path: data/jets.npz}\n", "out2")


def test_npz_without_record_and_not_an_npz(tmp_path: Path) -> None:
    np.savez(tmp_path / "plain.npz", a=np.arange(6).reshape(2, 3).astype(np.int32))
    (tmp_path / "fake.npz").write_bytes(b"not a zip")
    b = build_with_data(tmp_path, "  - {type: npz, path: plain.npz}\n")
    (ref,) = b.manifest.meta["data"]
    assert ref["record"] is None and "no plain.npz.provenance.json" in ref["reason"]
    assert ref["arrays"] == {"a": {"shape": [2, 3], "dtype": "<i4"}}
    with pytest.raises(SpecError, match=r":5: data\[0\].path: .*fake.npz is not a readable NPZ"):
        build_with_data(tmp_path, "  - {type: npz, path: fake.npz}\n", "out2")


def test_rucio_configured_without_client_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without rucio-clients a configured server is noticed, not contacted. (The dev install
    has it: hide it, as a machine without the data-services extra would.)"""
    cfg = tmp_path / "rucio.cfg"
    cfg.write_text("[client]\nrucio_host = https://rucio-lb-prod.cern.ch\n")
    monkeypatch.setenv("RUCIO_CONFIG", str(cfg))
    for mod in [m for m in sys.modules if m == "rucio" or m.startswith("rucio.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "rucio", None)  # import rucio → ImportError
    b = build_with_data(
        tmp_path,
        "  - {type: rucio, did: 'user.jdoe:ntuple.root', bytes: 10, adler32: 0a0b0c0d, md5: "
        + "a" * 32
        + "}\n",
    )
    (ref,) = b.manifest.meta["data"]
    assert ref["resolved"] is False
    assert ref["reason"] == f"rucio-clients is not installed (configuration {cfg} found)"
    assert (ref["scope"], ref["name"], ref["md5"]) == ("user.jdoe", "ntuple.root", "a" * 32)


def test_rucio_config_without_a_server_is_a_one_line_build_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("rucio") is None:
        missing("rucio-clients is not installed (hepbundle[data-services])")
    cfg = tmp_path / "rucio.cfg"
    cfg.write_text("[client]\nrucio_host = https://rucio.example.org\n")  # no auth_host
    monkeypatch.setenv("RUCIO_CONFIG", str(cfg))
    with pytest.raises(BuildError, match=r"data\[0\]\.did: Rucio could not answer for u\.j:n") as e:
        build_with_data(tmp_path, "  - {type: rucio, did: 'u.j:n', bytes: 1, adler32: 0a0b0c0d}\n")
    assert "\n" not in str(e.value)


def test_npz_from_the_real_root2npz_tool(tmp_path: Path) -> None:
    """An NPZ made by hepbundle's ROOT→NPZ tool from a ROOT file written by uproot: its record
    is embedded as written, and the record's output digest is what was checked."""
    uproot = pytest.importorskip("uproot")
    from hepbundle.data.root2npz import root2npz

    rng = np.random.default_rng(11)
    with uproot.recreate(tmp_path / "in.root") as f:
        f.mktree("Events", {"pt": np.float32, "label": np.int32})
        f["Events"].extend(
            {"pt": rng.exponential(30, 300).astype(np.float32), "label": rng.integers(0, 2, 300)}
        )
    res = root2npz([tmp_path / "in.root"], "Events", ["pt", "label"], tmp_path / "ev.npz")
    b = build_with_data(tmp_path, "  - {type: npz, path: ev.npz, split: train}\n")
    (ref,) = b.manifest.meta["data"]
    assert ref["record"] == json.loads(res.provenance_path.read_text())
    assert ref["sha256"] == ref["record"]["output"]["sha256"]
    assert set(ref["arrays"]) == {"pt", "label"}
