"""Benchmark of what a production job pays to open a key- or X.509-signed bundle under a policy.

    python tools/bench/open_signed.py [--repeat 5] [--src LABEL=DIR ...]

Three small bundles (one 100 kB file) signed with an EC P-256 key, an EC X.509 certificate and
an RSA-2048 X.509 certificate are published as ``atlas/tau<kind>@prod`` into a local repository.
For each, best of ``--repeat`` fresh processes: the ``hepbundle path atlas/tau<kind>@prod
model/model.onnx`` command (HEPBUNDLE_PATH + HEPBUNDLE_POLICY set, as in a job), and in-process
``import hepbundle`` + ``TrustPolicy.from_flags`` + the first ``hepbundle.open(path,
policy=…)``, with the list of heavy modules (model_signing, sigstore, …) that opening loaded.
A fourth bundle, ``atlas/tautrust@prod``, is published into a repository made by ``repo init``
(trust root with a signed catalogue, statements signed by the release key) and resolved with
**no** trust configuration: ``hepbundle path`` and in-process ``resolve`` (first and repeat),
which add the trust-root acceptance and the catalogue-statement checks to the open.
``--src`` runs the children against other source trees too (e.g. an export of an older commit:
``git archive REV src | tar -x -C /tmp/old``), interleaved so that both see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from _common import PY, run_child

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests import pki

import hepbundle
from hepbundle.repository.publish import publish
from hepbundle.signing import KeySigner, Signer, X509Signer, sign

HEAVY = (
    "model_signing",
    "sigstore",
    "sigstore_models",
    "OpenSSL",
    "google.protobuf",
    "cryptography.x509",
    "sqlite3",
)
KINDS = ("key", "x509-ec", "x509-rsa")

# the job, in a fresh interpreter: seconds for imports + first open, and what got imported
_CHILD = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
import hepbundle
from hepbundle.policy import TrustPolicy
kind, root, trust = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
pol = TrustPolicy.from_flags(**({"keys": [trust]} if kind == "key" else {"ca": [trust]}))
t1 = time.perf_counter()
assert hepbundle.open(root, policy=pol).signature
t2 = time.perf_counter()
heavy = [m for m in json.loads(sys.argv[4]) if m in sys.modules]
print(json.dumps({"total": t2 - t0, "open": t2 - t1, "heavy": heavy}))
"""


