"""Rucio DIDs against a real Rucio server on loopback (tools/services/rucio.sh: PyPI rucio under
gunicorn, SQLite), with an RSE on the real XRootD server: a ROOT file written by uproot is
registered, a bundle names it by DID, and local, XRootD and Rucio agree on its size and adler32;
a tampered replica, a wrong checksum and an unknown DID are build errors; reproduce --check asks
Rucio for replicas; an MLflow run's dataset tag becomes a typed Rucio reference."""

from __future__ import annotations

import json
import uuid
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.data.root2npz import root2npz
from hepbundle.errors import BuildError, SpecError
from hepbundle.remote import xrootd

from .services import RucioServer
from .test_data_root2npz import write_root

pytestmark = [pytest.mark.services, pytest.mark.slow]

SCOPE = "mc23_13p6TeV"


def _adler(p: Path) -> str:
    return f"{zlib.adler32(p.read_bytes()):08x}"


def _unique(stem: str) -> str:
    return f"{stem}.{uuid.uuid4().hex[:10]}.root"


def _spec(tmp_path: Path, data: str) -> Path:
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    spec = tmp_path / "hepbundle.yaml"
    spec.write_text(
        "name: atlas/x\nversion: 1.0.0\nfiles: [{path: m.onnx}]\n"
        "code: {repository: 'https://gitlab.cern.ch/a/b', commit: '" + "a" * 40 + "', "
        "command: 'python train.py'}\n"
        "data:\n" + data
    )
    return spec


@pytest.fixture
def registered(tmp_path: Path, rucio_server: RucioServer) -> tuple[str, Path, str]:
    """A ROOT file written by uproot, registered on XRD_LOCAL (adler32 registered upper-case,
    as some tools do) with its bytes put at the PFN through xrdcp: (DID, local file, PFN)."""
    local = tmp_path / "ntuple.root"
    write_root(local, 2000)
    name = _unique("DAOD_PHYS.test")
    c = rucio_server.client()
    c.add_replicas(
        "XRD_LOCAL",
        [
            {
                "scope": SCOPE,
                "name": name,
                "bytes": local.stat().st_size,
                "adler32": _adler(local).upper(),
            }
        ],
    )
    pfn = rucio_server.pfn(SCOPE, name)
    import subprocess

    subprocess.run(
        ["xrdcp", "--silent", "--force", "--path", str(local), pfn], check=True, timeout=60
    )
    return f"{SCOPE}:{name}", local, pfn


def test_sizes_and_checksums_agree_across_local_xrootd_and_rucio(
    tmp_path: Path, rucio_server: RucioServer, registered: tuple[str, Path, str]
) -> None:
    did, local, pfn = registered
    scope, name = did.split(":")
    rucio_meta = rucio_server.client().get_did(scope, name)
    remote = xrootd.stat(pfn)
    assert local.stat().st_size == remote.size == rucio_meta["bytes"]
    assert _adler(local) == remote.adler32 == rucio_meta["adler32"].lower()
    assert rucio_meta["adler32"] != rucio_meta["adler32"].lower()  # registered upper-case

    # the spec gives lower-case: Rucio's upper-case record matches it
    b = hepbundle.build(
        _spec(tmp_path, f"  - {{type: rucio, did: '{did}', adler32: '{_adler(local)}'}}\n"),
        tmp_path / "out",
    )
    (ref,) = b.manifest.meta["data"]
    assert ref["resolved"] is True and ref["didType"] == "file" and ref["files"] == 1
    assert (ref["bytes"], ref["adler32"]) == (local.stat().st_size, _adler(local))
    assert ref["replicas"] == [{"rse": "XRD_LOCAL", "pfn": pfn, "checked": True, "via": "xrootd"}]
    shown = CliRunner().invoke(main, ["show", str(tmp_path / "out")])
    assert shown.exit_code == 0, shown.output
    assert f"[rucio] {did} (resolved by Rucio: file, " in shown.output
    assert "replica checked on XRD_LOCAL" in shown.output

    # root2npz reads the replica by its root:// URL; its record agrees with Rucio
    res = root2npz([pfn], "Events", ["pt", "nhits"], tmp_path / "train.npz")
    (inp,) = res.record["inputs"]
    assert (inp["size"], inp["adler32"], inp["checksumSource"]) == (
        ref["bytes"],
        ref["adler32"],
        "xrootd",
    )
    local_npz = root2npz([local], "Events", ["pt", "nhits"], tmp_path / "local.npz")
    assert np.array_equal(
        np.load(tmp_path / "train.npz")["pt"], np.load(tmp_path / "local.npz")["pt"]
    )
    assert local_npz.record["inputs"][0]["adler32"] == inp["adler32"]


