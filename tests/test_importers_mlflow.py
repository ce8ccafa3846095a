"""The mlflow importer on real MLflow stores (SQLite backend, and the legacy file store that
MLflow 3 keeps in maintenance mode) made with mlflow's own client: two registered models, three
versions, an alias, params, metrics and artifacts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.importers import plan_import
from hepbundle.importers.run import ImportOptions, run_import
from hepbundle.repository.catalog import read_name_catalog
from hepbundle.signing import KeySigner

from .import_fixtures import policy_env

__all__ = ["policy_env"]

# mlflow 3 uses SQLAlchemy options that SQLAlchemy 2.1 deprecates (third-party, not ours)
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="session", params=["sqlite", "file"])
def mlflow_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """``tau-id`` v1, v2 (alias champion) and ``jet-tagger`` v1, each from its own run."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp(f"mlflow-{request.param}")
    if request.param == "sqlite":
        uri = f"sqlite:///{root / 'mlflow.db'}"
    else:
        uri = (root / "mlruns").as_uri()
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # what the importer sets to read one
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("tau", artifact_location=(root / "artifacts").as_uri())
    client.create_registered_model("tau-id", tags={"license": "Apache-2.0"}, description="Tau ID")
    client.create_registered_model("jet-tagger")
    runs = {}
    for model, version, lr in (("tau-id", 1, 0.01), ("tau-id", 2, 0.005), ("jet-tagger", 1, 0.1)):
        run = client.create_run(
            exp,
            tags={
                "mlflow.user": "jdoe",
                "mlflow.source.git.commit": f"{version:x}" * 40,
                "mlflow.source.git.repoURL": "https://gitlab.cern.ch/atlas/tau-training",
                "campaign": "mc23",
            },
        )
        rid = run.info.run_id
        client.log_param(rid, "lr", str(lr))
        client.log_param(rid, "seed", "42")
        client.log_metric(rid, "test_auc", 0.9 + version / 100)
        stage = root / "stage" / rid
        (stage / "model").mkdir(parents=True)
        (stage / "model" / "model.onnx").write_bytes(f"{model}-{version}".encode() * 100)
        (stage / "plots").mkdir()
        (stage / "plots" / "roc.png").write_bytes(b"\x89PNG" + os.urandom(64))
        client.log_artifacts(rid, str(stage / "model"), artifact_path="model")
        client.log_artifacts(rid, str(stage / "plots"), artifact_path="plots")
        client.set_terminated(rid)
        client.create_model_version(model, source=f"runs:/{rid}/model", run_id=rid)
        runs[(model, version)] = rid
    client.set_registered_model_alias("tau-id", "champion", "2")
    return {"uri": uri, "root": root, "runs": runs}


def test_plan_from_registered_versions(mlflow_store: dict[str, Any]) -> None:
    plan = plan_import("mlflow", mlflow_store["uri"])
    assert [b.ref for b in plan.bundles] == [
        "mlflow/jet-tagger@1.0.0",
        "mlflow/tau-id@1.0.0",
        "mlflow/tau-id@2.0.0",
    ]
    by = {b.ref: b for b in plan.bundles}
    v2 = by["mlflow/tau-id@2.0.0"]
    assert v2.aliases == ("champion",) and by["mlflow/tau-id@1.0.0"].aliases == ()
    assert {(f.dest, f.role) for f in v2.files} == {
        ("model/model.onnx", "model"),
        ("artifacts/plots/roc.png", "report"),
    }
    assert v2.gaps() == dict.fromkeys(("code", "data", "metrics", "authors", "license"), True) | {
        "data": False,
        "io": False,  # the fixture's models carry no MLmodel, hence no model signature
        "validity": False,  # nor a validity tag
        "environment": False,  # nor the requirements.txt/conda.yaml MLflow logs with a model
    }
    assert by["mlflow/jet-tagger@1.0.0"].gaps()["license"] is False
    rec = v2.extra_meta["extra"]["import"]["mlflow"]
    assert rec["run_id"] == mlflow_store["runs"][("tau-id", 2)]
    assert rec["tags"] == {"campaign": "mc23"} and rec["params"] == {"lr": "0.005", "seed": "42"}


