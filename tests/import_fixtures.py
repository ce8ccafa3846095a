"""Real legacy stores for the importer tests: a GroupData-like tree and a cms-data git repository
with three tags (built with the real ``git``), plus the signing key + trust policy they publish
under."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

#: legacy path → content of the GroupData-like tree (packages, versioned and named subdirs, dev/)
GROUPDATA: dict[str, bytes] = {
    "tauRecTools/R22_preprod/model.json": b'{"layers": [16, 8, 1]}\n',
    "tauRecTools/R22_preprod/weights.bin": bytes(range(256)) * 64,
    "tauRecTools/00-01-00/rnn.onnx": b"\x08\x07onnx-v1" * 500,
    "tauRecTools/00-02-00/rnn.onnx": b"\x08\x07onnx-v2" * 700,
    "tauRecTools/00-02-00/README.txt": b"retrained on mc23\n",
    "tauRecTools/00-02-00/sub/extra.root": b"root" * 300,
    "JetTagCalibration/v2/dl1.onnx": b"dl1" * 1000,
    "dev/tauRecTools/00-03-00/rnn.onnx": b"\x08\x07onnx-v3" * 100,
    "tauRecTools/notes.txt": b"loose file: belongs to no version\n",
}


def make_groupdata(root: Path, files: dict[str, bytes] = GROUPDATA) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def git(repo: Path, *args: str, date: str | None = None) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Tau Expert",
        "GIT_AUTHOR_EMAIL": "tau.expert@cern.ch",
        "GIT_COMMITTER_NAME": "Tau Expert",
        "GIT_COMMITTER_EMAIL": "tau.expert@cern.ch",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    if date:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = date
    p = subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
    )
    return p.stdout.strip()


#: tag → (files under data/, tag message); the third tag is lightweight
CMS_TAGS: list[tuple[str, dict[str, bytes], str]] = [
    ("V00-01-00", {"data/tau_id.root": b"v1" * 400}, "First training files"),
    (
        "V00-02-05",
        {"data/tau_id.root": b"v2" * 500, "data/dnn/graph.pb": b"pb" * 300},
        "DeepTau v2p5",
    ),
    ("V01-00-00", {"data/tau_id.root": b"v3" * 600, "data/dnn/graph.pb": b"pb" * 300}, ""),
]


def make_cms_data(root: Path) -> Path:
    """``RecoTauTag-TrainingFiles`` with three tags (two annotated, one lightweight) and a tag
    that is no version."""
    repo = root / "RecoTauTag-TrainingFiles"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "master")
    (repo / "README.md").write_text("cms-data\n")
    for i, (tag, files, message) in enumerate(CMS_TAGS):
        for p in repo.glob("data/**/*"):
            if p.is_file():
                p.unlink()
        for rel, data in files.items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_bytes(data)
        date = f"2024-0{i + 1}-15T10:00:00+00:00"
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"update for {tag}", date=date)
        if message:
            git(repo, "tag", "-a", tag, "-m", message, date=date)
        else:
            git(repo, "tag", tag)
    git(repo, "tag", "before-rename")
    git(repo, "remote", "add", "origin", "https://github.com/cms-data/RecoTauTag-TrainingFiles.git")
    return repo


def write_policy(tmp_path: Path, pub: Path) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(f"version: 1\nrules:\n  - namespace: '*'\n    signers:\n      - key: {pub}\n")
    return p


@pytest.fixture
def policy_env(tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """HEPBUNDLE_POLICY: only ``ec_key`` may sign; returns the policy file."""
    p = write_policy(tmp_path, ec_key[1])
    monkeypatch.setenv("HEPBUNDLE_POLICY", str(p))
    return p
