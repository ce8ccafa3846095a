"""Shared fixtures: small real bundles and a socket guard that keeps unit tests off the network."""

from __future__ import annotations

import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import hepbundle


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests never reach the network (sigstore-python and twine do the same)."""

    def guard(*args: object, **kwargs: object) -> None:
        raise RuntimeError("network access in a unit test")

    monkeypatch.setattr(socket.socket, "connect", guard)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user-level repository, policy or cache leaks into a test."""
    for var in ("HEPBUNDLE_REPO", "HEPBUNDLE_PATH", "HEPBUNDLE_POLICY", "SOURCE_DATE_EPOCH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    # mlflow's default store is ./mlflow.db in the working directory: keep tests out of the checkout
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow-default.db'}")


def cli_imports(
    args: list[str], modules: tuple[str, ...], env: dict[str, str] | None = None
) -> str:
    """Run ``hepbundle ARGS`` (through click's runner, exit 0 required) in a fresh interpreter on
    this checkout's hepbundle (whatever the shared, editable environment points at) and return
    which of ``modules`` it imported, comma-separated ("" for none)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; from hepbundle.cli import main;"
        f"r = CliRunner().invoke(main, {args!r}); assert r.exit_code == 0, r.output;"
        f"print(','.join(m for m in {modules!r} if m in sys.modules))"
    )
    full = {**os.environ, "PYTHONPATH": str(Path(hepbundle.__file__).parents[1]), **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=full
    ).stdout.strip()


def write_spec(directory: Path, body: str) -> Path:
    """Write a hepbundle.yaml with dedented ``body`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = directory / "hepbundle.yaml"
    spec.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return spec


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A model directory with a small (real-bytes) model, weights, a card and a spec."""
    d = tmp_path / "src"
    (d / "model").mkdir(parents=True)
    (d / "model" / "model.onnx").write_bytes(bytes(range(256)) * 40)
    (d / "model" / "weights.bin").write_bytes(b"\x01\x02" * 5000)
    (d / "MODEL_CARD.md").write_text("# Model card\n\n## Intended use\nTests.\n", encoding="utf-8")
    write_spec(
        d,
        """
        name: atlas/tauid
        version: 1.2.0
        summary: Tau identification RNN
        authors: ["Jane Doe <jane@cern.ch>"]
        license: Apache-2.0
        framework: onnx
        files:
          - path: model/*.onnx
            role: model
          - path: model/weights.bin
            role: weights
        model_card: MODEL_CARD.md
        metrics: {auc: 0.93}
        hyperparameters: {epochs: 20, lr: 0.001}
        """,
    )
    return d


@pytest.fixture
def built(model_dir: Path, tmp_path: Path) -> Iterator[hepbundle.Bundle]:
    """A freshly built bundle of ``model_dir``."""
    yield hepbundle.build(model_dir, tmp_path / "out" / "atlas" / "tauid" / "1.2.0")


@pytest.fixture
def ec_key(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh EC P-256 key pair as PEM files: (private key, public key)."""
    from hepbundle.signing import generate_key

    return generate_key(tmp_path / "keys" / "signing-key.pem")


@pytest.fixture
def signed(built: hepbundle.Bundle, ec_key: tuple[Path, Path]) -> hepbundle.Bundle:
    """The ``built`` bundle signed (``hepbundle.sig``) with ``ec_key``; verify it with
    ``TrustPolicy.from_flags(keys=[ec_key[1]])``."""
    from hepbundle.signing import KeySigner, sign

    sign(built.root, KeySigner(ec_key[0]))
    return hepbundle.Bundle.load(built.root)


#: the three consecutive run IOVs of ``scoped_repo`` (tests of validity and find --valid-for)
IOVS = {
    "1.0.0": "{first: 100, last: 199}",
    "1.1.0": "{first: 200, last: 299}",
    "1.2.0": "{first: 300}",
}


def signed_iov_versions(
    tmp_path: Path, key: Path, more_validity: str = ""
) -> Iterator[tuple[str, hepbundle.Bundle]]:
    """Build and sign atlas/tauid at each version of IOVS, its run range in its validity scope
    (plus ``more_validity``, YAML lines under ``validity:``); yields (version, bundle)."""
    return signed_scoped_versions(
        tmp_path, key, {v: f"  runs: [{runs}]\n{more_validity}" for v, runs in IOVS.items()}
    )


def signed_scoped_versions(
    tmp_path: Path, key: Path, scopes: dict[str, str]
) -> Iterator[tuple[str, hepbundle.Bundle]]:
    """Build and sign atlas/tauid at each version of ``scopes`` (version → the YAML lines under
    its ``validity:``); yields (version, bundle)."""
    from hepbundle.signing import KeySigner, sign

    for v, section in scopes.items():
        d = tmp_path / f"src-{v}"
        (d / "model").mkdir(parents=True)
        (d / "model" / "model.onnx").write_bytes(v.encode() * 100)
        write_spec(
            d,
            f"name: atlas/tauid\nversion: {v}\nfiles: [{{path: model/model.onnx, role: model}}]\n"
            f"validity:\n{section}",
        )
        b = hepbundle.build(d, tmp_path / "dist" / v)
        sign(b.root, KeySigner(key))
        yield v, b


def trust_key(tmp_path: Path, public: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HEPBUNDLE_POLICY: a policy trusting ``public`` for every namespace."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: 1\nrules:\n  - namespace: '*'\n    signers:\n      - key: {public}\n"
    )
    monkeypatch.setenv("HEPBUNDLE_POLICY", str(policy))


@pytest.fixture
def scoped_repo(tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """atlas/tauid 1.0.0, 1.1.0, 1.2.0 with consecutive run IOVs, signed, on HEPBUNDLE_PATH."""
    from hepbundle.repository import publish

    root = tmp_path / "repo"
    trust_key(tmp_path, ec_key[1], monkeypatch)
    for v, b in signed_iov_versions(tmp_path, ec_key[0], "  releases: ['CMSSW_15_0_*']\n"):
        publish(b.root, root, alias="prod" if v == "1.1.0" else None)
    monkeypatch.setenv("HEPBUNDLE_PATH", str(root))
    return root


# real XRootD and Rucio servers on loopback (tests marked `services`)
from .services import (  # noqa: E402
    _rucio_session,
    _services,
    _xrootd_session,
    rucio_server,
    xrootd_server,
)

__all__ = ["_rucio_session", "_services", "_xrootd_session", "rucio_server", "xrootd_server"]