def test_import_publishes_with_provenance_and_alias(
    mlflow_store: dict[str, Any], tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    repo = tmp_path / "repo"
    m = tmp_path / "map.yaml"
    m.write_text("namespace: atlas\nnames: {jet-tagger: atlas/dl1-jet}\n")
    plan = plan_import("mlflow", mlflow_store["uri"], m)
    report = run_import(plan, ImportOptions(repo=repo, signer=KeySigner(ec_key[0])))
    assert sorted(o.status for o in report.outcomes) == ["published"] * 3
    b = hepbundle.resolve("atlas/tau-id@champion", repos=[repo], verify="full")
    assert b.version == "2.0.0"
    assert b.path("model/model.onnx").read_bytes() == b"tau-id-2" * 100
    meta = b.manifest.meta
    assert meta["provenance"]["code"]["commit"] == "2" * 40
    assert (
        meta["provenance"]["training"]["source"]["mlflow"]["run_id"]
        == mlflow_store["runs"][("tau-id", 2)]
    )
    assert {"name": "auc", "value": 0.92, "split": "test"} in meta["metrics"]
    assert meta["hyperparameters"]["lr"] == 0.005
    assert meta["authors"] == [{"name": "jdoe"}] and meta["license"] == "Apache-2.0"
    assert read_name_catalog(repo, "atlas/dl1-jet").versions["1.0.0"]
    again = run_import(plan_import("mlflow", mlflow_store["uri"], m), ImportOptions(repo=repo))
    assert sorted(o.status for o in again.outcomes) == ["unchanged"] * 3


def test_missing_store_is_an_error_not_a_new_store(tmp_path: Path) -> None:
    from hepbundle.errors import SpecError

    for source in (tmp_path / "none.db", tmp_path / "mlruns"):
        with pytest.raises(SpecError, match="does not exist"):
            plan_import("mlflow", source)
        assert not source.exists(), "the client would have created it"


def test_moved_artifacts_are_refused_never_published_empty(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    """A registered version whose artifacts were moved away (or whose model directory is empty)
    is refused in the plan with the reason, and the real import publishes the others and exits
    non-zero naming it — never a signed, immutable, empty bundle."""
    import json
    import shutil

    from click.testing import CliRunner
    from mlflow.tracking import MlflowClient

    from hepbundle.cli import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("tau", artifact_location=(tmp_path / "artifacts").as_uri())
    client.create_registered_model("tau-id")
    run_ids = []
    for version in (1, 2, 3):
        rid = client.create_run(exp, tags={"mlflow.user": "jdoe"}).info.run_id
        stage = tmp_path / "stage" / rid / "model"
        stage.mkdir(parents=True)
        (stage / "model.onnx").write_bytes(b"tau-%d" % version * 100)
        client.log_artifacts(rid, str(stage), artifact_path="model")
        client.set_terminated(rid)
        client.create_model_version("tau-id", source=f"runs:/{rid}/model", run_id=rid)
        run_ids.append(rid)
    artifacts = tmp_path / "artifacts"
    # v1: the run's whole artifact directory moved to another disk; v3: model files deleted
    shutil.move(str(next(artifacts.rglob(run_ids[0]))), str(tmp_path / "moved"))
    for f in (next(artifacts.rglob(run_ids[2])) / "artifacts" / "model").iterdir():
        f.unlink()

    plan = plan_import("mlflow", uri)
    assert [b.ref for b in plan.bundles] == ["mlflow/tau-id@2.0.0"]
    assert [r.what for r in plan.refused] == ["tau-id v1", "tau-id v3"]
    assert "does not exist" in plan.refused[0].reason and "is empty" in plan.refused[1].reason
    assert all(r.reason.startswith("refused: no payload: ") for r in plan.refused)

    runner = CliRunner()
    dry = runner.invoke(main, ["import", "mlflow", uri, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "refused versions (2, not published):" in dry.output
    assert "tau-id v1: refused: no payload:" in dry.output
    dry_json = json.loads(
        runner.invoke(main, ["import", "mlflow", uri, "--dry-run", "--json"]).output
    )
    assert [r["what"] for r in dry_json["refused"]] == ["tau-id v1", "tau-id v3"]

    repo = tmp_path / "repo"
    r = runner.invoke(main, ["import", "mlflow", uri, "--repo", str(repo), "--key", str(ec_key[0])])
    assert r.exit_code == 2, r.output
    assert "2 version(s) refused, not published: tau-id v1, tau-id v3" in r.output
    assert sorted(read_name_catalog(repo, "mlflow/tau-id").versions) == ["2.0.0"]


def test_run_import_refuses_a_hand_made_empty_bundle(tmp_path: Path) -> None:
    from dataclasses import replace

    from hepbundle.errors import SpecError
    from hepbundle.importers.base import ImportPlan, make_bundle

    empty = make_bundle(
        name="mlflow/x", version="1.0.0", files=[], meta={}, origin="x v1", source_root=tmp_path
    )
    plan = ImportPlan("mlflow", "hand-made", (empty,))
    with pytest.raises(SpecError, match="no file to import; an empty bundle is never published"):
        run_import(plan, ImportOptions(repo=tmp_path / "repo", allow_unsigned=True))
    assert not (tmp_path / "repo").exists()
    moved = replace(plan).without_empty()
    assert moved.bundles == () and moved.refused[0].what == "mlflow/x@1.0.0 [x v1]"


# mlflow's save_model warns about its own pyfunc type hints (third-party, not ours)
@pytest.mark.filterwarnings("ignore:.*Any type hint:UserWarning")
def test_mlflow_model_signature_becomes_the_io_signature(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    """A real MLflow ONNX-flavour model saved with a column-based input signature and a tensor
    output: the importer records it (the pyfunc's interface, ``model/MLmodel``), and the gap
    report names what MLflow does not know."""
    import sys

    import mlflow.onnx
    import numpy as np
    import onnx
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    sys.path.insert(0, str(Path(__file__).parents[1] / "tools"))
    from make_examples import tiny_onnx

    tiny_onnx(tmp_path / "tagger.onnx", n_in=3, n_out=2)
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", "pt"), ColSpec("double", "eta"), ColSpec("float", "m")]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1, 2), "probs")]),
    )
    mlflow.onnx.save_model(onnx.load(tmp_path / "tagger.onnx"), tmp_path / "m", signature=signature)
    uri = _register(tmp_path, "tagger", tmp_path / "m")

    (pb,) = plan_import("mlflow", uri).bundles
    assert pb.gaps()["io"] is True
    assert pb.gap_notes()["io"] == (
        "3 inputs, 1 outputs from the MLflow model signature; missing: units, normalisation, "
        "allowed ranges, output classes"
    )
    b = _publish_one(uri, tmp_path / "repo", ec_key[0])
    assert b.manifest.meta["io"] == {
        "model": "model/MLmodel",
        "framework": "mlflow",
        "inputs": [
            {"name": "pt", "dtype": "float64", "shape": ["batch"]},
            {"name": "eta", "dtype": "float64", "shape": ["batch"]},
            {"name": "m", "dtype": "float32", "shape": ["batch"]},
        ],
        "outputs": [{"name": "probs", "dtype": "float32", "shape": ["batch", 2]}],
    }
    x = np.ones(4)
    assert b.io.check({"pt": x, "eta": x, "m": x.astype(np.float32)}).ok
    assert b.io.check({"pt": x, "eta": x, "m": x}).problems == [
        "input m: dtype float64, the model takes float32"
    ]


def _publish_one(uri: str, repo: Path, key: Path) -> hepbundle.Bundle:
    """Import the store ``uri``'s one model version into ``repo``, signed; the bundle."""
    report = run_import(plan_import("mlflow", uri), ImportOptions(repo=repo, signer=KeySigner(key)))
    assert [o.status for o in report.outcomes] == ["published"]
    return hepbundle.resolve(report.outcomes[0].ref, repos=[repo])


def _register(tmp_path: Path, name: str, model_dir: Path) -> str:
    """A SQLite store in ``tmp_path`` whose registered model ``name`` has one version: the
    directory ``model_dir`` (a saved MLflow model) logged as the run's ``model`` artifacts."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("tag", artifact_location=(tmp_path / "artifacts").as_uri())
    client.create_registered_model(name)
    rid = client.create_run(exp).info.run_id
    client.log_artifacts(rid, str(model_dir), artifact_path="model")
    client.set_terminated(rid)
    client.create_model_version(name, source=f"runs:/{rid}/model", run_id=rid)
    return uri


@pytest.mark.filterwarnings("ignore:.*Any type hint:UserWarning")
def test_model_environment_files_become_the_lock_without_this_hosts_facts(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model MLflow saved with its ``requirements.txt``, ``conda.yaml`` and
    ``python_env.yaml`` (edited to say Python 3.9.18, as trained on another machine): the
    requirements are the packed lock byte for byte, the conda and python_env contents are
    recorded as written, and nothing of the machine running the migration (its Python, OS,
    machine, CUDA) appears; the gap report finds the environment, ``show`` and ``reproduce
    --check`` say the host is unknown."""
    import json
    import platform
    import sys

    import mlflow.onnx
    import onnx
    import yaml

    from hepbundle.digest import sha256_bytes
    from hepbundle.provenance.slsa import statement
    from hepbundle.reproduce import check

    sys.path.insert(0, str(Path(__file__).parents[1] / "tools"))
    from make_examples import tiny_onnx

    tiny_onnx(tmp_path / "tagger.onnx", n_in=3, n_out=2)
    m = tmp_path / "m"
    mlflow.onnx.save_model(onnx.load(tmp_path / "tagger.onnx"), m)
    here = platform.python_version()
    for name in ("conda.yaml", "python_env.yaml"):  # MLflow wrote this interpreter's version
        text = (m / name).read_text()
        assert here in text
        (m / name).write_text(text.replace(here, "3.9.18"))
    monkeypatch.setenv("CUDA_VERSION", "12.4.1")  # this host's CUDA: never the training's
    uri = _register(tmp_path, "tagger", m)

    (pb,) = plan_import("mlflow", uri).bundles
    assert pb.gaps()["environment"] is True
    assert pb.gap_notes()["environment"] == (
        "imported from the model's requirements.txt, conda.yaml, python_env.yaml (Python "
        "3.9.18): the training host (OS, machine, CUDA) is unknown"
    )
    repo = tmp_path / "repo"
    b = _publish_one(uri, repo, ec_key[0])  # resolved: the manifest schema admits the record
    env = b.manifest.meta["provenance"]["environment"]
    requirements = (m / "requirements.txt").read_bytes()
    assert b.path("provenance/environment.lock").read_bytes() == requirements
    pins = dict(line.split("==") for line in requirements.decode().split())
    assert env["lock"] == {
        "path": "provenance/environment.lock",
        "sha256": sha256_bytes(requirements),
        "format": "pip-requirements",
        "source": "mlflow:requirements.txt",
        "packages": len(pins),
    }
    assert env["frameworks"] == {
        k: v for k, v in pins.items() if k in ("mlflow", "numpy", "onnx", "onnxruntime")
    }
    conda = yaml.safe_load((m / "conda.yaml").read_text())
    assert env["conda"] == {
        "sha256": sha256_bytes((m / "conda.yaml").read_bytes()),
        "name": conda["name"],
        "python": "3.9.18",
        "channels": conda["channels"],
        "dependencies": conda["dependencies"],
    }
    pyenv = yaml.safe_load((m / "python_env.yaml").read_text())
    assert env["pythonEnv"] == {
        "sha256": sha256_bytes((m / "python_env.yaml").read_bytes()),
        "python": "3.9.18",
        "buildDependencies": pyenv["build_dependencies"],
        "dependencies": pyenv["dependencies"],
    }
    assert (env["imported"], env["python"]) == ("mlflow", "3.9.18")
    assert set(env) == {"imported", "python", "lock", "frameworks", "conda", "pythonEnv"}
    text = json.dumps(env)
    for fact in (here, platform.release(), platform.system(), sys.prefix, "12.4.1"):
        assert fact not in text, fact

    internal = statement(b.manifest, b.manifest_digest)["predicate"]["buildDefinition"][
        "internalParameters"
    ]
    assert (internal["environment.imported"], internal["environment.python"]) == (
        "mlflow", "3.9.18"
    )  # fmt: skip
    assert "environment.host" not in internal and "environment.cuda" not in internal

    item = check(b).item("environment")
    assert item is not None and item.status == "ok"
    assert item.detail.endswith(
        "imported from mlflow:requirements.txt: the pip environment can be recreated from it "
        "(Python 3.9.18, training host OS, machine and CUDA unknown)"
    )
    shown = CliRunner().invoke(main, ["show", "mlflow/tagger@1.0.0", "--repo", str(repo)])
    assert "  env from  mlflow:requirements.txt (Python 3.9.18; training host unknown)" in (
        shown.output
    ), shown.output


def test_model_environment_without_requirements_or_with_a_broken_file(tmp_path: Path) -> None:
    """Only a ``conda.yaml``: it is the lock; a ``python_env.yaml`` that is no YAML mapping is
    left out and the note says so; no environment file: no section, the gap stays missing."""
    from hepbundle.importers.mlflow import _model_environment

    (tmp_path / "conda.yaml").write_text("channels: [conda-forge]\ndependencies: [python=3.10.4]\n")
    (tmp_path / "python_env.yaml").write_text("- not a mapping\n")
    dests = {"model/conda.yaml", "model/python_env.yaml"}
    section, note = _model_environment(tmp_path, dests)
    assert section == {
        "conda": str(tmp_path / "conda.yaml"),
        "lock": str(tmp_path / "conda.yaml"),
        "imported": "mlflow",
    }
    assert note == (
        "imported from the model's conda.yaml (Python 3.10.4): the training host (OS, machine, "
        f"CUDA) is unknown; python_env.yaml left out: MLflow python_env.yaml "
        f"{tmp_path / 'python_env.yaml'}: not a YAML mapping"
    )
    assert _model_environment(tmp_path, {"model/model.onnx"}) == ({}, "")


def test_model_environment_files_with_values_json_cannot_carry(tmp_path: Path) -> None:
    """A conda.yaml's unquoted date is recorded as the text written; a python_env.yaml holding a
    YAML set (no JSON value) is left out with a one-line note instead of breaking the build's
    manifest write with a TypeError."""
    from hepbundle.importers.mlflow import _model_environment
    from hepbundle.provenance import imported_env_file

    conda = tmp_path / "conda.yaml"
    conda.write_text("channels: [conda-forge]\ndependencies: [python=3.10.4, 2020-01-01]\n")
    assert imported_env_file(conda, "conda")["dependencies"] == ["python=3.10.4", "2020-01-01"]
    (tmp_path / "python_env.yaml").write_text("python: 3.10.4\ndependencies: !!set {numpy: null}\n")
    section, note = _model_environment(tmp_path, {"model/conda.yaml", "model/python_env.yaml"})
    assert "python_env" not in section and section["lock"] == str(conda), section
    assert note.endswith(
        f"python_env.yaml left out: MLflow python_env.yaml {tmp_path / 'python_env.yaml'}: "
        "holds a value a manifest cannot record (Object of type set is not JSON serializable)"
    ), note


def test_metadata_changed_after_publishing_is_reported_not_unchanged(
    tmp_path: Path, ec_key: tuple[Path, Path], policy_env: Path
) -> None:
    """A registered model's description edited, a run tag set and a metric logged after the
    import: the re-run says which fields changed (``metadata-changed``), writes nothing, and
    an untouched version stays ``unchanged``."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("tau", artifact_location=(tmp_path / "artifacts").as_uri())
    client.create_registered_model("tau-id")
    rids = []
    for v in (1, 2):
        rid = client.create_run(exp, tags={"mlflow.user": "jdoe", "campaign": "mc23"}).info.run_id
        client.log_metric(rid, "test_auc", 0.9)
        stage = tmp_path / "stage" / str(v)
        stage.mkdir(parents=True)
        (stage / "model.onnx").write_bytes(b"onnx%d" % v * 100)
        client.log_artifacts(rid, str(stage), artifact_path="model")
        client.set_terminated(rid)
        client.create_model_version("tau-id", source=f"runs:/{rid}/model", run_id=rid,
                                    description=f"tau id v{v}")  # fmt: skip
        rids.append(rid)
    repo = tmp_path / "repo"
    opts = ImportOptions(repo=repo, signer=KeySigner(ec_key[0]))
    assert run_import(plan_import("mlflow", uri), opts).count("published") == 2
    client.update_model_version("tau-id", "2", description="tau id v2, recalibrated")
    client.set_tag(rids[1], "campaign", "mc23e")
    again = run_import(plan_import("mlflow", uri), opts)
    status = {o.ref: o for o in again.outcomes}
    assert status["mlflow/tau-id@1.0.0"].status == "unchanged"
    changed = status["mlflow/tau-id@2.0.0"]
    assert changed.status == "metadata-changed"
    assert "summary, extra.import.mlflow changed since it was published" in changed.detail
    assert again.to_json()["metadataChanged"] == 1 and again.count("published") == 0
    b = hepbundle.resolve("mlflow/tau-id@2.0.0", repos=[repo])
    assert b.manifest.meta["summary"] == "tau id v2"  # the published version keeps what it had


def test_artifact_links_leaving_the_store_are_refused(tmp_path: Path) -> None:
    """The artifact directories go through the same scan as a GroupData area: a link placed in
    a run's artifacts that leaves the store, or dangles, is refused and listed, never read."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("tau", artifact_location=(tmp_path / "artifacts").as_uri())
    client.create_registered_model("tau-id")
    rid = client.create_run(exp).info.run_id
    stage = tmp_path / "stage"
    (stage / "model").mkdir(parents=True)
    (stage / "model" / "model.onnx").write_bytes(b"onnx" * 100)
    client.log_artifacts(rid, str(stage / "model"), artifact_path="model")
    client.create_model_version("tau-id", source=f"runs:/{rid}/model", run_id=rid)
    (tmp_path / "private.key").write_text("secret\n")
    run_dir = next((tmp_path / "artifacts").rglob(rid)) / "artifacts"
    (run_dir / "model" / "key.pem").symlink_to(tmp_path / "private.key")
    (run_dir / "notes.txt").symlink_to("gone.txt")
    (run_dir / "plots").mkdir()
    (run_dir / "plots" / "roc.png").write_bytes(b"\x89PNG")
    (run_dir / "model" / "roc.png").symlink_to("../plots/roc.png")  # inside the run: read
    plan = plan_import("mlflow", uri)
    reasons = {s.what: s.reason for s in plan.skipped}
    assert reasons["tau-id v1: model/key.pem"] == (
        f"refused: symlink leaving the store (to {tmp_path / 'private.key'})"
    )
    assert reasons["tau-id v1: artifacts/notes.txt"] == "refused: dangling symlink (to gone.txt)"
    # the version holding them is refused whole: published without them it would be
    # incomplete for good (a model version's artifacts are taken whole: no skip:)
    assert plan.bundles == ()
    assert [(r.what, r.reason) for r in plan.refused] == [
        (
            "tau-id v1",
            "refused: 2 artifact(s) cannot be imported (model/key.pem: symlink leaving the "
            f"store (to {tmp_path / 'private.key'})); a version's artifacts are taken whole: "
            "fix them in the store and re-run",
        )
    ]
    (run_dir / "model" / "key.pem").unlink()
    (run_dir / "notes.txt").unlink()
    [b] = plan_import("mlflow", uri).bundles
    assert [f.dest for f in b.files] == [
        "model/model.onnx",
        "model/roc.png",
        "artifacts/plots/roc.png",
    ]


def test_a_validity_tag_becomes_the_scope_and_a_bad_one_refuses_the_version(
    tmp_path: Path,
) -> None:
    """The model version's (else the registered model's) ``validity`` tag, JSON or YAML text,
    is the bundle's validity scope; one that is not a scope refuses that version only."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("t", artifact_location=(tmp_path / "artifacts").as_uri())
    client.create_registered_model("tau-id", tags={"validity": "releases: ['Athena 25.0.*']"})
    for version in (1, 2, 3):
        rid = client.create_run(exp).info.run_id
        stage = tmp_path / "stage" / rid
        stage.mkdir(parents=True)
        (stage / "model.onnx").write_bytes(f"v{version}".encode() * 100)
        client.log_artifacts(rid, str(stage), artifact_path="model")
        client.set_terminated(rid)
        tags = {
            1: {"validity": '{"runs": [{"first": 100, "last": 199}]}'},
            2: {},  # the registered model's tag
            3: {"validity": "runs: [{first: 9, last: 1}]"},
        }[version]
        client.create_model_version("tau-id", source=f"runs:/{rid}/model", run_id=rid, tags=tags)
    plan = plan_import("mlflow", uri)
    by = {b.ref: b for b in plan.bundles}
    assert sorted(by) == ["mlflow/tau-id@1.0.0", "mlflow/tau-id@2.0.0"]
    assert by["mlflow/tau-id@1.0.0"].spec.sections["validity"] == {
        "runs": [{"first": 100, "last": 199}]
    }
    assert by["mlflow/tau-id@2.0.0"].spec.sections["validity"] == {"releases": ["Athena 25.0.*"]}
    assert by["mlflow/tau-id@1.0.0"].gaps()["validity"]
    (refused,) = plan.refused
    assert refused.what == "tau-id v3" and "last 1 is before first 9" in refused.reason
    assert "MLflow tag validity of tau-id v3" in refused.reason


def test_run_user_source_and_registry_stage_as_the_store_means_them(tmp_path: Path) -> None:
    """A run started in a container (``mlflow.user`` root) from a script (``mlflow.source.name``
    a path) gives no author and no code pin, each with a note saying why, never root and a
    script path as the repository (then ``reproduce --check`` fails); a project run from git
    gives its URL; the registry stage is recorded, and the one version in Production or Staging
    gets the alias ``production``/``staging`` (two in Production: none, said in the plan)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("tau", artifact_location=(tmp_path / "artifacts").as_uri())
    commit = "3" * 40
    runs = {
        ("tau-id", 1): {"mlflow.user": "root", "mlflow.source.name": "/home/jdoe/train.py",
                        "mlflow.source.git.commit": commit},
        ("tau-id", 2): {"mlflow.user": "jdoe",
                        "mlflow.source.name": "https://gitlab.cern.ch/atlas-tau/tau-id.git",
                        "mlflow.source.git.commit": commit},
        ("jet", 1): {"mlflow.user": "jdoe"},
        ("jet", 2): {"mlflow.user": "jdoe"},
    }  # fmt: skip
    for model in ("tau-id", "jet"):
        client.create_registered_model(model)
    for (model, version), tags in runs.items():
        rid = client.create_run(exp, tags=tags).info.run_id
        stage = tmp_path / "stage" / rid / "model"
        stage.mkdir(parents=True)
        (stage / "model.onnx").write_bytes(f"{model}-{version}".encode() * 100)
        client.log_artifacts(rid, str(stage), artifact_path="model")
        client.set_terminated(rid)
        client.create_model_version(model, source=f"runs:/{rid}/model", run_id=rid)
    for model, version, stage_name in (
        ("tau-id", 1, "Production"),
        ("tau-id", 2, "Staging"),
        ("jet", 1, "Production"),
        ("jet", 2, "Production"),
    ):
        client.transition_model_version_stage(model, str(version), stage_name)  # fmt: skip

    plan = plan_import("mlflow", uri)
    by_ref = {b.ref: b for b in plan.bundles}
    v1, v2 = by_ref["mlflow/tau-id@1.0.0"], by_ref["mlflow/tau-id@2.0.0"]
    assert v1.spec.authors == () and "code" not in v1.spec.sections
    assert v1.gap_notes()["authors"] == (
        "mlflow.user is 'root', an account, not a person (kept in extra.import.mlflow.user): "
        "set defaults.authors"
    )
    assert v1.gap_notes()["code"] == (
        "mlflow.source.name is '/home/jdoe/train.py', no repository URL: set defaults.code"
    )
    assert v2.spec.sections["code"] == {
        "repository": "https://gitlab.cern.ch/atlas-tau/tau-id.git", "commit": commit
    }  # fmt: skip
    assert v2.spec.authors == ({"name": "jdoe"},) and "authors" not in v2.gap_notes()
    record = {r: by_ref[r].extra_meta["extra"]["import"]["mlflow"] for r in by_ref}
    assert (record["mlflow/tau-id@1.0.0"]["stage"], record["mlflow/tau-id@1.0.0"]["user"]) == (
        "Production", "root"
    )  # fmt: skip
    assert record["mlflow/jet@2.0.0"]["stage"] == "Production"
    assert (v1.aliases, v2.aliases) == (("production",), ("staging",))
    assert by_ref["mlflow/jet@1.0.0"].aliases == by_ref["mlflow/jet@2.0.0"].aliases == ()
    assert any(
        s.what == "jet" and s.reason.startswith("stage Production on versions 1, 2: no alias")
        for s in plan.skipped
    )
    text = CliRunner().invoke(main, ["import", "mlflow", uri, "--dry-run"]).output
    assert "provenance note: authors: mlflow.user is 'root', an account" in text

    # an artifact name the build refuses (a tab in it) refuses its model version in the plan
    client.create_registered_model("odd")
    rid = client.create_run(exp, tags={"mlflow.user": "jdoe"}).info.run_id
    stage = tmp_path / "stage" / rid / "model"
    stage.mkdir(parents=True)
    (stage / "model.onnx").write_bytes(b"odd" * 100)
    (stage / "notes\tv1.txt").write_bytes(b"tab")
    client.log_artifacts(rid, str(stage), artifact_path="model")
    client.set_terminated(rid)
    client.create_model_version("odd", source=f"runs:/{rid}/model", run_id=rid)
    plan = plan_import("mlflow", uri)
    assert "mlflow/odd@1.0.0" not in {b.ref for b in plan.bundles}
    (refusal,) = [r for r in plan.refused if r.what == "odd v1"]
    assert (
        refusal.reason.startswith(
            "refused: 1 artifact(s) cannot be imported (model/notes\tv1.txt: its bundle path is "
            "refused: path "
        )
        and "contains a NUL or control character" in refusal.reason
    )
