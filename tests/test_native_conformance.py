"""Conformance of the native C++ library (src/libhepbundle) with the Python implementation.

Every case runs through both — Python's ``hepbundle.resolve``/``Bundle.path`` and the native
``hepbundle-native`` command built from the library — and must give the same verdict and the same
error class (and, where both sides word it the same way, the same message): the golden v1 bundle,
every tamper kind, every trust-policy failure, every resolve case. Malformed inputs must give the
native side a clean one-line error, quickly, with bounded memory.

The binary comes from ``make native`` (``build/native/hepbundle-native``) or ``HEPBUNDLE_NATIVE``
(``make native-asan`` runs these cases again on its AddressSanitizer + UBSan build).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import hepbundle
from hepbundle.digest import algorithm
from hepbundle.errors import HepbundleError
from hepbundle.policy import TrustPolicy
from hepbundle.repository.layout import catalog_file, ensure_repository
from hepbundle.repository.operations import yank
from hepbundle.repository.publish import publish
from hepbundle.signing import KeySigner, X509Signer, _write_signature, sign

from . import pki
from .needs import missing
from .repo_fixtures import make_bundle
from .tsa import allow_loopback, make_tsa, serve_tsa  # before the network guard is in place

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "signed-v1"
DN = "/DC=ch/DC=cern/OU=Users/CN=jdoe/CN=Jane Doe"
#: about 100 cases, each building and signing real bundles: about a minute
pytestmark = pytest.mark.slow


def native_binary() -> Path:
    path = Path(
        os.environ.get("HEPBUNDLE_NATIVE") or ROOT / "build" / "native" / "hepbundle-native"
    )
    if not path.is_file():
        missing(f"the native library is not built ({path}); run: make native")
    return path


@dataclass
class Case:
    """One verdict to compare: resolve ``ref`` (a path or a catalogue reference) under
    ``policy``; with ``file``, lazily open and ask for that file; without, verify everything."""

    ref: str
    policy: Path | None = None
    file: str | None = None
    repos: list[Path] = field(default_factory=list)
    allow_yanked: bool = False
    #: the messages differ in wording (the class must still be equal)
    same_message: bool = True
    #: the verification mode asked for by name (None: lazy with a file, else full)
    verify: str | None = None
    #: environment variables set for both sides (HEPBUNDLE_POLICY, HEPBUNDLE_TRUST_ROOT, …)
    env: dict[str, str] = field(default_factory=dict)
    #: the job's context (context= / --context), bundle-spec/validity.md
    context: str | None = None


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def python_verdict(c: Case) -> tuple[str, str]:
    """("ok", "<path> verified=<signatures checked>") or (error class, message)."""
    mode = c.verify or ("lazy" if c.file else "full")
    with _environment(c.env):
        try:
            policy = TrustPolicy.load(c.policy) if c.policy else None
            b = hepbundle.resolve(
                c.ref,
                verify=mode,  # type: ignore[arg-type]
                policy=policy,
                allow_yanked=c.allow_yanked,
                repos=c.repos or None,
                context=c.context,
            )
            if not c.file and mode == "integrity":  # what `verify --integrity-only` checks
                b.verify().raise_for_problems(b.ref)
            out = str(b.path(c.file)) if c.file else str(b.root)
        except HepbundleError as e:
            return type(e).__name__, str(e)
    # integrity only is never reported as verified: no signers
    return "ok", f"{out} verified={b.signature is not None}"


def native_verdict(c: Case) -> tuple[str, str]:
    cmd = [str(native_binary()), "path" if c.file else "verify", c.ref]
    if c.file:
        cmd.append(c.file)
    if c.policy:
        cmd += ["--policy", str(c.policy)]
    for r in c.repos:
        cmd += ["--repo", str(r)]
    if c.allow_yanked:
        cmd.append("--allow-yanked")
    if c.verify:
        cmd += ["--verify", c.verify]
    if c.context is not None:
        cmd += ["--context", c.context]
    proc = subprocess.run(
        [*cmd, "--json"],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=60,
        check=False,
        env={**os.environ, **c.env},
    )
    # an instrumented build (make native-asan) reports on stderr, whatever the verdict
    for report in ("Sanitizer", "runtime error:"):
        assert report not in proc.stderr, f"{cmd}: {proc.stderr[-3000:]}"
    assert proc.stdout, f"no output from {cmd}: {proc.stderr}"
    doc = json.loads(proc.stdout)
    assert (
        proc.returncode == (0 if doc["ok"] else (1 if "Error" in doc["error"] else 2))
        or not doc["ok"]
    )
    if not doc["ok"]:
        return doc["error"], doc["message"]
    return "ok", f"{doc['path']} verified={doc['verified']}"


def assert_same_verdict(case: Case) -> None:
    """Both implementations give the same verdict and error class (and message, where worded
    alike)."""
    py = python_verdict(case)
    native = native_verdict(case)
    assert native[0] == py[0], f"python: {py}\nnative: {native}"
    if case.same_message:
        assert native[1] == py[1]


# --- the world the cases live in -----------------------------------------------------------------


@dataclass
class World:
    tmp: Path
    key: tuple[Path, Path]
    bundle: Path  # atlas/tauid@1.2.0 signed by key (hepbundle.sig)
    policy: Path  # key policy for atlas
    grid_ca: pki.Issued
    grid_ca_pem: Path

    def write_policy(self, text: str, name: str = "policy.yaml") -> Path:
        p = self.tmp / name
        p.write_text(text)
        return p

    def x509_signed(self, subject: str = DN, **kw: object) -> tuple[Path, Path]:
        """A fresh copy of the unsigned bundle, signed with a certificate of the grid CA."""
        root = self.tmp / f"x509-{len(list(self.tmp.glob('x509-*')))}"
        shutil.copytree(self.bundle, root)
        (root / "hepbundle.sig").unlink()
        issuer = kw.pop("issuer", self.grid_ca)
        user = pki.make_cert(issuer, pki.grid_name(*subject.split("/CN=")[1:]), **kw)  # type: ignore[arg-type]
        cert, key = user.write(self.tmp, f"user-{root.name}")
        sign(root, X509Signer(cert, key))
        return root, Path(str(user.cert.serial_number))


@pytest.fixture
def world(built: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path) -> World:
    sign(built.root, KeySigner(ec_key[0]))
    ca = pki.make_ca()
    w = World(
        tmp_path,
        ec_key,
        built.root,
        tmp_path / "policy.yaml",
        ca,
        pki.write_pem(tmp_path / "pki" / "ca.pem", ca.cert),
    )
    w.write_policy(
        f"version: 1\nrules:\n  - namespace: atlas\n    signers: [{{key: {ec_key[1]}}}]\n"
    )
    return w


def _flip(root: Path, rel: str = "model/weights.bin") -> None:
    p = root / rel
    data = bytearray(p.read_bytes())
    data[100] ^= 0x01
    p.write_bytes(bytes(data))


def _edit_manifest(root: Path) -> None:

    (root / "model" / "weights.bin").write_bytes(b"evil weights")
    doc = json.loads((root / "hepbundle.json").read_text())
    alg = algorithm(doc["hashing"]["algorithm"])
    for f in doc["files"]:
        if f["path"] == "model/weights.bin":
            f[alg.name], f["size"] = alg.hex(b"evil weights"), 12
    (root / "hepbundle.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _x509_policy(
    w: World, subject: str = "/DC=ch/DC=cern/OU=Users/CN=jdoe/*", **extra: str
) -> Path:
    more = "".join(f", {k}: {v}" for k, v in extra.items())
    return w.write_policy(
        "version: 1\nrules:\n  - namespace: atlas\n    signers:\n"
        f"      - x509: {{ca: {w.grid_ca_pem}, subject: {json.dumps(subject)}{more}}}\n",
        "x509-policy.yaml",
    )


def golden(w: World, *, tamper: Callable[[Path], None] | None = None, policy: str = "") -> Case:
    root = w.tmp / "golden"
    shutil.copytree(GOLDEN, root)
    if tamper:
        tamper(root / "bundle")
    p = root / "policy.yaml"
    p.write_text(
        policy
        or "version: 1\nrules:\n  - namespace: demo\n    signers:\n      all_of:\n"
        "        - {key: release.pub.pem, role: primary}\n"
        "        - x509: {ca: ca.pem, subject: '/DC=ch/DC=cern/OU=Users/CN=golden/*'}\n"
        "          role: author\n"
    )
    return Case(str(root / "bundle"), p)


def _with(case: Case, **changes: object) -> Case:
    from dataclasses import replace

    return replace(case, **changes)  # type: ignore[arg-type]


def _tamper(fn: Callable[[Path], object], **kw: object) -> Callable[[World], Case]:
    def make(w: World) -> Case:
        fn(w.bundle)
        return Case(str(w.bundle), w.policy, **kw)  # type: ignore[arg-type]

    return make


def _append(path: Path) -> None:
    with path.open("ab") as f:
        f.write(b"x")


def _symlink_escape(root: Path) -> None:
    outside = root.parent / "outside.bin"
    shutil.copy(root / "model" / "weights.bin", outside)
    (root / "model" / "weights.bin").unlink()
    (root / "model" / "weights.bin").symlink_to(outside)


def _symlink_inside(root: Path) -> None:
    shutil.copy(root / "model" / "weights.bin", root / "model" / "copy.bin")
    (root / "model" / "weights.bin").unlink()
    (root / "model" / "weights.bin").symlink_to("copy.bin")


def _dir_escape(root: Path) -> None:
    shutil.move(root / "model", root.parent / "model-outside")
    (root / "model").symlink_to(root.parent / "model-outside")


def _too_many_entries(root: Path) -> None:
    """One entry over the manifest entry limit (bundle-spec § Limits), well under its byte limit."""
    from hepbundle.limits import MAX_MANIFEST_FILES

    doc = json.loads((root / "hepbundle.json").read_text())
    entry = doc["files"][0]
    doc["files"] = [{**entry, "path": f"model/f{i}.bin"} for i in range(MAX_MANIFEST_FILES + 1)]
    (root / "hepbundle.json").write_text(json.dumps(doc))


def _corrupt_signature(root: Path) -> None:
    import base64

    doc = json.loads((root / "hepbundle.sig").read_text())
    sig = bytearray(base64.b64decode(doc["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[-1] ^= 0xFF
    doc["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    (root / "hepbundle.sig").write_text(json.dumps(doc))


def _swapped_signature(w: World) -> Case:
    other = w.tmp / "other"
    shutil.copytree(w.bundle, other)
    (other / "model" / "weights.bin").write_bytes(b"\x03" * 100)
    _rewrite_manifest(other)
    sign(other, KeySigner(w.key[0]), force=True)
    shutil.copy(other / "hepbundle.sig", w.bundle / "hepbundle.sig")
    return Case(str(w.bundle), w.policy)


def _rewrite_manifest(root: Path) -> None:

    doc = json.loads((root / "hepbundle.json").read_text())
    alg = algorithm(doc["hashing"]["algorithm"])
    for f in doc["files"]:
        data = (root / f["path"]).read_bytes()
        f[alg.name], f["size"] = alg.hex(data), len(data)
    (root / "hepbundle.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _role_relabel(w: World) -> Case:
    """A ``review`` co-signature renamed to ``release`` to satisfy a rule requiring ``release``."""
    reviewer, reviewer_pub = pki.write_key(pki.ec_key(), w.tmp / "reviewer.pem")
    sign(w.bundle, KeySigner(reviewer), role="review")
    (w.bundle / "hepbundle.review.sig").rename(w.bundle / "hepbundle.release.sig")
    p = w.write_policy(
        "version: 1\nrules:\n  - namespace: atlas\n    signers:\n      all_of:\n"
        f"        - {{key: {w.key[1]}, role: primary}}\n"
        f"        - {{key: {reviewer_pub}, role: release}}\n"
    )
    return Case(str(w.bundle), p)


def _wrong_key(w: World) -> Case:
    _, other = pki.write_key(pki.ec_key(), w.tmp / "other.pem")
    p = w.write_policy(
        f"version: 1\nrules:\n  - namespace: atlas\n    signers: [{{key: {other}}}]\n"
    )
    return Case(str(w.bundle), p)


def _namespace_not_allowed(w: World) -> Case:
    p = w.write_policy(
        f"version: 1\nrules:\n  - namespace: cms\n    signers: [{{key: {w.key[1]}}}]\n"
    )
    return Case(str(w.bundle), p)


def _first_rule_wins(w: World) -> Case:
    _, other = pki.write_key(pki.ec_key(), w.tmp / "other.pem")
    p = w.write_policy(
        "version: 1\nrules:\n"
        f"  - namespace: 'atlas/tau*'\n    signers: [{{key: {w.key[1]}}}]\n"
        f"  - namespace: atlas\n    signers: [{{key: {other}}}]\n"
    )
    return Case(str(w.bundle), p)


def _stale_cosignature(w: World) -> Case:
    priv, _ = pki.write_key(pki.ec_key(), w.tmp / "rm.pem")
    sign(w.bundle, KeySigner(priv), role="release")
    stale = (w.bundle / "hepbundle.release.sig").read_text()
    _edit_manifest(w.bundle)
    sign(w.bundle, KeySigner(w.key[0]), force=True)
    (w.bundle / "hepbundle.release.sig").write_text(stale)
    return Case(str(w.bundle), w.policy)


def _cosign(w: World, *, author: bool) -> Case:
    p = w.write_policy(
        "version: 1\nrules:\n  - namespace: 'atlas/*'\n    signers:\n      all_of:\n"
        f"        - {{key: {w.key[1]}, role: primary}}\n"
        f"        - x509: {{ca: {w.grid_ca_pem}, subject: '/DC=ch/DC=cern/OU=Users/CN=jdoe/*'}}\n"
        "          role: author\n"
    )
    if author:
        cert, key = pki.make_cert(w.grid_ca).write(w.tmp, "author")
        sign(w.bundle, X509Signer(cert, key), role="author")
    return Case(str(w.bundle), p)


def _x509(w: World, case: str) -> Case:
    now = dt.datetime.now(dt.UTC)
    subject = "/DC=ch/DC=cern/OU=Users/CN=jdoe/CN=Jane Doe"
    kw: dict[str, object] = {}
    if case == "wrong-dn":
        subject = "/DC=ch/DC=cern/OU=Users/CN=mallory"
    elif case == "untrusted-ca":
        kw["issuer"] = pki.make_ca("Rogue CA")
    elif case == "expired":
        kw = {"not_before": now - dt.timedelta(days=30), "not_after": now - dt.timedelta(days=1)}
    root, _ = w.x509_signed(subject, **kw)
    if case == "rfc4514":
        return Case(str(root), _x509_policy(w, "CN=Jane Doe,CN=jdoe,OU=Users,DC=cern,DC=ch"))
    return Case(str(root), _x509_policy(w))


def _revoked(w: World, *, listed: bool) -> Case:
    root = w.tmp / "revoked"
    shutil.copytree(w.bundle, root)
    (root / "hepbundle.sig").unlink()
    user = pki.make_cert(w.grid_ca)
    victim = user if listed else pki.make_cert(w.grid_ca, pki.grid_name("someone-else"))
    cert, key = user.write(w.tmp, "user")
    sign(root, X509Signer(cert, key))
    igtf = pki.write_igtf_dir(
        w.tmp / "certificates",
        pki.make_ca("Other CA"),
        w.grid_ca,
        crls={1: pki.make_crl(w.grid_ca, [victim.cert])},
    )
    p = w.write_policy(
        "version: 1\nrules:\n  - namespace: atlas\n    signers:\n"
        f"      - x509: {{ca_dir: {igtf}, subject: '/DC=ch/DC=cern/OU=Users/CN=jdoe/*'}}\n"
    )
    return Case(str(root), p, same_message=listed is False)


def _proxy(w: World) -> Case:
    """A bundle signed (by hand: hepbundle refuses to sign with one) with an RFC 3820 proxy."""
    root = w.tmp / "proxy"
    shutil.copytree(w.bundle, root)
    (root / "hepbundle.sig").unlink()
    user = pki.make_cert(w.grid_ca)
    cert, key = user.write(w.tmp, "user")
    sign(root, X509Signer(cert, key))
    proxy = pki.make_proxy(user)
    doc = json.loads((root / "hepbundle.sig").read_text())
    import base64

    from cryptography.hazmat.primitives import serialization

    der = proxy.cert.public_bytes(serialization.Encoding.DER)
    doc["verificationMaterial"]["x509CertificateChain"]["certificates"][0]["rawBytes"] = (
        base64.b64encode(der).decode()
    )
    (root / "hepbundle.sig").write_text(json.dumps(doc))
    return Case(str(root), _x509_policy(w, "*"))


# --- RFC 3161 timestamps (a real TSA on loopback: openssl ts -reply) ---------------------------


@pytest.fixture
def tsa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    allow_loopback(monkeypatch)
    cfg, ca = make_tsa(tmp_path / "tsa")
    with serve_tsa(cfg) as url:
        yield url, ca


def _tsa_policy(w: World, tsa_ca: Path | None, name: str = "tsa-policy.yaml") -> Path:
    tsa = f"tsa: {{ca: [{tsa_ca}]}}\n" if tsa_ca else ""
    return w.write_policy(
        f"version: 1\n{tsa}rules:\n  - namespace: atlas\n    signers:\n"
        f"      - x509: {{ca: {w.grid_ca_pem}}}\n      - {{key: {w.key[1]}}}\n",
        name,
    )


def _stamped(w: World, url: str, tsa_ca: Path, case: str) -> Case:
    """A bundle signed with a grid certificate (or the key) and a TSA token over the signature."""
    root = w.tmp / f"stamped-{case}"
    shutil.copytree(w.bundle, root)
    (root / "hepbundle.sig").unlink()
    now = dt.datetime.now(dt.UTC)
    short = case.startswith("expired")  # a certificate that expires seconds after signing
    user = pki.make_cert(
        w.grid_ca,
        **(
            {"not_before": now - dt.timedelta(days=1), "not_after": now + dt.timedelta(seconds=3)}
            if short
            else {}
        ),  # type: ignore[arg-type]
    )
    cert, key = user.write(w.tmp, f"user-{case}")
    signer = KeySigner(w.key[0]) if case == "key-no-tsa" else X509Signer(cert, key)
    sign(root, signer, tsa_url=None if case == "expired-no-token" else url)
    if case == "mismatched":
        import base64

        from hepbundle._signers.timestamp import request_timestamp

        doc = json.loads((root / "hepbundle.sig").read_text())
        stamps = doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        token = request_timestamp(url, b"some other signature")
        stamps[0]["signedTimestamp"] = base64.b64encode(token).decode()
        (root / "hepbundle.sig").write_text(json.dumps(doc))
    if short:  # years later, in a few seconds: the certificate has expired
        import time

        time.sleep(
            max(0.0, (now + dt.timedelta(seconds=4) - dt.datetime.now(dt.UTC)).total_seconds())
        )
    if case in ("policy-without-tsa", "key-no-tsa"):
        return Case(str(root), _tsa_policy(w, None))
    if case == "other-tsa":
        _, other = make_tsa(w.tmp / "other-tsa", cn="Other TSA")
        return Case(str(root), _tsa_policy(w, other), same_message=False)
    return Case(str(root), _tsa_policy(w, tsa_ca), same_message=case != "mismatched")


TIMESTAMPED = (
    "ok",  # a valid certificate and a token: verified, judged at the TSA's time
    "expired-with-token",  # the certificate expired after signing: the token proves the time
    "expired-no-token",  # the same without a token: refused
    "policy-without-tsa",  # a token, and the policy names no TSA: refused
    "key-no-tsa",  # the same for a key signature
    "other-tsa",  # a genuine token from a TSA the policy does not trust
    "mismatched",  # a genuine token over other bytes
)


@pytest.mark.parametrize("case", TIMESTAMPED)
def test_same_timestamp_verdict(world: World, tsa: tuple[str, Path], case: str) -> None:
    assert_same_verdict(_stamped(world, *tsa, case))


def _raw_policy(w: World, data: bytes, *, same: bool = True) -> Case:
    p = w.tmp / "raw-policy.yaml"
    p.write_bytes(data)
    return Case(str(w.bundle), p, same_message=same)


CASES: dict[str, Callable[[World], Case]] = {
    # the golden bundle, kept forever: key + RSA grid certificate co-signature
    "golden": golden,
    "golden-lazy-path": lambda w: _with(golden(w), file="model/model.onnx"),
    "golden-flip": lambda w: golden(w, tamper=lambda r: _flip(r, "model/model.onnx")),
    "golden-x509-only-wrong-dn": lambda w: golden(
        w,
        policy="version: 1\nrules:\n  - namespace: demo\n    signers:\n"
        "      - x509: {ca: ca.pem, subject: '/DC=ch/DC=cern/OU=Users/CN=other/*'}\n",
    ),
    # integrity
    "clean": lambda w: Case(str(w.bundle), w.policy),
    # trust by default: without a policy (given, HEPBUNDLE_POLICY or a trust root) refused;
    # integrity only must be asked for by name and is never reported as verified
    "clean-no-policy": lambda w: Case(str(w.bundle)),
    "clean-no-policy-lazy-path": lambda w: Case(str(w.bundle), file="model/weights.bin"),
    "clean-integrity-only": lambda w: Case(str(w.bundle), verify="integrity"),
    "clean-integrity-only-path": lambda w: Case(
        str(w.bundle), file="model/weights.bin", verify="integrity"
    ),
    "byte-flip-integrity-only": _tamper(_flip, verify="integrity"),
    "policy-env-empty": lambda w: Case(str(w.bundle), env={"HEPBUNDLE_POLICY": ""}),
    "policy-env-blank": lambda w: Case(str(w.bundle), env={"HEPBUNDLE_POLICY": "  "}),
    "policy-env-missing-file": lambda w: Case(
        str(w.bundle), env={"HEPBUNDLE_POLICY": str(w.tmp / "absent.yaml")}
    ),
    "policy-env-unreadable": lambda w: Case(
        str(w.bundle), env={"HEPBUNDLE_POLICY": str(w.write_policy("version: 2\nrules: []\n"))}
    ),
    "policy-env": lambda w: Case(str(w.bundle), env={"HEPBUNDLE_POLICY": str(w.policy)}),
    "byte-flip": _tamper(_flip),
    "byte-flip-lazy": _tamper(_flip, file="model/weights.bin"),
    "byte-flip-other-file-lazy": _tamper(_flip, file="model/model.onnx"),
    "append": _tamper(lambda r: _append(r / "model" / "weights.bin")),
    "truncate": _tamper(lambda r: os.truncate(r / "model" / "weights.bin", 10)),
    "extra-file": _tamper(lambda r: (r / "model" / "extra.py").write_text("x")),
    "missing-file": _tamper(lambda r: (r / "model" / "weights.bin").unlink()),
    "missing-file-lazy": _tamper(
        lambda r: (r / "model" / "weights.bin").unlink(), file="model/weights.bin"
    ),
    "renamed-file": _tamper(lambda r: (r / "model" / "weights.bin").rename(r / "model" / "w.bin")),
    "symlink-escape": _tamper(_symlink_escape),
    "symlink-escape-lazy": _tamper(_symlink_escape, file="model/weights.bin"),
    "symlink-inside": _tamper(_symlink_inside),
    "symlinked-dir-escape": _tamper(_dir_escape),
    "symlinked-dir-escape-lazy": _tamper(_dir_escape, file="model/weights.bin"),
    "unknown-file": lambda w: Case(str(w.bundle), w.policy, file="model/model.onx"),
    "fifo-extra": _tamper(lambda r: os.mkfifo(r / "model" / "pipe")),
    "too-many-entries-no-policy": lambda w: (
        _too_many_entries(w.bundle),
        Case(str(w.bundle), verify="integrity"),
    )[1],
    "too-many-entries": lambda w: (_too_many_entries(w.bundle), Case(str(w.bundle), w.policy))[1],
    # signatures
    "edited-manifest": _tamper(_edit_manifest),
    "malformed-signature": lambda w: _with(
        _tamper(lambda r: (r / "hepbundle.sig").write_text("{not json"))(w), same_message=False
    ),
    "corrupt-signature": _tamper(_corrupt_signature),
    "swapped-signature": _swapped_signature,
    "unsigned": _tamper(lambda r: (r / "hepbundle.sig").unlink()),
    "unsigned-no-policy": lambda w: (
        lambda c: (Path(c.ref, "hepbundle.sig").unlink(), Case(c.ref))[1]
    )(Case(str(w.bundle))),
    "unsigned-integrity-only": lambda w: (lambda c: (Path(c.ref, "hepbundle.sig").unlink(), c)[1])(
        Case(str(w.bundle), verify="integrity")
    ),
    # the signature is checked over the manifest's bytes before they are parsed: an oversized
    # manifest no signature covers, not even JSON, is refused by its signature, unparsed
    "unsigned-oversized-manifest": _tamper(
        lambda r: (r / "hepbundle.json").write_bytes(b"\x00not json" * (200 << 10))
    ),
    # roles are read from the signed statement: a renamed co-signature is refused
    "role-relabel": _role_relabel,
    "wrong-key": _wrong_key,
    "namespace-not-allowed": _namespace_not_allowed,
    "first-rule-wins": _first_rule_wins,
    "stale-cosignature": _stale_cosignature,
    "cosignature-missing": lambda w: _cosign(w, author=False),
    "cosignature-all-of": lambda w: _cosign(w, author=True),
    # X.509
    "x509-ok": lambda w: _x509(w, "ok"),
    "x509-rfc4514-subject": lambda w: _x509(w, "rfc4514"),
    "x509-wrong-dn": lambda w: _x509(w, "wrong-dn"),
    "x509-untrusted-ca": lambda w: Case(
        _x509(w, "untrusted-ca").ref, _x509_policy(w), same_message=False
    ),
    "x509-expired": lambda w: _x509(w, "expired"),
    "x509-revoked": lambda w: _revoked(w, listed=True),
    "x509-crl-of-other-cert": lambda w: _revoked(w, listed=False),
    "x509-proxy": _proxy,
    # policy files the fuzzer found: yaml-cpp reported endless documents for "," (the native
    # reader spun forever), and did not check UTF-8
    "policy-endless-documents": lambda w: _raw_policy(w, b",\n", same=False),
    "policy-two-documents": lambda w: _raw_policy(w, b"version: 1\n---\nversion: 1\n"),
    "policy-not-utf8": lambda w: _raw_policy(w, b"version: 1\nrules: [\xff]\n"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_verdict(world: World, name: str) -> None:
    assert_same_verdict(CASES[name](world))


# --- resolve: catalogue, aliases, latest, yank, digest check, search-path order -------------------


@dataclass(frozen=True)
class Repos:
    a: Path  # atlas/tauid 1.0.0 (prod), 1.1.0, 1.2.0-rc.1, 2.0.0 (yanked)
    b: Path  # atlas/tauid 9.0.0, cms/jet 1.0.0
    policy: Path  # one key for every namespace
    key: Path


@pytest.fixture(scope="module", params=[2, 1], ids=["format2", "format1"])
def repos(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Repos:
    """Repository format 2 (what Python writes) and format 1 (what it still reads)."""
    tmp = tmp_path_factory.mktemp("repos")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        for var in ("HEPBUNDLE_REPO", "HEPBUNDLE_PATH", "HEPBUNDLE_POLICY"):
            mp.delenv(var, raising=False)
        a, b = tmp / "repo-a", tmp / "repo-b"
        for repo in (a, b):
            ensure_repository(repo, fmt=request.param)
        priv, pub = pki.write_key(pki.ec_key(), tmp / "release.pem")
        policy = tmp / "policy.yaml"
        policy.write_text(
            f"version: 1\nrules:\n  - namespace: '*'\n    signers: [{{key: {pub}}}]\n"
        )
        loaded = TrustPolicy.load(policy)
        for repo, name, version, alias in [
            (a, "atlas/tauid", "1.0.0", "prod"),
            (a, "atlas/tauid", "1.1.0", None),
            (a, "atlas/tauid", "1.2.0-rc.1", None),
            (a, "atlas/tauid", "2.0.0", None),
            (b, "atlas/tauid", "9.0.0", None),
            (b, "cms/jet", "1.0.0", None),
        ]:
            bundle = make_bundle(
                tmp, name, version, payload=f"{repo.name}{version}".encode(), key=priv
            )
            publish(bundle, repo, policy=loaded, alias=alias)
        yank("atlas/tauid@2.0.0", "wrong calibration", repo=a)
    return Repos(a, b, policy, priv)


def _copy_repo(r: Repos, tmp: Path) -> Path:
    dest = tmp / "repo-copy"
    shutil.copytree(r.a, dest, symlinks=True)
    for p in [dest, *dest.rglob("*")]:
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | 0o200)
    return dest


def _digest_mismatch(r: Repos, tmp: Path) -> Case:
    """The bundle behind the catalogue was replaced by another, validly signed one."""
    repo = _copy_repo(r, tmp)
    root = repo / "bundles" / "atlas" / "tauid" / "1.0.0"
    doc = json.loads((root / "hepbundle.json").read_text())
    doc["summary"] = "swapped behind the catalogue"
    (root / "hepbundle.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    sign(root, KeySigner(r.key), force=True)
    return Case("atlas/tauid@prod", r.policy, repos=[repo])


def _bad_catalog(r: Repos, tmp: Path, text: str, *, same: bool) -> Case:
    repo = _copy_repo(r, tmp)
    catalog_file(repo, "atlas/tauid").write_text(text)
    return Case("atlas/tauid@prod", r.policy, repos=[repo], same_message=same)


def _bad_repository_file(r: Repos, tmp: Path, text: str) -> Case:
    repo = _copy_repo(r, tmp)
    (repo / "catalog" / "repository.json").write_text(text)
    return Case("atlas/tauid@prod", r.policy, repos=[repo])


def _catalog_path_escape(r: Repos, tmp: Path) -> Case:
    repo = _copy_repo(r, tmp)
    cat = catalog_file(repo, "atlas/tauid")
    doc = json.loads(cat.read_text())
    doc["versions"]["1.0.0"]["path"] = "bundles/atlas/tauid/../../../../etc"
    cat.write_text(json.dumps(doc))
    return Case("atlas/tauid@prod", r.policy, repos=[repo])


RESOLVE: dict[str, Callable[[Repos, Path], Case]] = {
    "version": lambda r, t: Case("atlas/tauid@1.1.0", r.policy, repos=[r.a, r.b]),
    "alias": lambda r, t: Case("atlas/tauid@prod", r.policy, repos=[r.a, r.b]),
    "latest": lambda r, t: Case("atlas/tauid", r.policy, repos=[r.a, r.b]),
    "latest-word": lambda r, t: Case("atlas/tauid@latest", r.policy, repos=[r.a]),
    "prerelease-pinned": lambda r, t: Case("atlas/tauid@1.2.0-rc.1", r.policy, repos=[r.a]),
    "yanked": lambda r, t: Case("atlas/tauid@2.0.0", r.policy, repos=[r.a]),
    "yanked-allowed": lambda r, t: Case(
        "atlas/tauid@2.0.0", r.policy, repos=[r.a], allow_yanked=True
    ),
    "lazy-path": lambda r, t: Case("atlas/tauid@prod", r.policy, "model/model.onnx", repos=[r.a]),
    "unknown-name": lambda r, t: Case("atlas/nope", r.policy, repos=[r.a, r.b]),
    "unknown-name-close": lambda r, t: Case("atlas/tauidd", r.policy, repos=[r.a, r.b]),
    "unknown-name-not-a-repository": lambda r, t: Case("atlas/nope", r.policy, repos=[r.a, t]),
    "unknown-version": lambda r, t: Case(
        "atlas/tauid@3.0.0", r.policy, repos=[r.a], same_message=False
    ),
    "unknown-alias": lambda r, t: Case("atlas/tauid@prdo", r.policy, repos=[r.a]),
    "search-order-second-repo": lambda r, t: Case("cms/jet", r.policy, repos=[r.a, r.b]),
    "search-order-version-in-second": lambda r, t: Case(
        "atlas/tauid@9.0.0", r.policy, repos=[r.a, r.b]
    ),
    "search-order-first-wins": lambda r, t: Case("atlas/tauid", r.policy, repos=[r.b, r.a]),
    "not-a-reference": lambda r, t: Case("Not/A Ref", r.policy, repos=[r.a]),
    "bad-selector": lambda r, t: Case("atlas/tauid@Prod!", r.policy, repos=[r.a]),
    "no-repository": lambda r, t: Case("atlas/tauid", r.policy),
    "not-a-repository": lambda r, t: Case("atlas/tauid", r.policy, repos=[t]),
    "not-repositories": lambda r, t: Case("atlas/tauid", r.policy, repos=[t, t / "absent"]),
    "digest-mismatch": _digest_mismatch,
    "catalog-truncated": lambda r, t: _bad_catalog(r, t, '{"mediaType": ', same=False),
    "catalog-nested": lambda r, t: _bad_catalog(r, t, "[" * 50 + "]" * 50, same=True),
    "catalog-unknown-format": lambda r, t: _bad_catalog(r, t, '{"mediaType": "x"}', same=True),
    "catalog-path-escape": _catalog_path_escape,
    "repository-unknown-format": lambda r, t: _bad_repository_file(r, t, '{"mediaType": "x"}'),
    "repository-negative-serial": lambda r, t: _bad_repository_file(
        r, t, '{"mediaType": "application/vnd.hepbundle.repository.v2+json", "serial": -1}'
    ),
}


@pytest.mark.parametrize("name", sorted(RESOLVE))
def test_same_resolve_verdict(repos: Repos, tmp_path: Path, name: str) -> None:
    assert_same_verdict(RESOLVE[name](repos, tmp_path))


# --- validity scopes: the job's context, ns/name@valid (bundle-spec/validity.md) ----------------


@dataclass(frozen=True)
class Scoped:
    repo: Path  # atlas/tauid 1.0.0 runs 100-199, 1.1.0 (prod) 200-299, 1.2.0 300-, 1.3.0 yanked
    policy: Path
    key: Path


#: each version's validity section (YAML under validity:); 1.3.0 is yanked after publishing
SCOPES = {
    "1.0.0": "  runs: [{first: 100, last: 199}]\n  times: [{since: 2024-04-01, until: 2024-11-01}]\n",
    "1.1.0": "  runs: [{first: 200, last: 299}]\n  releases: ['Athena 25.0.*', CMSSW_15_0_*]\n"
    "  runtimes: ['onnxruntime >= 1.18, < 2']\n  scope: {beam: [pp, 'p*']}\n",
    "1.2.0": "  runs: [{first: 300}]\n",
    "1.3.0": "  runs: [{first: 300}]\n",
}


@pytest.fixture(scope="module")
def scoped(tmp_path_factory: pytest.TempPathFactory) -> Scoped:
    from .conftest import signed_scoped_versions

    tmp = tmp_path_factory.mktemp("scoped")
    priv, pub = pki.write_key(pki.ec_key(), tmp / "release.pem")
    policy = tmp / "policy.yaml"
    policy.write_text(f"version: 1\nrules:\n  - namespace: '*'\n    signers: [{{key: {pub}}}]\n")
    repo = tmp / "repo"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
        for v, b in signed_scoped_versions(tmp, priv, SCOPES):
            publish(
                b.root,
                repo,
                policy=TrustPolicy.load(policy),
                alias="prod" if v == "1.1.0" else None,
            )
        yank("atlas/tauid@1.3.0", "wrong calibration", repo=repo)
    return Scoped(repo, policy, priv)


def _scoped(ref: str, context: str | None = None, **kw: object) -> Callable[[Scoped, Path], Case]:
    return lambda s, t: Case(
        ref,
        s.policy,
        "model/model.onnx",
        repos=[s.repo],
        context=context,
        **kw,  # type: ignore[arg-type]
    )


def _forged_scope(s: Scoped, tmp: Path) -> Case:
    """The catalogue's record of 1.1.0 edited to claim run 50: chosen, then refused on the
    verified manifest (runs 200-299)."""
    repo = tmp / "repo-copy"
    shutil.copytree(s.repo, repo)
    cat = catalog_file(repo, "atlas/tauid")
    cat.chmod(0o644)
    doc = json.loads(cat.read_text())
    doc["versions"]["1.1.0"]["validity"] = {"runs": [{"first": 0, "last": 299}]}
    cat.write_text(json.dumps(doc))
    return Case("atlas/tauid@valid", s.policy, "model/model.onnx", repos=[repo], context="run=50")


def _unreadable_record(s: Scoped, tmp: Path) -> Case:
    """The newest release's recorded scope is malformed: never the valid one (1.1.0 is)."""
    repo = tmp / "repo-copy"
    shutil.copytree(s.repo, repo)
    cat = catalog_file(repo, "atlas/tauid")
    cat.chmod(0o644)
    doc = json.loads(cat.read_text())
    doc["versions"]["1.2.0"]["validity"] = {"runs": "300"}
    cat.write_text(json.dumps(doc))
    return Case("atlas/tauid@valid", s.policy, "model/model.onnx", repos=[repo], context="run=250")


