"""Provenance captured at build time from a real git repository and a real (numpy) training run."""

from __future__ import annotations

import json
import shlex
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
from hepbundle.provenance.datarefs import NPZ_RECORD_SUFFIX
from hepbundle.spec import validate

TRAIN_PY = '''\
"""Logistic regression on a toy two-class sample; writes the model and a training record."""
import argparse
import time
from pathlib import Path

import numpy as np

from hepbundle.provenance import write_training_record

ap = argparse.ArgumentParser()
ap.add_argument("--epochs", type=int, default=50)
ap.add_argument("--lr", type=float, default=0.5)
ap.add_argument("--data", default="data/train.npz")
ap.add_argument("--out", default="runs")
args = ap.parse_args()
start = time.time()
seed = 20240917
rng = np.random.default_rng(seed)
d = np.load(args.data)
x, y = d["x"], d["y"]
idx = rng.permutation(len(y))
train, test = idx[: len(y) * 3 // 4], idx[len(y) * 3 // 4 :]
w, b = np.zeros(x.shape[1]), 0.0
for _ in range(args.epochs):
    p = 1 / (1 + np.exp(-(x[train] @ w + b)))
    w -= args.lr * x[train].T @ (p - y[train]) / len(train)
    b -= args.lr * float(np.mean(p - y[train]))
p = 1 / (1 + np.exp(-(x @ w + b)))
loss = float(-np.mean(y[train] * np.log(p[train]) + (1 - y[train]) * np.log(1 - p[train])))
acc = float(np.mean((p[test] > 0.5) == y[test]))
out = Path(args.out)
out.mkdir(exist_ok=True)
np.savez(out / "model.npz", w=w, b=np.array(b))
write_training_record(
    out / "training.json",
    start=start,
    end=time.time(),
    hyperparameters={"epochs": args.epochs, "lr": args.lr, "optimizer": "gd"},
    metrics=[
        {"name": "accuracy", "value": round(acc, 4), "split": "test"},
        {"name": "loss", "value": round(loss, 4), "split": "train"},
    ],
    seeds={"numpy": seed},
)
'''

SPEC = """\
name: atlas/toy-lr
version: 1.0.0
summary: Toy logistic regression trained by a real script
license: Apache-2.0
framework: other
files:
  - path: runs/model.npz
    role: model
model_card: MODEL_CARD.md
code:
  path: .
  command: python train.py --epochs 50 --lr 0.5
environment:
  capture: pip
  container: gitlab-registry.cern.ch/atlas/ml-base:2.1@sha256:{digest}
training:
  record: runs/training.json
data:
  - type: npz
    path: data/train.npz
    split: train
  - type: rucio
    did: mc23_13p6TeV:DAOD_PHYS.37621591._000001.pool.root.1
    bytes: 4823412
    adler32: 0a1b2c3d
  - type: opendata
    doi: 10.7483/OPENDATA.CMS.A342.9982
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def write_npz_with_record(path: Path, rng_seed: int = 7) -> str:
    """A small NPZ and the provenance record our ROOT→NPZ tool leaves beside it."""
    rng = np.random.default_rng(rng_seed)
    x = rng.normal(size=(400, 3))
    y = (x @ np.array([1.5, -2.0, 0.5]) + 0.3 * rng.normal(size=400) > 0).astype(float)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)
    digest = sha256_bytes(path.read_bytes())
    record = {
        "mediaType": "application/vnd.hepbundle.npz-provenance.v1+json",
        "inputs": [{"path": "/eos/atlas/toy.root", "adler32": "01020304"}],
        "output": {"path": path.name, "size": path.stat().st_size, "sha256": digest},
    }
    path.with_name(path.name + NPZ_RECORD_SUFFIX).write_text(json.dumps(record))
    return digest


@pytest.fixture
def trained_repo(tmp_path: Path) -> Path:
    """A git repository with a training script and a spec, committed, then trained by running
    the spec's own command (outputs and data are git-ignored, as in a real analysis repo)."""
    repo = tmp_path / "tauid-training"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "ci@cern.ch")
    git(repo, "config", "user.name", "CI")
    git(repo, "remote", "add", "origin", "https://oauth2:s3cret@gitlab.cern.ch/atlas/toy-lr.git")
    (repo / "train.py").write_text(TRAIN_PY)
    (repo / ".gitignore").write_text("runs/\ndata/\n")
    (repo / "MODEL_CARD.md").write_text("# Model card\n\n## Intended use\nTests.\n")
    (repo / "hepbundle.yaml").write_text(SPEC.replace("{digest}", "ab" * 32))
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "training code")
    git(repo, "tag", "v1.0.0")
    write_npz_with_record(repo / "data" / "train.npz")
    cmd = shlex.split("python train.py --epochs 50 --lr 0.5")
    subprocess.run([sys.executable, *cmd[1:]], cwd=repo, check=True, capture_output=True)
    return repo


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
