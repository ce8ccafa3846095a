"""Benchmark of signing and signature checks: what a job pays at open, and what signing costs.

    python tools/bench/signing.py [--workdir /tmp/hb-bench-signing] [--mib 128 --n 4]

One bundle of N × MiB random files, signed with an EC P-256 key. Reported (best of 3, warm page
cache): ``sign`` (checks every file first, then signs the statement), ``open(lazy)`` with a
trust policy (signature only: no payload hashing — the cost a job pays before first use),
``open(full)`` (signature + every digest), the same through X.509 (RSA certificate) and through
the sigstore verifier with a private trust root, and the ``hepbundle verify --key`` command in a
child process (including interpreter start and imports).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from _common import PY, best_of, run_child, warm, write_random

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests import pki
from tests.sigstore_root import PrivateSigstore, PrivateSigstoreSigner

import hepbundle
from hepbundle import signing
from hepbundle.policy import TrustPolicy


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--mib", type=int, default=128)
    ap.add_argument("--n", type=int, default=4)
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hb-bench-signing-"))
    shutil.rmtree(work, ignore_errors=True)
    src = work / "src"
    for i in range(args.n):
        write_random(src / "model" / f"part{i}.bin", args.mib << 20)
    (src / "hepbundle.yaml").write_text(
        "name: bench/signing\nversion: 1.0.0\nfiles:\n  - path: model/\n    role: weights\n"
    )
    b = hepbundle.build(src, work / "bundle")
    warm([b.root / f.path for f in b.manifest.files])
    total = sum(f.size for f in b.manifest.files) / (1 << 20)

    priv, pub = pki.write_key(pki.ec_key(), work / "keys" / "k.pem")
    key_policy = TrustPolicy.from_flags(keys=[pub])
    t_sign, _ = best_of(3, lambda: signing.sign(b.root, signing.KeySigner(priv), force=True))
    rows = [(f"sign --key ({total:.0f} MiB checked first)", t_sign)]
    rows.append(
        ("open(lazy) key policy", best_of(3, lambda: hepbundle.open(b.root, policy=key_policy))[0])
    )
    rows.append(
        (
            "open(full) key policy (node cache warm)",
            best_of(3, lambda: hepbundle.open(b.root, "full", key_policy))[0],
        )
    )
    rows.append(
        (
            f"every digest, no cache ({total:.0f} MiB hashed)",
            best_of(3, lambda: hepbundle.Bundle.load(b.root).verify())[0],
        )
    )

    ca = pki.make_ca()
    cert, key = pki.make_cert(ca, key=pki.rsa_key()).write(work / "keys", "rsa")
    signing.sign(b.root, signing.X509Signer(cert, key), role="author")
    x509_policy = TrustPolicy.from_flags(ca=[pki.write_pem(work / "keys" / "ca.pem", ca.cert)])
    rows.append(
        (
            "open(lazy) x509 RSA policy",
            best_of(3, lambda: hepbundle.open(b.root, policy=x509_policy))[0],
        )
    )

    inst = PrivateSigstore()
    signing.sign(
        b.root, PrivateSigstoreSigner(inst, "ci@cern.ch", "https://gitlab.cern.ch"), role="ci"
    )
    root = inst.write_trusted_root(work / "keys" / "trusted_root.json")
    ss_policy = TrustPolicy.from_flags(
        identity="ci@cern.ch", issuer="https://gitlab.cern.ch", trust_config=root
    )
    rows.append(
        (
            "open(lazy) sigstore policy",
            best_of(3, lambda: hepbundle.open(b.root, policy=ss_policy))[0],
        )
    )

    wall, rss, _ = run_child([PY, "-m", "hepbundle", "verify", str(b.root), "--key", str(pub)])
    rows.append((f"`hepbundle verify --key` child (peak RSS {rss / (1 << 20):.0f} MiB)", wall))
    print(f"bundle: {args.n} × {args.mib} MiB = {total:.0f} MiB, 3 signature files")
    for name, t in rows:
        print(f"  {name:<52} {t * 1000:9.1f} ms")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
