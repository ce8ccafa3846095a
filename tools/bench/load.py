"""Benchmark of production loading: lazy open, full and cached verification, RSS, ONNX overhead.

    python tools/bench/load.py [--sizes 10M,1G,4G] [--workdir DIR]

For each bundle size (real random data, no sparse files; one 1 MiB file plus 128 MiB parts), a
child process (a "job") measures, in this order: lazy open (manifest + signature check under a
key policy) plus first use of the 1 MiB file; full verification without the node cache; full
verification that fills the cache; a repeat full verification served by the cache (a fresh
Bundle object, so the cache file is read again as a new job would). Peak RSS is that child's.
Then the ONNX loader: `loaders.onnx_session(bundle)` on a cached bundle against a bare
`onnxruntime.InferenceSession` on the same file. Targets: lazy open ≤ 50 ms, cached repeat ≤ 20 ms,
peak RSS ≤ 100 MiB, loader overhead ≤ 5 % beyond hashing.
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

from _common import PY, best_of, run_child, write_random

_PART = 128 << 20


def parse_size(text: str) -> int:
    units = {"K": 10, "M": 20, "G": 30}
    return int(text[:-1]) << units[text[-1].upper()] if text[-1].upper() in units else int(text)


def make_bundle(work: Path, size: int, key: Path) -> Path:
    import hepbundle
    from hepbundle.signing import KeySigner, sign

    src = work / f"src-{size}"
    write_random(src / "model" / "small.bin", 1 << 20)
    left, i = size - (1 << 20), 0
    while left > 0:
        write_random(src / "model" / f"part-{i:03d}.bin", min(_PART, left))
        left -= _PART
        i += 1
    (src / "hepbundle.yaml").write_text(
        "name: bench/load\nversion: 1.0.0\nfiles:\n  - path: model\n    role: weights\n"
    )
    b = hepbundle.build(src, work / f"bundle-{size}")
    shutil.rmtree(src)
    sign(b.root, KeySigner(key))
    return b.root


def child(bundle: str, pub: str, cache_dir: str) -> None:
    """One job: the measurements of the module docstring, printed as JSON."""
    import hepbundle
    from hepbundle.cache import VerificationCache
    from hepbundle.policy import TrustPolicy

    policy = TrustPolicy.from_flags(keys=[Path(pub)])
    t0 = time.perf_counter()
    b = hepbundle.open(bundle, policy=policy)
    b.path("model/small.bin")
    lazy = time.perf_counter() - t0

    b.cache = None
    t0 = time.perf_counter()
    assert b.verify().ok
    full = time.perf_counter() - t0

    b2 = hepbundle.open(bundle, policy=policy)
    b2.cache = VerificationCache(Path(cache_dir))
    assert b2.verify().ok  # fills the cache
    t0 = time.perf_counter()
    b3 = hepbundle.open(bundle, policy=policy)
    b3.cache = VerificationCache(Path(cache_dir))
    rep = b3.verify()
    cached = time.perf_counter() - t0
    assert rep.ok and rep.bytes == 0, rep
    print(json.dumps({"lazy": lazy, "full": full, "cached": cached}))


def onnx_overhead(work: Path, key: Path, pub: Path) -> tuple[float, float, float]:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    import hepbundle
    from hepbundle.cache import VerificationCache
    from hepbundle.loaders import onnx_session
    from hepbundle.policy import TrustPolicy
    from hepbundle.signing import KeySigner, sign

    src = work / "onnx-src"
    (src / "model").mkdir(parents=True)
    w = numpy_helper.from_array(
        np.random.default_rng(0).normal(size=(2048, 2048)).astype(np.float32), "W"
    )
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2048])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2048])],
        initializer=[w],
    )
    onnx.save(
        helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), src / "model" / "m.onnx"
    )
    (src / "hepbundle.yaml").write_text(
        "name: bench/onnx\nversion: 1.0.0\nfiles:\n  - path: model/m.onnx\n    role: model\n"
    )
    root = hepbundle.build(src, work / "onnx-bundle").root
    sign(root, KeySigner(key))
    policy = TrustPolicy.from_flags(keys=[pub])
    cache = VerificationCache(work / "onnx-cache")
    model = str(root / "model" / "m.onnx")
    opts = {"providers": ["CPUExecutionProvider"]}

    def bundled() -> object:
        b = hepbundle.open(root, policy=policy)
        b.cache = cache
        return onnx_session(b, **opts)

    def hashed() -> object:
        b = hepbundle.open(root, policy=policy)
        b.cache = None
        return b.verify()

    def located() -> object:
        b = hepbundle.open(root, policy=policy)
        b.cache = cache
        return b.path("model/m.onnx")

    bundled()  # fills the cache: the timed runs measure the loader, not hashing
    bare_t: list[float] = []
    bundle_t: list[float] = []
    for _ in range(30):  # interleaved, so both see the same machine load; medians
        bare_t.append(best_of(1, lambda: ort.InferenceSession(model, **opts))[0])
        bundle_t.append(best_of(1, bundled)[0])
    t_bare, t_bundle = statistics.median(bare_t), statistics.median(bundle_t)
    t_own, _ = best_of(30, located)  # what the loader adds: open + signature + cached file check
    t_hash, _ = best_of(3, hashed)
    return t_bare, t_bundle, t_own, t_hash


def main() -> int:
    # cold verification is what is measured; the node cache has its own figure (load.py)
    os.environ["HEPBUNDLE_NO_CACHE"] = "1"
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="10M,1G,4G")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--child", nargs=3, metavar=("BUNDLE", "PUB", "CACHE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return 0
    from hepbundle.signing import generate_key

    work = args.workdir or Path(tempfile.mkdtemp(prefix="hb-bench-load-"))
    try:
        key, pub = generate_key(work / "key.pem")
        print(
            f"{'size':>8} {'lazy open+1MiB':>15} {'full verify':>12} {'cached repeat':>14} {'peak RSS':>9}"
        )
        for text in args.sizes.split(","):
            size = parse_size(text)
            bundle = make_bundle(work, size, key)
            env = {**os.environ, "HEPBUNDLE_NO_CACHE": "1"}
            _, rss, stdout = run_child(
                [PY, __file__, "--child", str(bundle), str(pub), str(work / f"cache-{size}")],
                env=env,
            )
            out = json.loads(stdout)
            print(
                f"{text:>8} {out['lazy'] * 1e3:12.1f} ms {out['full']:10.2f} s {out['cached'] * 1e3:11.1f} ms {rss / 2**20:6.0f} MiB"
            )
            shutil.rmtree(bundle)
        bare, bundled, own, hashing = onnx_overhead(work, key, pub)
        print(
            f"\nONNX 16 MiB model, medians of 30 interleaved: bare InferenceSession {bare * 1e3:.1f} ms, "
            f"loaders.onnx_session() (cache warm) {bundled * 1e3:.1f} ms\n"
            f"  the loader's own work (open + signature + cached file check, best of 30): "
            f"{own * 1e3:.2f} ms = {100 * own / bare:.1f} % of a bare session; hashing the model "
            f"once (first job on a node) {hashing * 1e3:.1f} ms"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
