"""Benchmark of the repository catalogue: find latency and publish cost against repository size.

    python tools/bench/catalog.py [--workdir /tmp/hb-bench-catalog] [--names 1000 --per-name 100]

Synthesises a large repository (default 100,000 versions of 1,000 names) directly into per-name
catalogue files and a rebuilt SQLite index (no bundle directories: the catalogue is what is
measured), and a small one (100 versions: 10 names × 10). Then, in the same run:

* ``find`` latency in-process (median of several queries: free text, filters, latest-per-name
  and every version) and through the CLI (``python -m hepbundle find``, a fresh process);
* publish time of a real small bundle (a new version of an existing name) into the small and
  the large repository, alternating, median of ``--repeat``;
* ``find --valid-for`` (issue 19) on the large repository, whose versions carry validity scopes
  (per name consecutive run IOVs of 1,000 runs, the newest open-ended; a release glob per
  minor version; conditions tags on every other name; a runtime requirement on every fifth),
  before and after the publishes (then through the recent shard), each answer checked against
  ``NameCatalog.valid_for`` of every name; the baseline is that check itself: reading every
  per-name catalogue file and choosing ``@valid`` (what a job resolving each name would do).

Targets: in-process find ≤ 50 ms (issue 4, and issue 19 for ``--valid-for``); publish cost
ratio (large / small) ≤ 1.5.
"""

from __future__ import annotations

import argparse
import contextlib
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
from hepbundle.repository.catalog import NameCatalog, VersionRecord, list_names, read_name_catalog
from hepbundle.repository.index import rebuild_index
from hepbundle.repository.layout import (
    bundle_relpath,
    catalog_file,
    ensure_repository,
    index_files,
)
from hepbundle.validity import Context, parse_context

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
                validity=_scope(i, j, per_name),
            )
        aliases = {"prod": f"{(per_name - 1) // 10}.{(per_name - 1) % 10}.0"}
        cat = NameCatalog(name, versions, aliases)
        path = catalog_file(root, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(cat.to_bytes())
    t0 = time.perf_counter()
    rebuild_index(root)
    return time.perf_counter() - t0


def _scope(i: int, j: int, per_name: int) -> dict[str, object]:
    """Version ``j`` of name ``i``: runs ``first + 1000 j`` to ``+ 999`` (the newest
    open-ended), names starting at different runs; CMSSW_15_<minor>_*; conditions tags on every
    other name, an onnxruntime requirement on every fifth."""
    first = 380_000 + (i % 40) * 2_000 + j * 1_000
    scope: dict[str, object] = {
        "runs": [{"first": first} if j == per_name - 1 else {"first": first, "last": first + 999}],
        "releases": [f"CMSSW_15_{j // 10}_*"],
    }
    if i % 2:
        scope["conditions"] = [f"150X_dataRun3_v{j // 10}*"]
    if i % 5 == 0:
        scope["runtimes"] = [f"onnxruntime >= 1.{10 + j // 10}"]
    return scope


QUERIES = {
    "text 'tau'": FindQuery(text="tau"),
    "text 'trigger 42'": FindQuery(text="trigger 42"),
    "--namespace cms --framework keras": FindQuery(namespace="cms", framework="keras"),
    "text 'tau' --all-versions": FindQuery(text="tau", all_versions=True, limit=1000),
    "--tag gnn --all-versions": FindQuery(tag="gnn", all_versions=True, limit=1000),
    "--dataset mc23_13p6TeV:jet.2": FindQuery(dataset="mc23_13p6TeV:jet.2"),
    "no filter (latest of every name)": FindQuery(limit=1000),
}


#: label → (context, all versions, limit): the CLI's default limit, and 1000 with --all-versions
#: as the plain queries above; the "every hit" rows are for information (no target)
VALID_QUERIES = {
    "--valid-for run=456789": ("run=456789", False, 100),
    "--valid-for run=456789 --all-versions --limit 1000": ("run=456789", True, 1000),
    "--valid-for run=456789,release=CMSSW_15_5_3": ("run=456789,release=CMSSW_15_5_3", False, 100),
    "--valid-for release=CMSSW_15_5_3": ("release=CMSSW_15_5_3", False, 100),
    "--valid-for conditions=150X_dataRun3_v7": ("conditions=150X_dataRun3_v7", False, 100),
    "--valid-for run=999999 (open-ended IOVs)": ("run=999999", False, 100),
    "--valid-for onnxruntime=1.19.2": ("onnxruntime=1.19.2", False, 100),
    "  every hit: --valid-for run=456789 --limit 100000": ("run=456789", False, 100_000),
    "  every hit: ... run=456789,release=CMSSW_15_5_3": ("run=456789,release=CMSSW_15_5_3", False, 100_000),
}  # fmt: skip


def valid_baseline(root: Path, ctx: Context) -> tuple[float, dict[str, str]]:
    """The answer without the index: every per-name catalogue read, ``@valid`` chosen in each
    (NotFoundError: none); its time is the baseline."""
    from hepbundle.errors import NotFoundError

    t0 = time.perf_counter()
    chosen = {}
    for name in list_names(root):
        with contextlib.suppress(NotFoundError):
            chosen[name] = read_name_catalog(root, name).valid_for(ctx).version
    return time.perf_counter() - t0, chosen


def time_valid(root: Path, label: str, text: str, every: bool, limit: int) -> float:
    """Time one ``--valid-for`` query (median of 7), check its whole answer against the
    baseline's and the timed one is its start, print both times; return the timed one (0 for
    the information rows)."""
    ctx = parse_context(text)
    q = FindQuery(valid_for=ctx, all_versions=every, limit=limit)
    t, hits = time_find(root, q)
    base, chosen = valid_baseline(root, ctx)
    whole = find(root, FindQuery(valid_for=ctx, all_versions=every, limit=10**6))
    if every:  # every covering version, newest first per name: the chosen one leads each name
        firsts = {h.name: h.version for h in reversed(whole)}
        assert all(firsts.get(n) == v for n, v in chosen.items()), label
    else:
        assert {h.name: h.version for h in whole} == chosen, label
    assert find(root, q) == whole[:limit], label
    print(f"  {label:<52} {t * 1e3:7.1f} ms  ({hits} hits; baseline {base * 1e3:5.0f} ms, "
          f"ratio {t / base:.3f})")  # fmt: skip
    return 0.0 if label.startswith(" ") else t


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

    print(f"\nfind --valid-for, in-process, {total:,} versions (median of 7):")
    valid_worst = max(time_valid(large, label, *v) for label, v in VALID_QUERIES.items())

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
    print("\nfind --valid-for after the publishes (through the recent shard):")
    recent = max(time_valid(large, label, *v) for label, v in VALID_QUERIES.items())
    valid_worst = max(valid_worst, recent)
    print(f"\nratios: worst in-process find {worst * 1e3:.1f} ms / 50 ms target = {worst / 0.05:.2f}; "
          f"worst --valid-for {valid_worst * 1e3:.1f} ms / 50 ms = {valid_worst / 0.05:.2f}; "
          f"publish large/small = {pl / ps:.2f} (target ≤ 1.5)")  # fmt: skip
    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    ok = worst <= 0.05 and valid_worst <= 0.05 and pl / ps <= 1.5
    print("targets met" if ok else "TARGET MISSED")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