_RESOLVE_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import hepbundle
t1 = time.perf_counter()
b = hepbundle.resolve(sys.argv[1])
t2 = time.perf_counter()
b.path("model/model.onnx")
t3 = time.perf_counter()
again = hepbundle.resolve(sys.argv[1])
again.path("model/model.onnx")
t4 = time.perf_counter()
assert b.signature and again.signature
heavy = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
print(json.dumps({"total": t3 - t0, "resolve": t2 - t1, "repeat": t4 - t3, "heavy": heavy}))
"""


def _setup_trusted(work: Path, priv: Path, pub: Path) -> Path:
    """A `repo init` repository holding atlas/tautrust@prod; returns the bundle directory."""
    from hepbundle.policy import TrustPolicy
    from hepbundle.repository import init_repository

    src = work / "src" / "trust"
    (src / "model").mkdir(parents=True)
    (src / "model" / "model.onnx").write_bytes(os.urandom(100_000))
    (src / "hepbundle.yaml").write_text(
        "name: atlas/tautrust\nversion: 1.0.0\nfiles:\n  - path: model/model.onnx\n    role: model\n"
    )
    b = hepbundle.build(src, work / "dist" / "trust")
    sign(b.root, KeySigner(priv))
    policy = TrustPolicy.from_flags(keys=[pub])
    assert policy is not None
    init_repository(work / "repo-trusted", policy)
    res = publish(b.root, work / "repo-trusted", alias="prod", statement_signer=KeySigner(priv))
    return Path(res.path)


def _setup(work: Path) -> dict[str, tuple[Path, Path, Path]]:
    """Per kind: (published bundle, policy file, trust material for from_flags)."""
    priv, pub = pki.write_key(pki.ec_key(), work / "release.pem")
    ca = pki.make_ca()
    ca_pem = pki.write_pem(work / "ca.pem", ca.cert)
    signers: dict[str, Signer] = {"key": KeySigner(priv)}
    for kind, key in (("x509-ec", pki.ec_key()), ("x509-rsa", pki.rsa_key())):
        signers[kind] = X509Signer(*pki.make_cert(ca, key=key).write(work, kind))
    out = {}
    for kind, signer in signers.items():
        src = work / "src" / kind
        (src / "model").mkdir(parents=True)
        (src / "model" / "model.onnx").write_bytes(os.urandom(100_000))
        (src / "hepbundle.yaml").write_text(
            f"name: atlas/tau{kind}\nversion: 1.0.0\n"
            "files:\n  - path: model/model.onnx\n    role: model\n"
        )
        b = hepbundle.build(src, work / "dist" / kind)
        sign(b.root, signer)
        rule = f"key: {pub}" if kind == "key" else f"x509: {{ca: {ca_pem}}}"
        policy = work / f"policy-{kind}.yaml"
        policy.write_text(f"version: 1\nrules:\n  - namespace: '*'\n    signers:\n      - {rule}\n")
        os.environ["HEPBUNDLE_POLICY"] = str(policy)
        res = publish(b.root, work / "repo", alias="prod")
        out[kind] = (Path(res.path), policy, pub if kind == "key" else ca_pem)
    del os.environ["HEPBUNDLE_POLICY"]
    out["trust-root"] = (_setup_trusted(work, priv, pub), Path(), Path())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--src", action="append", default=[], metavar="LABEL=DIR")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hb-bench-open-signed-"))
    shutil.rmtree(work, ignore_errors=True)
    os.environ["HEPBUNDLE_CACHE_DIR"] = str(work / "node-cache")  # accepted trust roots too
    # an installed package has its bytecode: the children write and reuse theirs (a shell with
    # PYTHONDONTWRITEBYTECODE=1 would otherwise make every child compile hepbundle from source,
    # 20-60 ms that no job pays), and the first round, which compiles, only warms up
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    bundles = _setup(work)
    trees = {"current": str(Path(__file__).resolve().parents[2] / "src")}
    trees.update(s.split("=", 1) for s in args.src)
    best: dict[tuple[str, str, str], float] = {}
    heavy: dict[tuple[str, str], list[str]] = {}
    for round_ in range(args.repeat + 1):
        if round_ == 1:
            best.clear()  # round 0 compiled the bytecode
        for label, tree in trees.items():
            for kind, (root, policy, trust) in bundles.items():
                env = {**os.environ, "PYTHONPATH": tree, "HEPBUNDLE_PATH": str(work / "repo")}
                ref = f"atlas/tau{kind}@prod"
                if kind == "trust-root":
                    env["HEPBUNDLE_PATH"] = str(work / "repo-trusted")
                    ref = "atlas/tautrust@prod"
                else:
                    env["HEPBUNDLE_POLICY"] = str(policy)
                wall, _, out = run_child(
                    [PY, "-m", "hepbundle", "path", ref, "model/model.onnx"], env
                )
                assert out.strip() == str(root / "model" / "model.onnx"), out
                if kind == "trust-root":
                    _, _, out = run_child([PY, "-c", _RESOLVE_CHILD, ref, json.dumps(HEAVY)], env)
                    child = json.loads(out)
                    heavy[label, kind] = child["heavy"]
                    for what, t in (
                        ("path", wall),
                        ("total", child["total"]),
                        ("open", child["resolve"]),
                        ("repeat", child["repeat"]),
                    ):
                        best[label, kind, what] = min(best.get((label, kind, what), 1e9), t)
                    continue
                _, _, out = run_child(
                    [PY, "-c", _CHILD, kind, str(root), str(trust), json.dumps(HEAVY)], env
                )
                child = json.loads(out)
                heavy[label, kind] = child["heavy"]
                for what, t in (("path", wall), ("total", child["total"]), ("open", child["open"])):
                    best[label, kind, what] = min(best.get((label, kind, what), 1e9), t)
    print(f"best of {args.repeat} (after one warm-up round); seconds")
    print("tree      kind      `hepbundle path`  import+policy+open  first open  heavy modules")
    for label in trees:
        for kind in bundles:
            b = {w: best[label, kind, w] for w in ("path", "total", "open")}
            extra = ""
            if kind == "trust-root":
                extra = f"  (first resolve; repeat resolve+path {best[label, kind, 'repeat']:.4f})"
            print(
                f"{label:10} {kind:10} {b['path']:16.3f}  {b['total']:18.3f}  {b['open']:10.4f}  "
                f"{', '.join(heavy[label, kind]) or '-'}{extra}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
