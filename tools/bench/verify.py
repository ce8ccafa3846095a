"""Verification and build → sign → publish at the speed the hardware allows, in one run.

    python tools/bench/verify.py [--workdir DIR] [--large-mib 128 --large-n 8] [--small-n 2000]
                                 [--no-pipeline] [--no-model-signing] [--only-pipeline]
                                 [--repeat N] [--existing-repo]

Everything is measured against figures taken in the same run, over the same files, from the
page cache (every file is read once first):

* the **physical limit**: the fastest of BLAKE3 on all threads (``blake3(max_threads=AUTO)``,
  each file through ``update_mmap`` and through 4 MiB reads, the better of the two) and hashlib
  SHA-256 on 2 threads (1 MiB reads);
* ``hepbundle verify`` of a BLAKE3 and of a SHA-256 bundle, in-process (best of 3) and as the
  command (a child process, so its peak RSS is its own), and model_signing's verify of the
  same directories (upstream's own API, EC key) for reference;
* trees: 8 × 128 MiB (1 GiB), 2000 × 64 KiB, and 8 × 64 MiB (peak RSS must not grow with file
  size);
* the pipeline: ``hepbundle build --key --publish`` (build, sign and publish in one process,
  built in the repository's staging area and moved into place: one copy), ``hepbundle build
  --key`` + ``publish`` (local), the three commands ``build`` + ``sign`` + ``publish``, and both
  multi-command forms with ``publish --move`` (the bundle directory renamed into the
  repository: one copy) of the large tree as child processes (hepbundle byte-compiled first,
  as an installed package is), with their ``/proc/<pid>/io`` read counters (``rchar``: every byte any read
  syscall returned, page cache included, Python's own imports too), against ``cp -r`` of the
  sources **plus ``sync``** (publish ends with its copy on the disk, so the baseline's copy must
  be durable too: the fair baseline) plus one hash pass at the physical limit; each run
  publishes into a new repository, or with ``--existing-repo`` into one already holding a
  version (published untimed before the run).

Prints ratios; docs/performance.md records a run with the CPU flags.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import blake3
from _common import PY, best_of, cpu_summary, run_child, warm, write_random

import hepbundle
import hepbundle.repository
import hepbundle.signing

_MIB = 2**20


def sha256_2threads(paths: list[Path]) -> None:
    def one(p: Path) -> str:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while b := f.read(1 << 20):
                h.update(b)
        return h.hexdigest()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(one, paths))


def blake3_mmap(paths: list[Path]) -> None:
    for p in paths:
        blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(p).hexdigest()


def blake3_reads(paths: list[Path]) -> None:
    buf = bytearray(4 << 20)
    view = memoryview(buf)
    for p in paths:
        h = blake3.blake3(max_threads=blake3.blake3.AUTO)
        with open(p, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                h.update(view[:n])
        h.hexdigest()


def limit(paths: list[Path], repeat: int = 3) -> dict[str, float]:
    """Seconds of each physical-limit contender, and the fastest."""
    t = {
        "blake3_mmap": best_of(repeat, lambda: blake3_mmap(paths))[0],
        "blake3_reads": best_of(repeat, lambda: blake3_reads(paths))[0],
        "sha256_2t": best_of(repeat, lambda: sha256_2threads(paths))[0],
    }
    t["limit"] = min(t.values())
    return t


def make_source(root: Path, n: int, size: int) -> Path:
    src = root / "src"
    for i in range(n):
        write_random(src / "model" / f"part-{i:05d}.bin", size)
    (src / "hepbundle.yaml").write_text(
        "name: bench/verify\nversion: 1.0.0\nfiles:\n  - path: model\n    role: weights\n"
    )
    return src


def model_signing_time(bundle: Path, work: Path, alg: str) -> float | None:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from model_signing import hashing, signing, verifying
    except ImportError:
        return None
    key = ec.generate_private_key(ec.SECP256R1())
    priv, pub = work / f"ms-{alg}.pem", work / f"ms-{alg}.pub"
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
    sig = work / f"ms-{alg}.sig"
    signing.Config().use_elliptic_key_signer(private_key=priv).set_hashing_config(
        hashing.Config().use_file_serialization(hashing_algorithm=alg)  # type: ignore[arg-type]
    ).sign(bundle, sig)
    cfg = verifying.Config().use_elliptic_key_verifier(public_key=pub)
    t, _ = best_of(2, lambda: cfg.verify(bundle, sig))
    return t


def rate(total: int, t: float) -> str:
    return f"{t:7.3f} s {total / t / _MIB:8.0f} MiB/s"


def _integrity(root: Path) -> hepbundle.Bundle:
    return hepbundle.open(root, verify="integrity")


def bench(label: str, root: Path, n: int, size: int, ms: bool) -> dict[str, float]:
    src = make_source(root, n, size)
    bundles = {a: hepbundle.build(src, root / a, algorithm=a).root for a in ("blake3", "sha256")}
    # the bundles are unsigned: this measures file verification, asked for by name (no trust
    # policy is configured, and trust by default refuses a plain open)
    paths = [bundles["blake3"] / f.path for f in _integrity(bundles["blake3"]).manifest.files]
    total = n * size
    for b in bundles.values():
        warm([b / f.path for f in _integrity(b).manifest.files])
    lim = limit(paths)
    out: dict[str, float] = {f"limit_{k}": v for k, v in lim.items()}
    print(f"\n== {label}: {n} files x {size >> 10} KiB = {total / _MIB:.0f} MiB")
    print(f"  limit: blake3 all threads, mmap  : {rate(total, lim['blake3_mmap'])}")
    print(f"  limit: blake3 all threads, reads : {rate(total, lim['blake3_reads'])}")
    print(f"  limit: hashlib sha256, 2 threads : {rate(total, lim['sha256_2t'])}")
    for alg, b in bundles.items():
        t_lib, rep = best_of(3, lambda b=b: _integrity(b).verify())  # type: ignore[misc]
        assert rep.ok
        cmd = [PY, "-m", "hepbundle", "verify", "--integrity-only", str(b)]
        t_cli, rss, _ = min(run_child(cmd) for _ in range(3))
        out[f"{alg}_lib"], out[f"{alg}_cli"], out[f"{alg}_rss"] = t_lib, t_cli, rss
        print(
            f"  hepbundle verify {alg} (library) : {rate(total, t_lib)}  "
            f"{lim['limit'] / t_lib:.2f}x limit"
        )
        print(
            f"  hepbundle verify {alg} (command) : {rate(total, t_cli)}  "
            f"{lim['limit'] / t_cli:.2f}x limit  peak RSS {rss / _MIB:.0f} MiB"
        )
        if ms:
            t_ms = model_signing_time(b, root, alg)
            if t_ms is not None:
                out[f"{alg}_ms"] = t_ms
                print(
                    f"  model_signing verify {alg} (API) : {rate(total, t_ms)}  "
                    f"{lim['limit'] / t_ms:.2f}x limit"
                )
    out["per_file_us"] = (out["blake3_lib"] - lim["limit"]) / n * 1e6
    print(f"  per-file overhead of blake3 verify vs the limit: {out['per_file_us']:+.1f} µs")
    shutil.rmtree(root, ignore_errors=True)
    return out


# --- the pipeline -------------------------------------------------------------------------------

# runs the hepbundle command in this process and appends its /proc/self/io to a file at exit
_IO_LAUNCHER = """
import atexit, sys
log = sys.argv[1]
def dump():
    with open(log, "a") as f:
        f.write(open("/proc/self/io").read().replace("\\n", " ") + "\\n")
