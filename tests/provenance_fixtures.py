"""A real training setup for provenance tests: a git repository with a numpy training script, a
spec, a git-ignored NPZ dataset with its provenance record, trained by running the spec's command."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from hepbundle.digest import sha256_bytes
from hepbundle.provenance.datarefs import NPZ_RECORD_SUFFIX

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


def make_trained_repo(tmp_path: Path) -> Path:
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