def test_tampered_replica_is_a_build_error(
    tmp_path: Path, rucio_server: RucioServer, registered: tuple[str, Path, str]
) -> None:
    did, local, pfn = registered
    stored = rucio_server.local_path(pfn)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    stored.write_bytes(bytes(data))
    tampered = f"{zlib.adler32(bytes(data)):08x}"
    with pytest.raises(BuildError) as e:
        hepbundle.build(_spec(tmp_path, f"  - {{type: rucio, did: '{did}'}}\n"), tmp_path / "out")
    msg = str(e.value)
    assert (
        f"the replica of {did} on XRD_LOCAL has adler32 {tampered}, Rucio records {_adler(local)}"
        in msg
    )
    assert "\n" not in msg and not (tmp_path / "out").exists()


def test_wrong_checksum_or_size_in_the_spec_names_both_values(
    tmp_path: Path, registered: tuple[str, Path, str]
) -> None:
    did, local, _ = registered
    with pytest.raises(
        SpecError,
        match=rf"adler32: the spec says 0badf00d, Rucio's adler32 for {did} is {_adler(local)}",
    ):
        hepbundle.build(
            _spec(tmp_path, f"  - {{type: rucio, did: '{did}', adler32: 0badf00d}}\n"),
            tmp_path / "o",
        )
    with pytest.raises(
        SpecError,
        match=rf"bytes: the spec says 7, Rucio's bytes for {did} is {local.stat().st_size}",
    ):
        hepbundle.build(
            _spec(tmp_path, f"  - {{type: rucio, did: '{did}', bytes: 7}}\n"), tmp_path / "o"
        )
    assert not (tmp_path / "o").exists()


def test_unknown_did_is_a_build_error(tmp_path: Path, rucio_server: RucioServer) -> None:
    del rucio_server
    with pytest.raises(
        BuildError, match=rf"data\[0\]\.did: Rucio does not know the DID {SCOPE}:no\.such\.file"
    ):
        hepbundle.build(
            _spec(tmp_path, f"  - {{type: rucio, did: '{SCOPE}:no.such.file'}}\n"), tmp_path / "o"
        )


def test_dataset_records_type_file_count_and_total_bytes(
    tmp_path: Path, rucio_server: RucioServer
) -> None:
    c = rucio_server.client()
    ds = _unique("user.ds").removesuffix(".root")
    files = []
    for i in range(2):
        p = tmp_path / f"f{i}.root"
        write_root(p, 300 + 100 * i, seed=i)
        n = _unique(f"f{i}")
        c.add_replicas(
            "XRD_LOCAL",
            [{"scope": SCOPE, "name": n, "bytes": p.stat().st_size, "adler32": _adler(p)}],
        )
        files.append((n, p))
    c.add_dataset(SCOPE, ds)
    c.attach_dids(SCOPE, ds, [{"scope": SCOPE, "name": n} for n, _ in files])
    total = sum(p.stat().st_size for _, p in files)
    b = hepbundle.build(
        _spec(
            tmp_path, f"  - {{type: rucio, did: '{SCOPE}:{ds}', bytes: {total}, split: train}}\n"
        ),
        tmp_path / "out",
    )
    (ref,) = b.manifest.meta["data"]
    assert (ref["didType"], ref["files"], ref["bytes"], ref["split"]) == (
        "dataset",
        2,
        total,
        "train",
    )
    assert "adler32" not in ref and "replicas" not in ref
    with pytest.raises(SpecError, match=rf"total bytes for {SCOPE}:{ds} is {total}"):
        hepbundle.build(
            _spec(tmp_path, f"  - {{type: rucio, did: '{SCOPE}:{ds}', bytes: 1}}\n"),
            tmp_path / "o2",
        )
    with pytest.raises(SpecError, match="is a dataset; Rucio keeps adler32 for files only"):
        hepbundle.build(
            _spec(tmp_path, f"  - {{type: rucio, did: '{SCOPE}:{ds}', adler32: 0a0b0c0d}}\n"),
            tmp_path / "o3",
        )


