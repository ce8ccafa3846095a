"""Benchmark of `hepbundle verify` against a 2-thread hashlib SHA-256 baseline, in one run.

    python tools/bench/verify.py [--workdir /tmp/hb-bench-verify] [--large-mib 128 --large-n 8]

Trees: 8 × 128 MiB (1 GiB) and 2000 × 64 KiB. For each: wall time of the `hepbundle verify`
command (a child process, so peak RSS is its own), of the same verification in-process, of the
baseline (hashlib over the same files on 2 threads, 1 MiB reads), and of model_signing's verify
of an EC-key signature over the same directory when model_signing is installed. Prints
throughput ratios against the baseline and the per-file overhead on the small tree. Page cache
is warm for every contender (the files are read once first).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import PY, best_of, run_child, warm, write_random

import hepbundle


def baseline(paths: list[Path]) -> None:
    def one(p: Path) -> str:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while b := f.read(1 << 20):
                h.update(b)
        return h.hexdigest()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, paths))


def make_tree(root: Path, n: int, size: int) -> Path:
    src = root / "src"
    for i in range(n):
        write_random(src / "model" / f"part-{i:05d}.bin", size)
    (src / "hepbundle.yaml").write_text(
        "name: bench/verify\nversion: 1.0.0\nfiles:\n  - path: model\n    role: weights\n"
    )
    return hepbundle.build(src, root / "bundle").root


def model_signing_time(bundle: Path, work: Path) -> float | None:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from model_signing import signing, verifying
    except ImportError:
        return None
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = work / "k.pem", work / "k.pub"
    priv.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    sig = work / "ms.sig"
    signing.Config().use_elliptic_key_signer(private_key=priv).sign(bundle, sig)
    cfg = verifying.Config().use_elliptic_key_verifier(public_key=pub)
    t, _ = best_of(2, lambda: cfg.verify(bundle, sig))
    return t


def bench(label: str, root: Path, n: int, size: int) -> dict[str, float]:
    bundle = make_tree(root, n, size)
    paths = [bundle / f.path for f in hepbundle.open(bundle).manifest.files]
    total = n * size
    warm(paths)
    t_base, _ = best_of(3, lambda: baseline(paths))
    t_lib, rep = best_of(3, lambda: hepbundle.open(bundle).verify())
    assert rep.ok
    t_cli, rss, _ = min(run_child([PY, "-m", "hepbundle", "verify", str(bundle)]) for _ in range(3))
    t_ms = model_signing_time(bundle, root)
    print(f"\n== {label}: {n} files x {size >> 10} KiB = {total / 2**20:.0f} MiB")
    print(f"  baseline hashlib 2 threads : {t_base:7.3f} s  {total / t_base / 2**20:8.0f} MiB/s")
    print(
        f"  hepbundle verify (library) : {t_lib:7.3f} s  {total / t_lib / 2**20:8.0f} MiB/s  ratio {t_base / t_lib:.2f}x"
    )
    print(
        f"  hepbundle verify (command) : {t_cli:7.3f} s  {total / t_cli / 2**20:8.0f} MiB/s  ratio {t_base / t_cli:.2f}x  peak RSS {rss / 2**20:.0f} MiB"
    )
    if t_ms is not None:
        print(
            f"  model_signing verify       : {t_ms:7.3f} s  {total / t_ms / 2**20:8.0f} MiB/s  ratio {t_base / t_ms:.2f}x"
        )
    per_file_us = (t_lib - t_base) / n * 1e6
    print(f"  per-file overhead vs baseline (library): {per_file_us:+.1f} µs")
    return {"base": t_base, "lib": t_lib, "cli": t_cli, "rss": rss, "per_file_us": per_file_us}


def main() -> int:
    # cold verification is what is measured; the node cache has its own figure (load.py)
    os.environ["HEPBUNDLE_NO_CACHE"] = "1"
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--large-mib", type=int, default=128)
    ap.add_argument("--large-n", type=int, default=8)
    ap.add_argument("--small-n", type=int, default=2000)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hb-bench-verify-"))
    try:
        large = bench("large files", work / "large", args.large_n, args.large_mib << 20)
        small = bench("small files", work / "small", args.small_n, 64 << 10)
        half = bench(
            "large files, half size (RSS check)", work / "half", args.large_n, args.large_mib << 19
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n== targets")
    print(
        f"  large-file throughput ratio (library) {large['base'] / large['lib']:.2f}x  (target >= 0.90x)"
    )
    print(
        f"  small-file per-file overhead          {small['per_file_us']:+.1f} µs (target <= 50 µs)"
    )
    print(
        f"  peak RSS command, 128 MiB vs 64 MiB files: {large['rss'] / 2**20:.0f} vs {half['rss'] / 2**20:.0f} MiB (must not grow with file size)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
