"""Provenance captured at build time from a real git repository and a real (numpy) training run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hepbundle
from hepbundle.digest import sha256_bytes
from hepbundle.errors import BuildError, SpecError
from hepbundle.spec import validate

from .provenance_fixtures import TRAIN_PY, git, make_trained_repo


@pytest.fixture
def trained_repo(tmp_path: Path) -> Path:
    return make_trained_repo(tmp_path)


def test_every_field_recorded_without_manual_entry(trained_repo: Path, tmp_path: Path) -> None:
    b = hepbundle.build(trained_repo, tmp_path / "out")
    m: dict[str, Any] = json.loads((b.root / "hepbundle.json").read_text())
    validate(m, "manifest.schema.json")
    code = m["provenance"]["code"]
    assert code["commit"] == git(trained_repo, "rev-parse", "HEAD")
    assert code["remote"] == "https://gitlab.cern.ch/atlas/toy-lr.git"  # token stripped
    assert "s3cret" not in (b.root / "hepbundle.json").read_text()
    assert (code["branch"], code["tags"], code["dirty"]) == ("main", ["v1.0.0"], False)
    assert code["command"] == "python train.py --epochs 50 --lr 0.5"
    assert code["entryPoint"] == "train.py"
    env = m["provenance"]["environment"]
    lock = (b.root / env["lock"]["path"]).read_text()
    assert f"numpy=={np.__version__}" in lock and "record-sha256:" in lock
    assert env["lock"]["sha256"] == sha256_bytes(lock.encode())
    assert env["frameworks"]["numpy"] == np.__version__
    assert env["host"]["python"] == f"{sys.version_info.major}.{sys.version_info.minor}." + str(
        sys.version_info.micro
    )
    assert env["container"] == {
        "image": "gitlab-registry.cern.ch/atlas/ml-base:2.1",
        "digest": "sha256:" + "ab" * 32,
    }
    assert "cuda" in env
    tr = m["provenance"]["training"]
    assert tr["seeds"] == {"numpy": 20240917}
    assert tr["start"] <= tr["end"] and tr["durationSeconds"] >= 0
    assert tr["hardware"]["cpus"] >= 1 and tr["source"] == {"record": "training.json"}
    assert m["hyperparameters"] == {"epochs": 50, "lr": 0.5, "optimizer": "gd"}
    metrics = {(r["name"], r["split"]): r["value"] for r in m["metrics"]}
    assert metrics[("accuracy", "test")] > 0.8
    assert ("loss", "train") in metrics
    npz, rucio, od = m["data"]
    assert npz["sha256"] == sha256_bytes((trained_repo / "data/train.npz").read_bytes())
    assert npz["record"]["output"]["sha256"] == npz["sha256"]  # embedded verbatim
    assert npz["arrays"] == {
        "x": {"shape": [400, 3], "dtype": "<f8"},
        "y": {"shape": [400], "dtype": "<f8"},
    }
    assert (rucio["scope"], rucio["resolved"]) == ("mc23_13p6TeV", False)
    assert "no Rucio server configured" in rucio["reason"]
    assert od["uri"] == "https://doi.org/10.7483/OPENDATA.CMS.A342.9982"
    assert "provenance/dirty.patch" not in {f.path for f in b.manifest.files}
    assert b.verify().ok


def test_dirty_tree_refused_then_packed_with_allow_dirty(
    trained_repo: Path, tmp_path: Path
) -> None:
    (trained_repo / "train.py").write_text(TRAIN_PY.replace("seed = 20240917", "seed = 1"))
    (trained_repo / "notes.txt").write_text("untracked but part of the run\n")
    with pytest.raises(
        BuildError, match=r"uncommitted changes \(.*train\.py.*notes\.txt.*--allow-dirty"
    ):
        hepbundle.build(trained_repo, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    b = hepbundle.build(trained_repo, tmp_path / "out", allow_dirty=True)
    code = b.manifest.meta["provenance"]["code"]
    assert code["dirty"] is True
    patch = b.path("provenance/dirty.patch").read_bytes()
    assert code["patch"]["sha256"] == sha256_bytes(patch)
    assert b"+seed = 1\n" in patch and b"+untracked but part of the run" in patch
    # the packed diff really reproduces the tree: apply it to a clean clone of the commit
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(trained_repo), str(clone))
    subprocess.run(["git", "apply", "-"], cwd=clone, input=patch, check=True)
    assert (clone / "train.py").read_text() == (trained_repo / "train.py").read_text()
    assert (clone / "notes.txt").read_text() == "untracked but part of the run\n"


@pytest.mark.parametrize(
    ("code", "error", "message"),
    [
        (
            "code:\n  path: nowhere\n",
            SpecError,
            r"hepbundle.yaml:\d+: code.path: .*nowhere is not a directory",
        ),
        ("code:\n  path: sub\n", SpecError, r"code.path: .*sub is not inside a git checkout"),
        ("code:\n  command: python x.py\n", SpecError, r":\d+: code: .*(path|repository)"),
        (
            "code:\n  repository: https://x\n  commit: zz\n",
            SpecError,
            r"code.commit: 'zz' is invalid",
        ),
        (
            "code:\n  path: repo\n  commit: abcdef0\n",
            SpecError,
            r"code.commit: abcdef0 does not match",
        ),
        ("code:\n  path: empty\n", BuildError, r"has no commit yet"),
    ],
)
def test_code_pin_errors(tmp_path: Path, code: str, error: type[Exception], message: str) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("repo", "empty"):
        (tmp_path / name).mkdir()
        git(tmp_path / name, "init", "-q")
    git(
        tmp_path / "repo",
        "-c",
        "user.email=a@b",
        "-c",
        "user.name=a",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    )
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    spec = tmp_path / "hepbundle.yaml"
    spec.write_text("name: atlas/x\nversion: 1.0.0\nfiles: [{path: m.onnx}]\n" + code)
    with pytest.raises(error, match=message):
        hepbundle.build(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_declared_code_and_given_lock(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    (tmp_path / "env.lock").write_text(
        "torch==2.3.1 --hash=sha256:" + "0" * 64 + "\nnumpy==1.26.4\n"
    )
    spec = tmp_path / "hepbundle.yaml"
    spec.write_text(
        textwrap.dedent(
            """\
            name: atlas/x
            version: 1.0.0
            files: [{path: m.onnx}]
            code:
              repository: https://gitlab.cern.ch/atlas/x.git
              commit: 0123456789abcdef0123456789abcdef01234567
              command: python -m tauid.train
            environment:
              lock: env.lock
            """
        )
    )
    b = hepbundle.build(spec, tmp_path / "out")
    prov = b.manifest.meta["provenance"]
    assert prov["code"]["declared"] is True and prov["code"]["entryPoint"] == "tauid.train"
    lock = prov["environment"]["lock"]
    assert (lock["format"], lock["packages"], lock["source"]) == ("pip-requirements", 2, "env.lock")
    assert prov["environment"]["frameworks"] == {"torch": "2.3.1", "numpy": "1.26.4"}
    assert (
        b.path("provenance/environment.lock").read_bytes() == (tmp_path / "env.lock").read_bytes()
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ("  lock: missing.lock\n", r":\d+: environment.lock: cannot read"),
        (
            "  container: {image: x, digest: sha256:abc}\n",
            r"environment.container: digest 'sha256:abc'",
        ),
        ("  capture: conda\n", r"environment.capture: 'conda' is not one of pip"),
        ("  lok: x\n", r"environment.lok: unknown key \(did you mean 'lock'"),
        # what only an importer sets: a lock from the store, with the store's env files
        ("  imported: mlflow\n", r"environment: 'lock' is a dependency of 'imported'"),
        ("  lock: m.onnx\n  conda: c.yaml\n", r"'imported' is a dependency of 'conda'"),
        (
            "  lock: m.onnx\n  imported: mlflow\n  conda: c.yaml\n",
            r":\d+: environment.conda: conda environment file .*c.yaml does not exist",
        ),
    ],
)
def test_environment_errors(tmp_path: Path, env: str, message: str) -> None:
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    spec = tmp_path / "hepbundle.yaml"
    spec.write_text("name: atlas/x\nversion: 1.0.0\nfiles: [{path: m.onnx}]\nenvironment:\n" + env)
    with pytest.raises(SpecError, match=message):
        hepbundle.build(spec, tmp_path / "out")


def test_training_record_errors_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    (tmp_path / "run.json").write_text(json.dumps({"start": "yesterday"}))
    spec = tmp_path / "hepbundle.yaml"
    base = "name: atlas/x\nversion: 1.0.0\nfiles: [{path: m.onnx}]\ntraining:\n"
    spec.write_text(base + "  record: nope.json\n")
    with pytest.raises(
        SpecError, match=r"hepbundle.yaml:5: training.record: .*nope.json does not exist"
    ):
        hepbundle.build(spec, tmp_path / "out")
    spec.write_text(base + "  record: run.json\n")
    with pytest.raises(SpecError, match=r"run.json: start: 'yesterday' is invalid"):
        hepbundle.build(spec, tmp_path / "out")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_from_mlflow_fills_the_training_record(tmp_path: Path) -> None:
    """A real local MLflow store (SQLite, written by mlflow itself): --from-mlflow RUN_ID fills
    hyperparameters, seeds, metrics with their splits, and the run's start/end."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as run:
            mlflow.log_params({"lr": 0.01, "epochs": 30, "seed": 42, "optimizer": "adam"})
            mlflow.log_metric("test_auc", 0.91)
            mlflow.log_metric("val/loss", 0.25)
            mlflow.log_metric("train_loss", 0.5, step=0)
            mlflow.log_metric("train_loss", 0.2, step=1)  # the latest value is the one recorded
            mlflow.set_tag("mlflow.source.git.commit", "0123abc")
    finally:
        mlflow.set_tracking_uri("")
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    spec = tmp_path / "hepbundle.yaml"
    spec.write_text(
        "name: atlas/x\nversion: 1.0.0\nfiles: [{path: m.onnx}]\nmetrics: {auc: 0.9}\n"
        "training:\n  mlflow: {tracking_uri: mlflow.db}\n  hardware: {gpus: [A100]}\n"
    )
    b = hepbundle.build(spec, tmp_path / "out", from_mlflow=run.info.run_id)
    tr = b.manifest.meta["provenance"]["training"]
    assert tr["seeds"] == {"seed": 42} and tr["hardware"] == {"gpus": ["A100"]}
    assert tr["start"] <= tr["end"]
    src = tr["source"]["mlflow"]
    assert (src["run_id"], src["git_commit"]) == (run.info.run_id, "0123abc")
    assert src["tracking_uri"] == uri
    assert b.manifest.meta["hyperparameters"] == {"epochs": 30, "lr": 0.01, "optimizer": "adam"}
    assert {(m["name"], m.get("split"), m["value"]) for m in b.manifest.meta["metrics"]} == {
        ("auc", None, 0.9),
        ("auc", "test", 0.91),
        ("loss", "validation", 0.25),
        ("loss", "train", 0.2),
    }
    with pytest.raises(SpecError, match=r":6: training.mlflow: cannot read run nope"):
        hepbundle.build(spec, tmp_path / "out2", from_mlflow="nope")