atexit.register(dump)
sys.argv = ["hepbundle", *sys.argv[2:]]
from hepbundle.cli import main
main()
"""


def run_counted(args: list[str], io_log: Path, env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and rchar of one hepbundle command in a child process."""
    t0 = time.perf_counter()
    p = subprocess.run(
        [PY, "-c", _IO_LAUNCHER, str(io_log), *args], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"hepbundle {' '.join(args)} failed: {p.stderr[-2000:]}")
    fields = io_log.read_text().splitlines()[-1].split()
    counters = {k.rstrip(":"): int(v) for k, v in zip(fields[::2], fields[1::2], strict=True)}
    return wall, counters["rchar"]


def pipeline(
    root: Path, n: int, size: int, repeat: int, existing: bool = False
) -> dict[str, float]:
    """``existing``: every timed publish goes into a repository that already holds a version
    (another name, published untimed just before), as a release does; else into a new one
    (the first publish also writes and accepts the trust root)."""
    src = make_source(root, n, size)
    payload = n * size
    files = sorted((src / "model").iterdir())
    warm(files)
    key = root / "k.pem"
    hepbundle.signing.generate_key(key)
    pub = root / "k.pub.pem"
    policy = root / "policy.yaml"
    policy.write_text(f"version: 1\nrules:\n  - namespace: '*'\n    signers:\n      - key: {pub}\n")
    env = {
        **os.environ,
        "HEPBUNDLE_CACHE_DIR": str(root / "cache"),
        "HEPBUNDLE_POLICY": str(policy),
    }
    env.pop("HEPBUNDLE_NO_CACHE", None)
    # an installed hepbundle has its bytecode (pip compiles it); a checkout run under
    # PYTHONDONTWRITEBYTECODE would compile every hepbundle module in every child (~0.05 s):
    # compile the package once (its __pycache__, as pip does; git ignores it)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [PY, "-m", "compileall", "-q", str(Path(hepbundle.__file__).parent)],
        env=env, check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip

    def cp(then_sync: bool) -> None:
        dst = root / "cp"
        shutil.rmtree(dst, ignore_errors=True)
        subprocess.run(["sync"], check=True)  # start from no dirty pages, as the pipeline does
        t0 = time.perf_counter()
        subprocess.run(["cp", "-r", str(src), str(dst)], check=True)
        if then_sync:
            subprocess.run(["sync"], check=True)
        times.append(time.perf_counter() - t0)

    times: list[float] = []
    for _ in range(repeat):
        cp(False)
    t_cp = min(times)
    times.clear()
    for _ in range(repeat):
        cp(True)
    t_cp_sync = min(times)
    shutil.rmtree(root / "cp", ignore_errors=True)
    t_hash = limit(files, repeat)["limit"]
    io_log = root / "io.log"
    seed = root / "seed"
    if existing:
        (root / "seed-src").mkdir()
        (root / "seed-src" / "w.bin").write_bytes(b"seed")
        (root / "seed-src" / "hepbundle.yaml").write_text(
            "name: bench/seed\nversion: 1.0.0\nfiles:\n  - path: w.bin\n    role: weights\n"
        )
        run_counted(["build", str(root / "seed-src"), "-o", str(seed), "--key", str(key)],
                    io_log, env)  # fmt: skip
    variants = {
        "build --key --publish": lambda d, r: {
            "build --publish": ["build", str(src), "--key", str(key), "--publish", str(r)],
        },
        "build --key + publish": lambda d, r: {
            "build --key": ["build", str(src), "-o", str(d), "--key", str(key)],
            "publish": ["publish", str(d), "--repo", str(r), "--key", str(pub)],
        },
        "build + sign + publish": lambda d, r: {
            "build": ["build", str(src), "-o", str(d)],
            "sign": ["sign", str(d), "--key", str(key)],
            "publish": ["publish", str(d), "--repo", str(r), "--key", str(pub)],
        },
        "build --key + publish --move": lambda d, r: {
            "build --key": ["build", str(src), "-o", str(d), "--key", str(key)],
            "publish --move": ["publish", str(d), "--repo", str(r), "--key", str(pub), "--move"],
        },
        "build + sign + publish --move": lambda d, r: {
            "build": ["build", str(src), "-o", str(d)],
            "sign": ["sign", str(d), "--key", str(key)],
            "publish --move": ["publish", str(d), "--repo", str(r), "--key", str(pub), "--move"],
        },
    }
    base = t_cp_sync + t_hash
    into = "an existing repository" if existing else "a new repository each run"
    print(f"\n== pipeline (local) of {n} x {size >> 20} MiB, into {into}")
    print(f"  cp -r of the sources           : {t_cp:7.3f} s")
    print(f"  cp -r + sync (the copy durable): {t_cp_sync:7.3f} s")
    print(f"  one hash pass at the limit     : {t_hash:7.3f} s")
    print(f"  baseline cp -r + sync + hash   : {base:7.3f} s")
    out: dict[str, float] = {"base": base, "cp": t_cp, "cp_sync": t_cp_sync, "hash": t_hash}
    for label, steps_of in variants.items():
        runs = []
        for i in range(repeat):
            dist, repo = root / f"dist{i}", root / f"repo{i}"
            if existing:  # untimed: the repository exists, with its trust root
                run_counted(["publish", str(seed), "--repo", str(repo), "--key", str(pub)],
                            io_log, env)  # fmt: skip
            subprocess.run(["sync"], check=True)
            got = {k: run_counted(a, io_log, env) for k, a in steps_of(dist, repo).items()}
            runs.append(got)
            shutil.rmtree(dist, ignore_errors=True)
            shutil.rmtree(repo, ignore_errors=True)
            shutil.rmtree(root / "cache", ignore_errors=True)
        best = min(runs, key=lambda r: sum(w for w, _ in r.values()))
        wall = sum(w for w, _ in best.values())
        rchar = sum(c for _, c in best.values())
        print(f"  -- {label}")
        for name, (w, c) in best.items():
            print(f"     hepbundle {name:<14}   : {w:7.3f} s  read {c / payload:5.2f}x payload")
        walls = [sum(w for w, _ in r.values()) for r in runs]
        print(
            f"     total {wall:7.3f} s (best of {repeat}; all: {', '.join(f'{w:.2f}' for w in walls)}"
            f" s) = {wall / base:.2f}x (cp -r + sync + one hash pass), "
            f"{wall / (t_cp + t_hash):.2f}x without the sync; bytes read {rchar / payload:.2f}x"
        )
        key_ = _KEYS[label]
        out[f"{key_}_wall"], out[f"{key_}_read"] = wall, rchar / payload
    shutil.rmtree(root, ignore_errors=True)
    return out


