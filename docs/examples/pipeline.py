"""The whole life of a model on the embedded default, one readable line per step.

    python docs/examples/pipeline.py [--workdir demo-run]

Each step runs the ``hepbundle`` command a user would type (shown in the line it prints), so
this file doubles as a worked example. The run ends with a summary table and exits non-zero if
any step failed.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tools"))


@dataclass
class Run:
    """State shared by the steps."""

    work: Path
    env: dict[str, str] = field(default_factory=dict)
    results: list[tuple[str, str, float]] = field(default_factory=list)

    def hb(self, *args: str | Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
        """Run ``hepbundle ARGS`` like a user would; fail the step on an unexpected exit code."""
        cmd = [sys.executable, "-m", "hepbundle", *map(str, args)]
        p = subprocess.run(cmd, capture_output=True, text=True, cwd=self.work, env=self.env or None)
        if p.returncode != expect:
            shown = "hepbundle " + shlex.join(map(str, args))
            raise RuntimeError(f"`{shown}` exited {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
        return p


Step = Callable[[Run], str]


def step_model(run: Run) -> str:
    from make_examples import tiny_onnx

    model_dir = run.work / "jet-tagger"
    run.hb("init", model_dir, "--name", "demo/jet-tagger")
    tiny_onnx(model_dir / "model" / "model.onnx")
    return "init + wrote a real 16→5 ONNX jet tagger into jet-tagger/"


def step_build(run: Run) -> str:
    p = run.hb("build", "jet-tagger", "-o", "dist/demo/jet-tagger/0.1.0")
    return p.stdout.strip()


def step_sign(run: Run) -> str:
    run.hb("key", "generate", "-o", "keys/demo-signer.pem")
    p = run.hb("sign", "dist/demo/jet-tagger/0.1.0", "--key", "keys/demo-signer.pem")
    return p.stdout.strip()


def step_verify(run: Run) -> str:
    # signature against the trusted public key first, then every file digest
    p = run.hb("verify", "dist/demo/jet-tagger/0.1.0", "--key", "keys/demo-signer.pub.pem")
    return p.stdout.strip()


def step_tamper(run: Run) -> str:
    copy = run.work / "tampered"
    shutil.copytree(run.work / "dist/demo/jet-tagger/0.1.0", copy)
    with open(copy / "model" / "model.onnx", "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 1]))
    p = run.hb("verify", copy, "--key", "keys/demo-signer.pub.pem", expect=1)
    return "tampered copy refused: " + p.stderr.strip().split(": ", 2)[-1]


def step_publish(run: Run) -> str:
    # into the embedded default ./hepbundle-repo (laid out like CVMFS), pointing the prod alias at it
    p = run.hb(
        "publish",
        "dist/demo/jet-tagger/0.1.0",
        "--key",
        "keys/demo-signer.pub.pem",
        "--alias",
        "prod",
    )
    return p.stdout.strip()


def step_find(run: Run) -> str:
    out = run.hb("find", "jet").stdout.strip()
    if "demo/jet-tagger@0.1.0 @prod" not in out:
        raise RuntimeError(f"`hepbundle find jet` did not list the published prod version: {out!r}")
    return out


STEPS: list[tuple[str, Step]] = [
    ("model", step_model),
    ("build", step_build),
    ("sign", step_sign),
    ("verify", step_verify),
    ("tamper", step_tamper),
    ("publish", step_publish),
    ("find", step_find),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("demo-run"))
    args = ap.parse_args(argv)
    work = args.workdir.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    run = Run(work)
    ok = True
    for name, fn in STEPS:
        t0 = time.perf_counter()
        try:
            line, status = fn(run), "ok"
        except Exception as e:  # a demo reports every failure and stops
            line, status, ok = str(e), "FAILED", False
        dt = time.perf_counter() - t0
        run.results.append((name, status, dt))
        print(f"[{name:>8}] {line}", flush=True)
        if not ok:
            break
    print("\nstep      status   seconds")
    for name, status, dt in run.results:
        print(f"{name:<9} {status:<8} {dt:7.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