def test_captured_lock_says_whose_environment_it_is(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`capture: pip` locks the interpreter running the build, which may not be the training's
    (issue 14: a numpy-only training got TensorFlow in its lock): the build says so, naming the
    interpreter; a training environment named by site_packages (or a lock) gets no caveat."""
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    spec = tmp_path / "hepbundle.yaml"
    base = "name: atlas/x\nversion: 1.0.0\nfiles: [{path: m.onnx}]\nenvironment:\n"
    spec.write_text(base + "  capture: pip\n")
    with caplog.at_level("WARNING", logger="hepbundle"):
        b = hepbundle.build(spec, tmp_path / "out")
    (caveat,) = [r.getMessage() for r in caplog.records if "environment lock" in r.getMessage()]
    packages = b.manifest.meta["provenance"]["environment"]["lock"]["packages"]
    assert caveat.startswith(
        f"environment lock captured from the interpreter running the build ({sys.prefix}, "
        f"{packages} packages), which may not be the training's"
    )
    assert "environment.site_packages" in caveat
    site = tmp_path / "train-venv" / "site-packages"
    site.mkdir(parents=True)
    spec.write_text(base + f"  site_packages: {site}\n")
    caplog.clear()
    with caplog.at_level("WARNING", logger="hepbundle"):
        b = hepbundle.build(spec, tmp_path / "out2")
    assert not [r for r in caplog.records if "environment lock" in r.getMessage()]
    assert b.manifest.meta["provenance"]["environment"]["lock"]["source"] == f"captured: {site}"