#: pipeline variant → the key of its figures (--json)
_KEYS = {
    "build --key --publish": "direct",
    "build --key + publish": "one",
    "build + sign + publish": "three",
    "build --key + publish --move": "one_move",
    "build + sign + publish --move": "three_move",
}


def main() -> int:
    os.environ["HEPBUNDLE_NO_CACHE"] = "1"  # verification: cold, what a first open costs
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--large-mib", type=int, default=128)
    ap.add_argument("--large-n", type=int, default=8)
    ap.add_argument("--small-n", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=2, help="pipeline runs (the best is kept)")
    ap.add_argument("--no-pipeline", action="store_true")
    ap.add_argument("--only-pipeline", action="store_true", help="skip the verify trees")
    ap.add_argument(
        "--existing-repo",
        action="store_true",
        help="pipeline: publish into a repository that exists (seeded untimed), not a new one",
    )
    ap.add_argument("--no-model-signing", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hb-bench-verify-"))
    print(f"CPU: {cpu_summary()}; hepbundle {hepbundle.__version__}; blake3 {blake3.__version__}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ms = not args.no_model_signing
    results: dict[str, dict[str, float]] = {}
    try:
        big = args.large_mib << 20
        if not args.only_pipeline:
            results["large"] = bench("large files", work / "large", args.large_n, big, ms)
            results["small"] = bench("small files", work / "small", args.small_n, 64 << 10, ms)
            results["half"] = bench(
                "large files, half size (RSS check)", work / "half", args.large_n, big // 2, False
            )
        if not args.no_pipeline:
            results["pipeline"] = pipe = pipeline(
                work / "pipe", args.large_n, big, args.repeat, args.existing_repo
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n== targets (load average now: {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    check: Callable[[bool], str] = lambda ok: "ok" if ok else "MISSED"  # noqa: E731
    if not args.only_pipeline:
        verify_targets(results, check)
    if not args.no_pipeline:
        literal = pipe["cp"] + pipe["hash"]
        for label, k in _KEYS.items():
            r = pipe[f"{k}_wall"] / pipe["base"]
            print(f"  {label} wall {r:.2f}x (cp -r + sync + hash) (<= 1.5x)  {check(r <= 1.5)}")
            r = pipe[f"{k}_wall"] / literal
            print(f"  {label} wall {r:.2f}x (cp -r + hash, no sync) (<= 1.5x)  {check(r <= 1.5)}")
            r = pipe[f"{k}_read"]
            print(f"  {label} bytes read {r:.2f}x payload (<= 2x)        {check(r <= 2.0)}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def verify_targets(results: dict[str, dict[str, float]], check: Callable[[bool], str]) -> None:
    large, small, half = results["large"], results["small"], results["half"]
    lim = large["limit_limit"]
    r = lim / large["blake3_lib"]
    print(f"  1 GiB verify (blake3, library) {r:.2f}x the limit (>= 0.90x)   {check(r >= 0.9)}")
    r = lim / large["blake3_cli"]
    print(f"  1 GiB verify (blake3, command) {r:.2f}x the limit (>= 0.90x)   {check(r >= 0.9)}")
    us = small["per_file_us"]
    print(f"  2000 x 64 KiB per-file overhead {us:+.1f} µs (<= 50 µs)        {check(us <= 50)}")
    a, b = large["blake3_rss"] / _MIB, half["blake3_rss"] / _MIB
    print(
        f"  peak RSS 128 vs 64 MiB files: {a:.0f} vs {b:.0f} MiB (flat)    {check(a <= b * 1.1 + 4)}"
    )


if __name__ == "__main__":
    sys.exit(main())
