"""Benchmarks of publishing into CVMFS-shaped repositories, ratios measured in one run.

    python tools/bench/cvmfs_publish.py [--names 1000 --per-name 100] [--repeat 9]
                                        [--cycle 300] [--bundles 400]
                                        [--workdir DIR] [--skip-bytes | --skip-batch]

1. **Bytes rewritten per publish.** A CVMFS publish re-processes (hashes, compresses, uploads)
   every file that changed, whole, and every client re-fetches it. Synthesises a large
   repository (default 100,000 versions: 1,000 names × 100, five namespaces) and a small one
   (100 versions: 10 × 10), in format 2 and, for comparison, format 1; then publishes a real
   1 MiB bundle (a new version of an existing name) into each, ``--repeat`` times, and counts the
   bytes of every file that is new or changed (size, mtime or inode) and the publish time.
   Target (issue 16): large / small ≤ 1.5 for bytes and for time. Also with the published name
   cut to the small repository's size (10 versions) in the large one ("large="): the per-name
   catalogue file, rewritten whole by every publish, grows with its name, not the repository.
   1b. ``--cycle`` publishes of small bundles into two names: the mean bytes per publish
   including the rare folds of the recent index shard into the large index.
2. **Batch import through the cvmfs backend** on the ``cvmfs_server`` stand-in
   (``tests/cvmfs_standin.py``, whose publish hashes and compresses every new file as the real
   sync does): ``--bundles`` small signed bundles published by ``hepbundle publish B1 … --backend
   cvmfs`` (one child process) against ``cvmfs_server transaction; cp -r; cvmfs_server publish``
   of the same bundle directories. Counts the transactions the stand-in saw. Target: one
   transaction, wall ≤ 2 × the ``cp -r`` baseline.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import PY, run_child, write_random
from catalog import synthesise

import hepbundle
from hepbundle.repository import publish
from hepbundle.repository.layout import ensure_repository, index_files, repository_format
from hepbundle.signing import KeySigner, generate_key, sign

ROOT = Path(__file__).resolve().parents[2]


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            st = os.lstat(os.path.join(dirpath, f))
            out[os.path.join(dirpath, f)] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def rewritten(
    before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]
) -> int:
    return sum(meta[0] for path, meta in after.items() if before.get(path) != meta)


def one_mib_bundles(work: Path, name: str, count: int) -> list[Path]:
    out = []
    for k in range(count):
        src = work / "src" / name.replace("/", "_") / str(k)
        write_random(src / "model" / "model.onnx", 1 << 20)
        (src / "hepbundle.yaml").write_text(
            f"name: {name}\nversion: 99.{k}.0\nsummary: bench\nframework: onnx\n"
            "files:\n  - path: model/*.onnx\n    role: model\n"
        )
        out.append(hepbundle.build(src, work / "dist" / name / str(k)).root)
    return out


def bytes_per_publish(work: Path, names: int, per_name: int, repeat: int) -> None:
    print(f"1. bytes rewritten per publish of a 1 MiB bundle ({repeat} publishes each, median)")
    results = {}
    # "large=": the large repository with atlas/model-00000 (… 00009) cut to 10 versions, so the
    # published name is the same size as in the small one: what is left is the repository's size
    cases = (("small", 10, 10), ("large", names, per_name), ("large=", names, per_name))
    repos, bundles, sizes, times = {}, {}, {}, {}
    for fmt in (2, 1):
        for label, n, per in cases:
            root = work / f"f{fmt}-{label}"
            ensure_repository(root, fmt=fmt)
            synthesise(root, n, per)
            if label == "large=":
                synthesise(root, 10, 10)
            assert repository_format(root) == fmt
            repos[fmt, label] = root
            bundles[fmt, label] = one_mib_bundles(
                work / f"b-f{fmt}-{label}", "atlas/model-00000", repeat
            )
            sizes[fmt, label], times[fmt, label] = [], []
    for k in range(repeat):  # round robin over the repositories: load drifts hit all alike
        for key, root in repos.items():
            before = snapshot(root)
            t0 = time.perf_counter()
            publish(bundles[key][k], root, allow_unsigned=True)
            times[key].append(time.perf_counter() - t0)
            sizes[key].append(rewritten(before, snapshot(root)))
    for (fmt, label), root in repos.items():
        index = sum(p.stat().st_size for _, p in index_files(root))
        results[fmt, label] = (statistics.median(sizes[fmt, label]),
                               statistics.median(times[fmt, label]))  # fmt: skip
        n, per = next((n, per) for lb, n, per in cases if lb == label)
        versions = n * per - (90 if label == "large=" else 0)
        print(f"  format {fmt} {label:<6} {versions:>7,} versions, index {index / 2**20:6.1f} MiB:"
              f" {results[fmt, label][0] / 2**20:7.2f} MiB rewritten,"
              f" {results[fmt, label][1] * 1e3:6.0f} ms")  # fmt: skip
    for fmt in (2, 1):
        for label in ("large", "large="):
            (bl, tl), (bs, ts) = results[fmt, label], results[fmt, "small"]
            print(
                f"  format {fmt}: ratio {label}/small  bytes {bl / bs:5.2f}   time {tl / ts:5.2f}"
            )


def fold_cycle(work: Path, names: int, per_name: int, count: int) -> None:
    """Every byte a CVMFS publish re-processes, over ``count`` publishes: enough for the recent
    shard of the namespace to fill and be folded into the large index (the rare rewrite of the
    large file is in the mean). Small bundles (4 KiB) alternating between two atlas names, so
    the catalogue files dominate."""
    print(f"\n1b. {count} publishes of 4 KiB bundles, mean bytes rewritten (includes the folds)")
    cases = (("small", 10, 10), ("large", names, per_name))
    roots, bundles = {}, {}
    for label, n, per in cases:
        roots[label] = root = work / f"cycle-{label}"
        ensure_repository(root)
        synthesise(root, n, per)
        bundles[label] = []
        for k in range(count):
            name = ("atlas/model-00000", "atlas/model-00005")[k % 2]
            src = work / f"src-{label}" / str(k)
            write_random(src / "model" / "model.onnx", 4 << 10)
            (src / "hepbundle.yaml").write_text(
                f"name: {name}\nversion: 98.{k}.0\nsummary: bench\nframework: onnx\n"
                "files:\n  - path: model/*.onnx\n    role: model\n"
            )
            bundles[label].append(hepbundle.build(src, work / f"dist-{label}" / str(k)).root)
    total = dict.fromkeys(roots, 0)
    catalog = dict.fromkeys(roots, 0)
    folds = dict.fromkeys(roots, 0)
    times: dict[str, list[float]] = {label: [] for label in roots}
    for k in range(count):  # alternating, so load drifts hit both alike
        for label, root in roots.items():
            index = next(p for ns, p in index_files(root) if ns == "atlas")
            before = snapshot(root)
            t0 = time.perf_counter()
            publish(bundles[label][k], root, allow_unsigned=True)
            times[label].append(time.perf_counter() - t0)
            after = snapshot(root)
            total[label] += rewritten(before, after)
            catalog[label] += rewritten(
                {p: m for p, m in before.items() if "/_catalog/" in p},
                {p: m for p, m in after.items() if "/_catalog/" in p},
            )
            folds[label] += before.get(str(index)) != after.get(str(index))
    out = {}
    for label, n, per in cases:
        t = times[label]
        out[label] = (total[label] / count, catalog[label] / count, statistics.median(t), max(t))
        print(f"  {label:<5} {n * per:>7,} versions: mean {out[label][0] / 2**10:7.1f} KiB rewritten"
              f" ({out[label][1] / 2**10:6.1f} KiB catalogue), {folds[label]} index rewrite(s),"
              f" time median {out[label][2] * 1e3:5.0f} ms, max {out[label][3] * 1e3:5.0f} ms")  # fmt: skip
    (tl, cl, ml, _), (ts, cs, ms, _) = out["large"], out["small"]
    print(f"  ratio large/small  mean bytes {tl / ts:5.2f}  (catalogue {cl / cs:5.2f})"
          f"   median time {ml / ms:5.2f}")  # fmt: skip
    # the same catalogue bytes beside a 1 MiB bundle (part 1's case): arithmetic, not measured
    one = 1 << 20
    print(f"  with a 1 MiB bundle instead of 4 KiB: ratio {(one + cl) / (one + cs):5.2f}")


def batch_import(work: Path, count: int) -> None:
    print(f"\n2. {count} small signed bundles through the cvmfs backend (stand-in)")
    bindir = work / "bin"
    bindir.mkdir(parents=True)
    exe = bindir / "cvmfs_server"
    exe.write_text(f"#!{PY}\n" + (ROOT / "tests/cvmfs_standin.py").read_text())
    exe.chmod(0o755)
    mount = work / "cvmfs"
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "STANDIN_NO_MOUNT": "1",
           "STANDIN_STATE": str(work / "state"), "HEPBUNDLE_CVMFS_ROOT": str(mount),
           "HEPBUNDLE_LOCK_DIR": str(work / "locks"),
           "PYTHONPATH": os.pathsep.join(sys.path)}  # fmt: skip
    key, pub = generate_key(work / "key.pem")
    signer = KeySigner(key)
    t0 = time.perf_counter()
    bundles = []
    for k in range(count):
        src = work / "src" / str(k)
        write_random(src / "model" / "model.onnx", 8 << 10)
        (src / "hepbundle.yaml").write_text(
            f"name: atlas/model-{k % 40:03d}\nversion: 1.{k // 40}.0\nsummary: bench\n"
            "framework: onnx\nfiles:\n  - path: model/*.onnx\n    role: model\n"
        )
        b = hepbundle.build(src, work / "dist" / f"atlas/model-{k % 40:03d}" / f"1.{k // 40}.0")
        sign(b.root, signer)
        bundles.append(b.root)
    print(f"  built and signed {count} bundles in {time.perf_counter() - t0:.1f} s")

    def server(*argv: str) -> None:
        subprocess.run([str(exe), *argv], env=env, check=True, capture_output=True)

    server("mkfs", "baseline.test")
    server("mkfs", "ml.test")
    subprocess.run(["sync"], check=True)
    t0 = time.perf_counter()
    server("transaction", "baseline.test")
    (mount / "baseline.test" / "bundles").mkdir()
    subprocess.run(["cp", "-r", str(work / "dist" / "atlas"), str(mount / "baseline.test" / "bundles")],
                   check=True)  # fmt: skip
    server("publish", "baseline.test")
    base = time.perf_counter() - t0
    argv = [PY, "-m", "hepbundle", "publish", *map(str, bundles), "--backend", "cvmfs", "--repo",
            "ml.test", "--key", str(pub), "--json"]  # fmt: skip
    wall, rss, out = run_child(argv, env)
    results = json.loads(out)
    calls = [json.loads(x) for x in (work / "state" / "calls.jsonl").read_text().splitlines()]
    txns = [c for c in calls if c["argv"][:1] == ["transaction"] and c["argv"][-1] == "ml.test"]
    publishes = [c for c in calls if c["argv"][:1] == ["publish"] and c["argv"][-1] == "ml.test"]
    assert len(results) == count and {r["status"] for r in results} == {"published"}
    print(f"  transaction; cp -r; publish:      {base:6.2f} s")
    print(f"  hepbundle publish ({count} bundles): {wall:6.2f} s  peak RSS {rss / 2**20:.0f} MiB,"
          f" {len(txns)} transaction(s), {len(publishes)} cvmfs_server publish")  # fmt: skip
    print(f"  ratio hepbundle / baseline: {wall / base:.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--names", type=int, default=1000)
    ap.add_argument("--per-name", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--bundles", type=int, default=400)
    ap.add_argument("--cycle", type=int, default=300, help="publishes of the fold cycle (1b)")
    ap.add_argument("--skip-bytes", action="store_true")
    ap.add_argument("--skip-batch", action="store_true")
    args = ap.parse_args(argv)
    logging.getLogger("hepbundle").setLevel(logging.ERROR)  # one "no I/O signature" per build
    work = Path(tempfile.mkdtemp(prefix="hb-bench-cvmfs-", dir=args.workdir))
    try:
        if not args.skip_bytes:
            bytes_per_publish(work / "bytes", args.names, args.per_name, args.repeat)
            fold_cycle(work / "cycle", args.names, args.per_name, args.cycle)
        if not args.skip_batch:
            batch_import(work / "batch", args.bundles)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