def test_reproduce_check_asks_rucio_for_replicas(
    tmp_path: Path,
    rucio_server: RucioServer,
    registered: tuple[str, Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    did, _, _ = registered
    scope, name = did.split(":")
    hepbundle.build(_spec(tmp_path, f"  - {{type: rucio, did: '{did}'}}\n"), tmp_path / "out")

    def data_item() -> dict[str, str]:
        # the bundle is built, not signed: check its files' digests only, by name
        r = CliRunner().invoke(
            main, ["reproduce", str(tmp_path / "out"), "--check", "--json", "--integrity-only"]
        )
        items = json.loads(r.stdout)["items"]
        return next(i for i in items if i["what"] == "data")

    item = data_item()
    assert (item["name"], item["status"]) == (did, "ok")
    assert item["detail"] == "1 file(s) with replicas on: XRD_LOCAL 1/1"
    # the replica is declared bad: no available copy is left
    rucio_server.client().declare_bad_file_replicas(
        [{"scope": scope, "name": name, "rse": "XRD_LOCAL"}], "test", force=True
    )
    item = data_item()
    assert (
        item["status"] == "missing" and "1 of 1 files have no available replica" in item["detail"]
    )
    # without a Rucio configuration the DID is listed, not checked
    monkeypatch.delenv("RUCIO_CONFIG")
    item = data_item()
    assert item["status"] == "unchecked" and "no Rucio server configured" in item["detail"]


def test_without_a_rucio_config_show_says_not_resolved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUCIO_CONFIG", raising=False)
    monkeypatch.setenv("RUCIO_HOME", str(tmp_path / "none"))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    spec = _spec(
        tmp_path, f"  - {{type: rucio, did: '{SCOPE}:x.root', bytes: 5, adler32: 0000abcd}}\n"
    )
    hepbundle.build(spec, tmp_path / "out")
    shown = CliRunner().invoke(main, ["show", str(tmp_path / "out")])
    assert (
        f"[rucio] {SCOPE}:x.root (not resolved by Rucio: no Rucio server configured" in shown.output
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # mlflow 3 on SQLAlchemy 2.1
def test_mlflow_dataset_tag_becomes_a_rucio_reference(
    tmp_path: Path, rucio_server: RucioServer, registered: tuple[str, Path, str]
) -> None:
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.tracking import MlflowClient

    from hepbundle.builder import BuildOptions, build_from_spec
    from hepbundle.importers import plan_import

    did, local, _ = registered
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("tau", artifact_location=(tmp_path / "art").as_uri())
    client.create_registered_model("tau-id")
    run = client.create_run(exp, tags={"dataset.train": did, "dataset.notes": "not a DID"})
    rid = run.info.run_id
    test_did = f"{SCOPE}:{_unique('test.sample')}"
    client.log_inputs(
        rid,
        datasets=[
            DatasetInput(
                Dataset(
                    name="test-sample",
                    digest="d1",
                    source_type="rucio",
                    source=json.dumps({"did": test_did}),
                ),
                tags=[InputTag("mlflow.data.context", "test")],
            )
        ],
    )
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "model.onnx").write_bytes(b"onnx" * 10)
    client.log_artifacts(rid, str(tmp_path / "stage"), artifact_path="model")
    client.set_terminated(rid)
    client.create_model_version("tau-id", source=f"runs:/{rid}/model", run_id=rid)

    plan = plan_import("mlflow", uri)
    (pb,) = plan.bundles
    refs = pb.spec.sections["data"]
    assert refs == [
        {"type": "rucio", "did": did, "imported": "mlflow run tag dataset.train", "split": "train"},
        {
            "type": "rucio",
            "did": test_did,
            "imported": "mlflow dataset input test-sample",
            "split": "test",
        },
    ]
    assert pb.gaps()["data"] is True
    assert pb.gap_notes()["data"].startswith("Rucio DIDs resolved at build time: ")
    # the second DID is not registered: the build says so
    with pytest.raises(BuildError, match=f"Rucio does not know the DID {test_did}"):
        build_from_spec(pb.spec, BuildOptions(out=tmp_path / "b0", extra_meta=pb.extra_meta))
    rucio_server.client().add_replicas(
        "XRD_LOCAL",
        [{"scope": SCOPE, "name": test_did.split(":")[1], "bytes": 4, "adler32": "0a0b0c0d"}],
    )
    b = build_from_spec(pb.spec, BuildOptions(out=tmp_path / "b1", extra_meta=pb.extra_meta))
    train, test = b.manifest.meta["data"]
    assert (train["resolved"], train["adler32"], train["bytes"]) == (
        True,
        _adler(local),
        local.stat().st_size,
    )
    assert (test["resolved"], test["split"], test["imported"]) == (
        True,
        "test",
        "mlflow dataset input test-sample",
    )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_imported_did_without_rucio_is_recorded_unresolved_and_the_gap_report_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    from hepbundle.builder import BuildOptions, build_from_spec
    from hepbundle.importers import plan_import

    for var in ("RUCIO_CONFIG", "RUCIO_HOME", "VIRTUAL_ENV"):
        monkeypatch.delenv(var, raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    client.create_registered_model("m")
    rid = client.create_run(exp, tags={"dataset": f"{SCOPE}:DAOD.x.root"}).info.run_id
    (tmp_path / "stage").mkdir()
    (tmp_path / "stage" / "model.onnx").write_bytes(b"onnx")
    client.log_artifacts(rid, str(tmp_path / "stage"), artifact_path="model")
    client.create_model_version("m", source=f"runs:/{rid}/model", run_id=rid)
    (pb,) = plan_import("mlflow", uri).bundles
    assert "Rucio DIDs not resolved (no Rucio server configured" in pb.gap_notes()["data"]
    r = CliRunner().invoke(main, ["import", "mlflow", uri, "--dry-run"])
    assert "provenance note: data: Rucio DIDs not resolved" in r.output, r.output
    b = build_from_spec(pb.spec, BuildOptions(out=tmp_path / "b", extra_meta=pb.extra_meta))
    (ref,) = b.manifest.meta["data"]
    assert ref["resolved"] is False and "no Rucio server configured" in ref["reason"]