def _signed_scope(
    validity: object, context: str | None = None, *, same: bool = True
) -> Callable[[Scoped, Path], Case]:
    """1.2.0 with its manifest's validity section replaced by ``validity`` and signed again by
    the release key: a signed manifest whose scope the builder would never have written."""

    def case(s: Scoped, tmp: Path) -> Case:
        root = tmp / "tauid-1.2.0"
        shutil.copytree(s.repo / "bundles/atlas/tauid/1.2.0", root)
        for p in [root, *root.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
        doc = json.loads((root / "hepbundle.json").read_text())
        doc["validity"] = validity
        data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
        (root / "hepbundle.json").write_bytes(data)
        # sign() opens the bundle first and so refuses this manifest: the statement is written
        # by its own step, over the manifest's file digests and the new manifest's digest
        alg = algorithm(doc["hashing"]["algorithm"])
        digests = {f["path"]: f[alg.name] for f in doc["files"]}
        digests["hepbundle.json"] = alg.hex(data)
        _write_signature(
            root, None, "atlas/tauid@1.2.0", digests, alg.name, KeySigner(s.key), force=True
        )
        # same: C++ words the schema's message as jsonschema does (not its "did you mean")
        return Case(str(root), s.policy, "model/model.onnx", context=context, same_message=same)

    return case


VALIDITY: dict[str, Callable[[Scoped, Path], Case]] = {
    "prod-covered": _scoped("atlas/tauid@prod", "run=250"),
    "prod-run-outside": _scoped("atlas/tauid@prod", "run=456789,release=CMSSW_15_0_3"),
    "prod-release-normalised": _scoped("atlas/tauid@prod", "release=Athena,25.0.12"),
    "prod-release-excluded": _scoped("atlas/tauid@prod", "release=CMSSW_14_0_1,run=250"),
    "prod-runtime-admitted": _scoped("atlas/tauid@prod", "onnxruntime=1.18.0"),
    "prod-runtime-excluded": _scoped("atlas/tauid@prod", "onnxruntime=2.1"),
    "prod-free-key-glob": _scoped("atlas/tauid@prod", "beam=pPb"),
    "prod-free-key-excluded": _scoped("atlas/tauid@prod", "beam=PbPb"),
    "prod-unrestricted-key": _scoped("atlas/tauid@prod", "campaign=mc23"),
    "pinned-time-inside": _scoped("atlas/tauid@1.0.0", "time=2024-10-31T23:59:59Z"),
    "pinned-time-until-excluded": _scoped("atlas/tauid@1.0.0", "time=2024-11-01"),
    "latest-excluded": _scoped("atlas/tauid", "run=150"),
    "valid-first-iov": _scoped("atlas/tauid@valid", "run=150"),
    "valid-second-iov-last-run": _scoped("atlas/tauid@valid", "run=299"),
    "valid-open-ended-skips-yanked": _scoped("atlas/tauid@valid", "run=450000"),
    "valid-no-version-covers": _scoped("atlas/tauid@valid", "run=50"),
    "valid-key-no-version-restricts": _scoped("atlas/tauid@valid", "campaign=mc23"),
    "valid-no-context": _scoped("atlas/tauid@valid"),
    "valid-env-context": _scoped("atlas/tauid@valid", env={"HEPBUNDLE_CONTEXT": "run=250"}),
    "env-context-excludes": _scoped("atlas/tauid", env={"HEPBUNDLE_CONTEXT": "run=150"}),
    "context-argument-wins": _scoped(
        "atlas/tauid@prod", "run=201", env={"HEPBUNDLE_CONTEXT": "run=150"}
    ),
    "forged-catalogue-scope": _forged_scope,
    "unreadable-record-skipped": _unreadable_record,
    "path-ref-excluded": lambda s, t: Case(
        str(s.repo / "bundles/atlas/tauid/1.2.0"), s.policy, "model/model.onnx", context="run=50"
    ),
    "context-not-key-value": _scoped("atlas/tauid@prod", "run"),
    "context-bad-run": _scoped("atlas/tauid@prod", "run=x"),
    "context-bad-key": _scoped("atlas/tauid@prod", "Run=1"),
    "context-key-twice": _scoped("atlas/tauid@prod", "run=1,run=2"),
    "context-empty-value": _scoped("atlas/tauid@prod", "run=,beam=pp"),
    "context-bad-date": _scoped("atlas/tauid@prod", "time=2024-02-30"),
    "context-bad-time": _scoped("atlas/tauid@prod", "time=yesterday"),
    "env-context-malformed": _scoped("atlas/tauid@prod", env={"HEPBUNDLE_CONTEXT": "run"}),
    # a malformed signed section is refused at open (the manifest's schema), context or not
    "signed-scope-not-object": _signed_scope("runs"),
    "signed-scope-null": _signed_scope(None),
    "signed-scope-empty": _signed_scope({}),
    "signed-scope-unknown-key": _signed_scope({"runz": [{"first": 1}]}, same=False),
    "signed-scope-runs-not-list": _signed_scope({"runs": "300"}, "run=300"),
    "signed-scope-run-negative": _signed_scope({"runs": [{"first": -1}]}),
    "signed-scope-run-not-integer": _signed_scope({"runs": [{"first": "300"}]}),
    "signed-scope-run-bool": _signed_scope({"runs": [{"first": True}]}),
    "signed-scope-range-unknown-key": _signed_scope({"runs": [{"first": 1, "lst": 3}]}, same=False),
    "signed-scope-time-pattern": _signed_scope({"times": [{"since": "yesterday"}]}),
    "signed-scope-free-key-reserved": _signed_scope({"scope": {"run": "1"}}, same=False),
    "signed-scope-runtime-malformed": _signed_scope({"runtimes": "onnxruntime"}),
    "signed-scope-release-empty": _signed_scope({"releases": [""]}),
    # what the schema admits and the scope's own rules refuse: opened without a context,
    # refused (FormatError) once a context asks
    "signed-scope-run-range-reversed": _signed_scope({"runs": [{"first": 300, "last": 100}]}),
    "signed-scope-run-range-reversed-context": _signed_scope(
        {"runs": [{"first": 300, "last": 100}]}, "run=200"
    ),
    "signed-scope-whole-number-float": _signed_scope({"runs": [{"first": 300.0}]}),
    # the context: run numbers are ASCII digits; context="" is no context, whatever the env says
    "context-run-unicode-digits": _scoped("atlas/tauid@prod", "run=\u0662\u0665\u0660"),
    "context-run-superscript": _scoped("atlas/tauid@prod", "run=\u00b2"),
    "context-run-fullwidth": _scoped("atlas/tauid@prod", "run=\uff12\uff15\uff10"),
    "context-empty-ignores-env": _scoped(
        "atlas/tauid@prod", "", env={"HEPBUNDLE_CONTEXT": "run=150"}
    ),
    "context-commas-ignores-env": _scoped(
        "atlas/tauid@prod", " , ", env={"HEPBUNDLE_CONTEXT": "run=150"}
    ),
    "context-empty-valid": _scoped("atlas/tauid@valid", "", env={"HEPBUNDLE_CONTEXT": "run=250"}),
}


@pytest.mark.parametrize("name", sorted(VALIDITY))
def test_same_validity_verdict(
    scoped: Scoped, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.delenv("HEPBUNDLE_CONTEXT", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert_same_verdict(VALIDITY[name](scoped, tmp_path))


# --- malformed inputs: the native side gives one clean error, quickly -----------------------------


def _manifest(text: bytes) -> Callable[[Path], None]:
    return lambda root: (root / "hepbundle.json").write_bytes(text)


def _sparse_manifest(root: Path) -> None:
    with (root / "hepbundle.json").open("wb") as f:
        f.truncate(300 << 20)


def _fifo(name: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        (root / name).unlink()
        os.mkfifo(root / name)

    return make


MALFORMED: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated-json": (_manifest(b'{"mediaType": "application/vnd.hepbundle'), "FormatError"),
    "deep-nesting": (_manifest(b"[" * 100_000 + b"]" * 100_000), "FormatError"),
    "deep-object-nesting": (_manifest(b'{"a":' * 100_000 + b"1" + b"}" * 100_000), "FormatError"),
    "300-mb-manifest": (_sparse_manifest, "FormatError"),
    "fifo-manifest": (_fifo("hepbundle.json"), "FormatError"),
    "fifo-payload": (_fifo("model/weights.bin"), "IntegrityError"),
    "nul-in-path": (
        lambda r: (r / "hepbundle.json").write_text(
            (r / "hepbundle.json").read_text().replace("model/weights.bin", "model/\\u0000w.bin")
        ),
        "PathError",
    ),
    "deep-signature": (
        lambda r: (r / "hepbundle.sig").write_bytes(b"[" * 100_000),
        "SignatureError",
    ),
    "not-utf8-manifest": (_manifest(b"\xff\xfe{}"), "FormatError"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_input_gives_a_clean_error(world: World, name: str) -> None:
    import time

    tamper, error = MALFORMED[name]
    tamper(world.bundle)
    start = time.monotonic()
    cls, message = native_verdict(Case(str(world.bundle), world.policy))
    assert (cls, time.monotonic() - start < 10) == (error, True), message
    assert "\n" not in message and len(message) < 2000


# --- trust by default: the repository's trust root, pins, trust on first use ------------------


@dataclass(frozen=True)
class Trusted:
    """A ``repo init`` repository (trust root: the release key, catalogue signed by it, accepted
    on this node) with atlas/tauid 1.0.0 and 1.1.0 (prod), and one without a trust root."""

    root: Path
    bare: Path
    key: Path
    pub: Path
    tmp: Path

    def known(self) -> Path:
        from hepbundle.repository.trust import known_repositories_file

        return known_repositories_file()

    def digest(self) -> str:
        import hashlib

        return (
            "sha256:"
            + hashlib.sha256((self.root / "catalog" / "trust.json").read_bytes()).hexdigest()
        )


@pytest.fixture(params=[2, 1], ids=["format2", "format1"])
def trusted(tmp_path: Path, request: pytest.FixtureRequest) -> Trusted:
    from hepbundle.repository import init_repository

    root, bare = tmp_path / "trusted", tmp_path / "bare"
    ensure_repository(root, fmt=request.param)
    ensure_repository(bare, fmt=request.param)
    priv, pub = pki.write_key(pki.ec_key(), tmp_path / "release.pem")
    init_repository(root, TrustPolicy.from_flags(keys=[pub]))
    signer = KeySigner(priv)
    for version, alias in (("1.0.0", None), ("1.1.0", "prod")):
        b = make_bundle(tmp_path, "atlas/tauid", version, payload=version.encode(), key=priv)
        publish(b, root, alias=alias, statement_signer=signer)
        publish(b, bare, alias=alias, policy=TrustPolicy.from_flags(keys=[pub]))
    return Trusted(root, bare, priv, pub, tmp_path)


def _named_key(t: Trusted) -> Case:
    """The trust root's key signer says whose key it is (``name:``, display only): accepted
    alike (pinned, as the node accepted the trust root without the name)."""
    from hepbundle.repository.trust import TRUST_ROOT_FILE

    doc = json.loads((t.root / TRUST_ROOT_FILE).read_text())

    def name(node: object) -> None:
        if isinstance(node, dict):
            if "key" in node:
                node["name"] = "Jane Doe, release manager"
            for v in node.values():
                name(v)
        elif isinstance(node, list):
            for v in node:
                name(v)

    name(doc["policy"])
    (t.root / TRUST_ROOT_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return Case("atlas/tauid@prod", repos=[t.root], env={"HEPBUNDLE_TRUST_ROOT": t.digest()})


def _not_accepted(t: Trusted, **kw: object) -> Case:
    t.known().unlink()
    return Case("atlas/tauid@prod", repos=[t.root], **kw)  # type: ignore[arg-type]


def _trust_root_changed(t: Trusted) -> Case:
    """The trust root swapped for one naming another key (the node accepted the first)."""
    from hepbundle.repository.trust import TRUST_ROOT_FILE

    _, other = pki.write_key(pki.ec_key(), t.tmp / "intruder.pem")
    doc = json.loads((t.root / TRUST_ROOT_FILE).read_text())
    doc["policy"]["rules"][0]["signers"] = {"key": other.read_text()}
    (t.root / TRUST_ROOT_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return Case("atlas/tauid@prod", repos=[t.root])


def _edit_catalog(t: Trusted, change: Callable[[dict[str, object]], object]) -> None:
    path = catalog_file(t.root, "atlas/tauid")
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _hijack(t: Trusted) -> Case:
    """prod edited to point at an older, legitimately signed version (its last signed move: 1.1.0)."""
    _edit_catalog(t, lambda d: d["aliases"].update(prod="1.0.0"))  # type: ignore[attr-defined]
    return Case("atlas/tauid@prod", repos=[t.root])


def _intruder_move(t: Trusted) -> Case:
    """prod moved by a correctly chained statement, signed by a key the trust root does not allow."""
    from hepbundle.repository import read_name_catalog
    from hepbundle.repository.statements import sign_changes

    intruder, _ = pki.write_key(pki.ec_key(), t.tmp / "intruder.pem")
    before = read_name_catalog(t.root, "atlas/tauid")
    after = before.with_alias("prod", "1.0.0", actor="mallory")
    signed = sign_changes(
        before, after, KeySigner(intruder), policy=None, repository="trusted", serial=None
    )
    _edit_catalog(
        t,
        lambda d: (
            d["aliases"].update(prod="1.0.0"),  # type: ignore[attr-defined]
            d.update(statements=list(signed.statements)),
        ),
    )
    return Case("atlas/tauid@prod", repos=[t.root])


def _rollback(t: Trusted) -> Case:
    """An older catalogue file put back after this node saw a newer one (here: seen by the
    native library; the state file is the node cache's, shared with Python)."""
    path = catalog_file(t.root, "atlas/tauid")
    old = path.read_bytes()
    yank("atlas/tauid@1.0.0", "bad calibration", repo=t.root, signer=KeySigner(t.key))
    seen = native_verdict(Case("atlas/tauid@prod", repos=[t.root]))
    assert seen[0] == "ok", seen
    path.write_bytes(old)  # 1.0.0 un-yanked: the chain is one statement shorter
    return Case("atlas/tauid@1.0.0", repos=[t.root])


def _unyank(t: Trusted) -> Case:
    yank("atlas/tauid@1.0.0", "bad calibration", repo=t.root, signer=KeySigner(t.key))
    _edit_catalog(t, lambda d: d["versions"]["1.0.0"].update(yanked=None))  # type: ignore[index]
    return Case("atlas/tauid@1.0.0", repos=[t.root], env={"HEPBUNDLE_NO_CACHE": "1"})


def _hidden_release(t: Trusted) -> Case:
    """1.1.0 removed from the catalogue (and prod with it): ns/name would give 1.0.0."""

    def hide(d: dict[str, object]) -> None:
        d["versions"].pop("1.1.0")  # type: ignore[attr-defined]
        d["aliases"].pop("prod")  # type: ignore[attr-defined]

    _edit_catalog(t, hide)
    return Case("atlas/tauid", repos=[t.root], env={"HEPBUNDLE_NO_CACHE": "1"})


def _serial_rollback(t: Trusted) -> Case:
    from hepbundle.repository.layout import catalog_dir, repository_format

    if repository_format(t.root) == 1:
        path = t.root / "catalog" / "repository.json"
    else:
        path = catalog_dir(t.root, "atlas") / "namespace.json"
    doc = json.loads(path.read_text())
    doc["serial"] = 1
    path.write_text(json.dumps(doc))
    return Case("atlas/tauid@prod", repos=[t.root])


def _serial_below_seen(t: Trusted) -> Case:
    """The serial lowered below what this node has seen (by the native library), though still
    above the name's newest statement: another name of the namespace changed since."""
    from hepbundle.repository.layout import catalog_dir, repository_format

    b = make_bundle(t.tmp, "atlas/other", "1.0.0", payload=b"other", key=t.key)
    publish(b, t.root, statement_signer=KeySigner(t.key))
    seen = native_verdict(Case("atlas/tauid@prod", repos=[t.root]))
    assert seen[0] == "ok", seen
    if repository_format(t.root) == 1:
        path = t.root / "catalog" / "repository.json"
    else:
        path = catalog_dir(t.root, "atlas") / "namespace.json"
    doc = json.loads(path.read_text())
    doc["serial"] -= 1
    path.write_text(json.dumps(doc))
    return Case("atlas/tauid@prod", repos=[t.root])


def _corrupt_statement(t: Trusted, index: int) -> Case:
    import base64

    def corrupt(d: dict[str, object]) -> None:
        env = d["statements"][index]["dsseEnvelope"]  # type: ignore[index]
        sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
        sig[-1] ^= 0xFF
        env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()

    _edit_catalog(t, corrupt)
    return Case("atlas/tauid@prod", repos=[t.root])


def _expired(t: Trusted) -> Case:
    b = make_bundle(t.tmp, "atlas/tauid", "1.2.0", payload=b"1.2.0", key=t.key)
    publish(b, t.root, statement_signer=KeySigner(t.key), expires_days=-1)
    return Case("atlas/tauid@1.2.0", repos=[t.root])


def _approvals(t: Trusted, *, remove: str | None = None, approver: str = "physics") -> Case:
    """A trust root whose prod needs a physics-validation approval; prod moved to 1.1.0 with it."""
    from hepbundle.repository import approve_ref, set_alias, set_trust_root

    physics, physics_pub = pki.write_key(pki.ec_key(), t.tmp / "physics.pem")
    policy = t.tmp / "approvals.yaml"
    policy.write_text(
        "version: 1\nrules:\n  - namespace: 'atlas/*'\n"
        f"    signers: [{{key: {t.pub}}}]\n    catalog: [{{key: {t.pub}}}]\n"
        f"    approvals:\n      prod:\n        physics-validation: {{key: {physics_pub}}}\n"
    )
    set_trust_root(t.root, TrustPolicy.load(policy), reason="prod needs approvals")
    rel = KeySigner(t.key)
    rec = approve_ref("atlas/tauid@1.0.0", "physics-validation", KeySigner(physics), t.root)
    set_alias("atlas/tauid@1.0.0", "prod", t.root, signer=rel)
    if remove == "signature":
        (rec.path / "hepbundle.physics-validation.sig").unlink()
    elif remove == "record":
        shutil.rmtree(rec.path)
    elif remove == "digest":
        doc = json.loads((rec.path / "record.json").read_text())
        doc["manifestSha256"] = "0" * 64
        (rec.path / "record.json").write_text(json.dumps(doc))
    return Case("atlas/tauid@prod", repos=[t.root])


TRUST: dict[str, Callable[[Trusted], Case]] = {
    # a new job with no configuration verifies signatures without being told to
    "trust-root-verifies-untold": lambda t: Case("atlas/tauid@prod", repos=[t.root]),
    "trust-root-lazy-path": lambda t: Case(
        "atlas/tauid@1.0.0", file="model/model.onnx", repos=[t.root]
    ),
    "trust-root-open-by-path": lambda t: Case(str(t.root / "bundles/atlas/tauid/1.1.0")),
    # … and one from a repository without a trust root refuses, saying how to fix it
    "no-trust-root-refused": lambda t: Case("atlas/tauid@prod", repos=[t.bare]),
    "no-trust-root-open-by-path-refused": lambda t: Case(str(t.bare / "bundles/atlas/tauid/1.1.0")),
    "no-trust-root-integrity-only": lambda t: Case(
        "atlas/tauid@prod", repos=[t.bare], verify="integrity"
    ),
    "trust-root-not-accepted": _not_accepted,
    "trust-root-pinned": lambda t: _not_accepted(t, env={"HEPBUNDLE_TRUST_ROOT": t.digest()}),
    "trust-root-pinned-file": lambda t: _not_accepted(
        t, env={"HEPBUNDLE_TRUST_ROOT": f" sha256:{'0' * 64}, {t.root / 'catalog/trust.json'}"}
    ),
    "trust-root-pin-mismatch": lambda t: Case(
        "atlas/tauid@prod", repos=[t.root], env={"HEPBUNDLE_TRUST_ROOT": "sha256:" + "ab" * 32}
    ),
    "trust-root-pin-empty": lambda t: Case(
        "atlas/tauid@prod", repos=[t.root], env={"HEPBUNDLE_TRUST_ROOT": " , "}
    ),
    "trust-root-pin-unreadable": lambda t: Case(
        "atlas/tauid@prod", repos=[t.root], env={"HEPBUNDLE_TRUST_ROOT": str(t.tmp / "absent")}
    ),
    "trust-root-changed": _trust_root_changed,
    "trust-root-named-key": _named_key,
    # signed catalogue statements (the trust root signs the catalogue)
    "statements-latest": lambda t: Case("atlas/tauid", repos=[t.root]),
    "statements-version": lambda t: Case("atlas/tauid@1.0.0", repos=[t.root]),
    "alias-hijack": _hijack,
    "alias-moved-by-intruder": _intruder_move,
    "catalog-rollback": _rollback,
    "catalog-unyank": _unyank,
    "catalog-hidden-release": _hidden_release,
    "catalog-serial-rollback": _serial_rollback,
    "catalog-serial-below-seen": _serial_below_seen,
    "catalog-unsigned": lambda t: (
        _edit_catalog(t, lambda d: d.pop("statements")),
        Case("atlas/tauid@prod", repos=[t.root]),
    )[1],
    "catalog-spliced": lambda t: (
        _edit_catalog(t, lambda d: d["statements"].pop(0)),  # type: ignore[attr-defined]
        Case("atlas/tauid@prod", repos=[t.root]),
    )[1],
    "statement-head-forged": lambda t: _corrupt_statement(t, -1),
    "statement-unused-forged": lambda t: _with(_corrupt_statement(t, 0), ref="atlas/tauid@1.1.0"),
    "catalog-expired": _expired,
    "integrity-only-skips-statements": lambda t: _with(_hijack(t), verify="integrity"),
    # approvals a policy requires for prod, re-checked at every resolve
    "prod-approved": _approvals,
    "prod-approval-signature-removed": lambda t: _approvals(t, remove="signature"),
    "prod-approval-removed": lambda t: _approvals(t, remove="record"),
    "prod-approval-other-digest": lambda t: _approvals(t, remove="digest"),
    "prod-approval-version-unguarded": lambda t: _with(
        _approvals(t, remove="record"), ref="atlas/tauid@1.0.0"
    ),
    # an explicit policy still wins over the trust root (here: one that trusts nobody we have)
    "policy-beats-trust-root": lambda t: Case(
        "atlas/tauid@prod",
        t.tmp.joinpath("other.yaml")
        if t.tmp.joinpath("other.yaml").write_text(
            "version: 1\nrules:\n  - namespace: '*'\n    signers: "
            f"[{{key: {pki.write_key(pki.ec_key(), t.tmp / 'o.pem')[1]}}}]\n"
        )
        else None,
        repos=[t.root],
    ),
}


@pytest.mark.parametrize("name", sorted(TRUST))
def test_same_trust_verdict(trusted: Trusted, name: str) -> None:
    assert_same_verdict(TRUST[name](trusted))


def test_a_named_key_in_the_trust_root_is_accepted_by_both(trusted: Trusted) -> None:
    """``name:`` on a key signer is display only: the verdict is "ok" in Python and C++ (the
    C++ parser refused it as an unknown key before)."""
    case = _named_key(trusted)
    assert python_verdict(case)[0] == "ok"
    assert native_verdict(case)[0] == "ok"
