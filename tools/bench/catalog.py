"""Benchmark of the repository catalogue: find latency and publish cost against repository size.

    python tools/bench/catalog.py [--workdir /tmp/hb-bench-catalog] [--names 1000 --per-name 100]

Synthesises a large repository (default 100,000 versions of 1,000 names) directly into per-name
catalogue files and a rebuilt SQLite index (no bundle directories: the catalogue is what is
measured), and a small one (100 versions: 10 names × 10). Then, in the same run:

* ``find`` latency in-process (median of several queries: free text, filters, latest-per-name
  and every version) and through the CLI (``python -m hepbundle find``, a fresh process);
* publish time of a real small bundle (a new version of an existing name) into the small and
  the large repository, alternating, median of ``--repeat``.

Targets (issue 4): in-process find ≤ 50 ms; publish cost ratio (large / small) ≤ 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import PY, run_child, write_random

import hepbundle
from hepbundle.repository import FindQuery, find, publish
from hepbundle.repository.catalog import NameCatalog, VersionRecord
from hepbundle.repository.index import rebuild_index
from hepbundle.repository.layout import (
    bundle_relpath,
    catalog_file,
    ensure_repository,
    index_files,
)

_WORDS = ["tau", "btag", "jet", "pid", "muon", "egamma", "vertex", "trigger", "gnn", "rnn"]
_FRAMEWORKS = ["onnx", "keras", "hls4ml", "torch"]
_EXPERIMENTS = ["atlas", "cms", "lhcb", "alice", "belle2"]


def synthesise(root: Path, names: int, per_name: int) -> float:
    """Write ``names`` × ``per_name`` versions into catalogue files and rebuild the index;
    return the rebuild time (the incremental path is what publish uses)."""
    ensure_repository(root)
    for i in range(names):
        name = f"{_EXPERIMENTS[i % 5]}/model-{i:05d}"
        word = _WORDS[i % len(_WORDS)]
        versions = {}
        for j in range(per_name):
            v = f"{j // 10}.{j % 10}.0"
            versions[v] = VersionRecord(
                version=v,
                manifest_digest=f"{i:032x}{j:032x}",
                path=bundle_relpath(name, v),
                created="2026-01-01T00:00:00Z",
                published="2026-01-01T00:00:00Z",
                summary=f"{word} classifier number {i} for the {word} trigger",
                authors=(f"Author {i % 97}",),
                framework=_FRAMEWORKS[i % 4],
                tags=(word, f"run{3 + j % 2}"),
                datasets=(f"mc23_13p6TeV:{word}.{i}.{j}",),
                signers=(f"key:{i % 13:064x}",),
            )
        aliases = {"prod": f"{(per_name - 1) // 10}.{(per_name - 1) % 10}.0"}
        cat = NameCatalog(name, versions, aliases)
        path = catalog_file(root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(cat.to_bytes())
    t0 = time.perf_counter()
    rebuild_index(root)
    return time.perf_counter() - t0


QUERIES = {
    "text 'tau'": FindQuery(text="tau"),
    "text 'trigger 42'": FindQuery(text="trigger 42"),
    "--namespace cms --framework keras": FindQuery(namespace="cms", framework="keras"),
    "text 'tau' --all-versions": FindQuery(text="tau", all_versions=True, limit=1000),
    "--tag gnn --all-versions": FindQuery(tag="gnn", all_versions=True, limit=1000),
    "--dataset mc23_13p6TeV:jet.2": FindQuery(dataset="mc23_13p6TeV:jet.2"),
    "no filter (latest of every name)": FindQuery(limit=1000),
}


def time_find(root: Path, q: FindQuery, n: int = 7) -> tuple[float, int]:
    times, hits = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        hits = len(find(root, q))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), hits


def make_bundles(work: Path, name: str, count: int) -> list[Path]:
    """``count`` real small bundles (a 256 KiB model each) of new versions of ``name``."""
    out = []
    for k in range(count):
        src = work / "src" / str(k)
        write_random(src / "model" / "model.onnx", 256 << 10)
        (src / "hepbundle.yaml").write_text(
            f"name: {name}\nversion: 99.{k}.0\nsummary: bench\nframework: onnx\n"
            "files:\n  - path: model/*.onnx\n    role: model\n"
        )
        out.append(hepbundle.build(src, work / "dist" / str(k)).root)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--names", type=int, default=1000)
    ap.add_argument("--per-name", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hb-bench-catalog-"))
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    large, small = work / "large", work / "small"
    total = args.names * args.per_name
    t0 = time.perf_counter()
    rebuild = synthesise(large, args.names, args.per_name)
    print(f"synthesised {total:,} versions of {args.names:,} names in "
          f"{time.perf_counter() - t0:.1f} s (index rebuild {rebuild:.1f} s, "
          f"{sum(p.stat().st_size for _, p in index_files(large)) / 2**20:.1f} MiB)")  # fmt: skip
    synthesise(small, 10, 10)

    print(f"\nfind, in-process, {total:,} versions (median of 7):")
    worst = 0.0
    for label, q in QUERIES.items():
        t, hits = time_find(large, q)
        worst = max(worst, t)
        print(f"  {label:<38} {t * 1e3:7.1f} ms  ({hits} hits)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cli = []
    for _ in range(3):
        wall, _, out = run_child(
            [PY, "-m", "hepbundle", "find", "tau", "--repo", str(large), "--json"], env
        )
        cli.append(wall)
        hits = len(json.loads(out))
    print(f"  CLI 'hepbundle find tau --json' (new process, best of 3): {min(cli) * 1e3:.0f} ms "
          f"({hits} hits)")  # fmt: skip

    # a new version of an existing name: 10 versions in the small repository, 100 in the large
    small_bundles = make_bundles(work / "b-small", "atlas/model-00000", args.repeat)
    large_bundles = make_bundles(work / "b-large", "atlas/model-00000", args.repeat)
    t_small, t_large = [], []
    for bs, bl in zip(small_bundles, large_bundles, strict=True):
        for b, repo, acc in ((bs, small, t_small), (bl, large, t_large)):
            t0 = time.perf_counter()
            res = publish(b, repo, allow_unsigned=True, alias="prod")
            acc.append(time.perf_counter() - t0)
            assert res.status == "published"
    ps, pl = statistics.median(t_small), statistics.median(t_large)
    print(f"\npublish (256 KiB bundle, median of {args.repeat}): "
          f"100-version repo {ps * 1e3:.1f} ms, {total:,}-version repo {pl * 1e3:.1f} ms")  # fmt: skip
    print(f"\nratios: worst in-process find {worst * 1e3:.1f} ms / 50 ms target = {worst / 0.05:.2f}; "
          f"publish large/small = {pl / ps:.2f} (target ≤ 1.5)")  # fmt: skip
    ok = worst <= 0.05 and pl / ps <= 1.5
    print("targets met" if ok else "TARGET MISSED")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
