"""Real legacy stores for the importer tests: a GroupData-like tree and a cms-data git repository
with three tags (built with the real ``git``), plus the signing key + trust policy they publish
under."""

from __future__ import annotations

import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

CMS_ORIGIN = "https://github.com/cms-data/RecoTauTag-TrainingFiles.git"


@dataclass(frozen=True)
class CmsTag:
    """One commit of a cms-data repository and its tag: ``message`` None makes a lightweight
    tag; ``files`` are written (None: deleted) on top of the previous commit's tree."""

    tag: str
    subject: str
    message: str | None
    files: dict[str, bytes | None]


def make_cms_repo(
    root: Path, dirname: str, tags: list[CmsTag], origin: str | None = CMS_ORIGIN
) -> Path:
    """A git repository under ``root/dirname`` with one commit and tag per entry of ``tags``
    (dated a month apart), a non-version tag at the end and, unless None, the origin remote."""
    repo = root / dirname
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "master")
    for i, t in enumerate(tags):
        for rel, data in t.files.items():
            if data is None:
                (repo / rel).unlink()
            else:
                (repo / rel).parent.mkdir(parents=True, exist_ok=True)
                (repo / rel).write_bytes(data)
        date = f"2024-{i + 1:02d}-15T10:00:00+00:00"
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", t.subject, date=date)
        if t.message is None:
            git(repo, "tag", t.tag)
        else:
            git(repo, "tag", "-a", t.tag, "-m", t.message, date=date)
    git(repo, "tag", "before-rename")
    if origin:
        git(repo, "remote", "add", "origin", origin)
    return repo


def cms_tree(tags: list[CmsTag], tag: str) -> dict[str, bytes]:
    """The files of ``tags``' repository at ``tag``."""
    out: dict[str, bytes] = {}
    for t in tags:
        for rel, data in t.files.items():
            if data is None:
                out.pop(rel, None)
            else:
                out[rel] = data
        if t.tag == tag:
            return out
    raise KeyError(tag)


def make_cms_data(root: Path) -> Path:
    """``RecoTauTag-TrainingFiles`` laid out as a CMSSW package (files under ``data/``), with
    three tags (two annotated, one lightweight) and a tag that is no version."""
    tags, before = [], {}
    for tag, files, message in CMS_TAGS:
        tags.append(CmsTag(tag, f"update for {tag}", message or None, {**before, **files}))
        before = dict.fromkeys(files)
    tags[0].files["README.md"] = b"cms-data\n"
    return make_cms_repo(root, "RecoTauTag-TrainingFiles", tags)


def _payload(seed: str, size: int) -> bytes:
    """``size`` bytes that look like a binary graph (deterministic, incompressible)."""
    out = b""
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{len(out)}".encode()).digest()
    return out[:size]


DEEPTAU_CORE = "DeepTauId/deepTau_2017v2p6_e6_core.pb"

#: RecoTauTag-TrainingFiles as the cms-data repositories are: files at the repository root
#: (which a release installs as RecoTauTag/TrainingFiles/data/), an annotated tag whose message
#: is just its name, then a lightweight tag retraining core.pb with validation plots kept out of
#: the release tarball by export-ignore
DEEPTAU_TAGS: list[CmsTag] = [
    CmsTag(
        "V00-02-02",
        "Add DeepTau 2017v2p6 e6 training files",
        "V00-02-02",
        {
            "README.md": b"# RecoTauTag-TrainingFiles\nTraining files for RecoTauTag.\n",
            DEEPTAU_CORE: _payload("core-2017v2p6", 24_000),
            "DeepTauId/deepTau_2017v2p6_e6_inner.pb": _payload("inner-2017v2p6", 17_000),
            "DeepTauId/deepTau_2017v2p6_e6_outer.pb": _payload("outer-2017v2p6", 17_500),
            "MVAIsolation/tauIdMVAIsoDBoldDMwLT2017.weights.xml.gz": _payload("mva", 3_000),
        },
    ),
    CmsTag(
        "V00-03-00",
        "Retrain the DeepTau 2017v2p6 core on UL samples",
        None,
        {
            DEEPTAU_CORE: _payload("core-2017v2p6-UL", 26_000),
            ".gitattributes": b"/validation export-ignore\n",
            "validation/roc_core.png": _payload("png", 2_000),
        },
    ),
]


def make_deeptau(root: Path, dirname: str = "cms-data-RecoTauTag-TrainingFiles", **kw: Any) -> Path:
    """The realistic RecoTauTag-TrainingFiles clone of :data:`DEEPTAU_TAGS`."""
    return make_cms_repo(root, dirname, DEEPTAU_TAGS, **kw)


def write_policy(
    tmp_path: Path,
    pub: Path,
    *,
    namespace: str = "*",
    role: str | None = None,
    filename: str = "policy.yaml",
) -> Path:
    """A trust policy file of one rule: ``namespace`` signed by the key ``pub`` (in ``role``)."""
    p = tmp_path / filename
    signer = f"      - key: {pub}\n" + (f"        role: {role}\n" if role else "")
    p.write_text(f"version: 1\nrules:\n  - namespace: '{namespace}'\n    signers:\n{signer}")
    return p


@pytest.fixture
def policy_env(tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """HEPBUNDLE_POLICY: only ``ec_key`` may sign; returns the policy file."""
    p = write_policy(tmp_path, ec_key[1])
    monkeypatch.setenv("HEPBUNDLE_POLICY", str(p))
    return p


def count_source_hashes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the source files the import driver hashes from now on (comparing the store
    with a published version), in order; the import's own builds copy and hash elsewhere."""
    import hepbundle.importers.run as run_mod

    hashed: list[int] = []
    real_hash = run_mod.hash_file

    def hash_file(path: Any, *a: Any, **kw: Any) -> Any:
        d = real_hash(path, *a, **kw)
        hashed.append(d.size)
        return d

    monkeypatch.setattr(run_mod, "hash_file", hash_file)
    return hashed
