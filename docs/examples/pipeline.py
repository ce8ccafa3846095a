"""The whole life of a trigger-ML model on the embedded default, one readable line per step.

    python docs/examples/pipeline.py [--workdir demo-run]

A toy jet-tagging ntuple (16 features, 5 classes) is written with uproot, converted to NPZ,
used to train a Keras model from a script in a git repository the example creates, converted
with hls4ml (bit-accurate C++ emulation compiled with g++), packed into a bundle with its code
pin, data references, metrics, model card, reference profile and hls4ml project, signed,
published to ./hepbundle-repo (laid out exactly like the CVMFS repository) with alias `prod`,
resolved by a job through HEPBUNDLE_PATH, compared float vs emulation, evaluated, checked for
drift on a shifted sample (which must alert), re-trained from its pinned commit (reproduce), found
and shown, and rendered as a catalogue site.

Every step runs the `hepbundle` command a user would type, so this file doubles as a worked
example. The run ends with a summary table and exits non-zero if any step failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "jet_tagger"
FEATURES = ",".join(f"j_f{i:02d}" for i in range(16))
REF = "demo/jet-tagger@prod"
BUNDLE = "dist/demo/jet-tagger/1.0.0"


@dataclass
class Run:
    """State shared by the steps: the work directory and the environment of every command."""

    work: Path
    env: dict[str, str] = field(default_factory=dict)
    results: list[tuple[str, str, float]] = field(default_factory=list)

    def run(
        self, argv: list[str | Path], *, cwd: Path | None = None, expect: int = 0
    ) -> subprocess.CompletedProcess[str]:
        p = subprocess.run(
            list(map(str, argv)), capture_output=True, text=True, cwd=cwd or self.work, env=self.env
        )
        if p.returncode != expect:
            shown = shlex.join(map(str, argv)).replace(sys.executable, "python")
            raise RuntimeError(
                f"`{shown}` exited {p.returncode} (expected {expect}): {(p.stderr or p.stdout).strip()[-800:]}"
            )
        return p

    def hb(self, *args: str | Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
        """Run ``hepbundle ARGS`` like a user would."""
        return self.run([sys.executable, "-m", "hepbundle", *args], expect=expect)

    def py(
        self, script: Path, *args: str | Path, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, script, *args], cwd=cwd)


Step = Callable[[Run], str]


def step_ntuple(run: Run) -> str:
    (run.work / "ntuples").mkdir()
    run.py(SCRIPTS / "make_ntuple.py", "ntuples/jets.root", "--entries", "20000", "--seed", "1")
    run.py(SCRIPTS / "make_ntuple.py", "ntuples/jets-eval.root", "--entries", "5000", "--seed", "2")
    run.py(
        SCRIPTS / "make_ntuple.py",
        "ntuples/jets-2027.root",
        "--entries",
        "5000",
        "--seed",
        "3",
        "--shift",
        "0.6",
    )
    return (
        "wrote 3 ROOT ntuples with uproot (train 20k, eval 5k, shifted '2027 conditions' 5k jets)"
    )


def step_root2npz(run: Run) -> str:
    data = run.work / "training" / "data"
    data.mkdir(parents=True)
    lines = []
    for src in ("jets", "jets-eval", "jets-2027"):
        out = data / f"{src}.npz"
        p = run.hb(
            "data",
            "root2npz",
            f"ntuples/{src}.root",
            "-t",
            "jets",
            "-b",
            f"{FEATURES},label",
            "-o",
            out,
        )
        lines.append(p.stdout.strip())
    return lines[0] + " (+ eval and shifted samples)"


def step_train(run: Run) -> str:
    repo = run.work / "training"
    for name in ("train.py", "convert_hls4ml.py"):
        shutil.copy(SCRIPTS / name, repo / name)
    (repo / ".gitignore").write_text("data/\nout/\n")
    git = ["git", "-c", "user.name=Demo Trainer", "-c", "user.email=trainer@example.cern.ch"]
    run.run(["git", "init", "-q", "-b", "main"], cwd=repo)
    run.run(
        ["git", "remote", "add", "origin", "https://gitlab.cern.ch/demo/jet-tagger-training.git"],
        cwd=repo,
    )
    run.run([*git, "add", "."], cwd=repo)
    run.run([*git, "commit", "-q", "-m", "jet tagger training"], cwd=repo)
    p = run.py(
        repo / "train.py",
        "--data",
        "data/jets.npz",
        "--out",
        "out",
        "--epochs",
        "8",
        "--seed",
        "42",
        cwd=repo,
    )
    commit = run.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo).stdout.strip()
    return f"trained Keras 16→64→32→5 from training@{commit}: {p.stdout.strip()}"


def step_hls4ml(run: Run) -> str:
    p = run.py(
        run.work / "training" / "convert_hls4ml.py",
        "--model",
        "training/out/model.keras",
        "--out",
        "hls4ml_prj",
    )
    return (
        p.stdout.strip().splitlines()[-1]
        + " (hls4ml, Vivado backend, ap_fixed<16,6>, g++ emulation)"
    )


SPEC = """\
name: demo/jet-tagger
version: 1.0.0
summary: Toy 5-class L1 jet tagger (g, q, W, Z, t) with its hls4ml firmware project
authors:
  - {name: Demo Trainer, email: trainer@example.cern.ch}
license: Apache-2.0
framework: keras
tags: [jet-tagging, l1t, hls4ml, demo]
files:
  - path: ../training/out/model.keras
    role: model
    to: model
model_card: MODEL_CARD.md
code:
  path: ../training
  command: python train.py --data data/jets.npz --out out --epochs 8 --seed 42
  entry_point: train.py
environment:
  capture: pip
training:
  record: ../training/out/training-record.json
data:
  - type: npz
    path: ../training/data/jets.npz
    split: train
fpga:
  toolchain: hls4ml
  project: ../hls4ml_prj
"""

# The I/O signature (bundle-spec/io.md): names, dtypes, shapes and the firmware precision come
# from model.keras and the hls4ml project; the spec says what they cannot. The toy features are
# dimensionless and fed to the model as they are (an explicit identity normalisation).
IO = (
    "io:\n  inputs:\n    - name: features\n      features:\n"
    + "".join(
        f"        - {{name: {f}, unit: '', normalisation: {{offset: 0, scale: 1}}, "
        "range: {min: -8, max: 8}}\n"
        for f in FEATURES.split(",")
    )
    + "  outputs:\n    - name: output\n      classes: [g, q, W, Z, t]\n"
)

# The validity scope (bundle-spec/validity.md): the runs, period and release the tagger was
# trained and tested for; a job that states its context is refused a version that excludes it.
VALIDITY = """\
validity:
  runs:
    - {first: 450000, last: 459999}
  periods: [data24]
  releases: ["Athena 25.0.*"]
"""

CARD = """\
# Model card: demo/jet-tagger

## Intended use
Demonstration of hepbundle on a toy Level-1 jet tagger. Not a physics result.

## Inputs
| name | description | unit | expected range |
|------|-------------|------|----------------|
| j_f00 … j_f15 | jet substructure features of the toy sample | a.u. | about [-4, 4] |

## Outputs
| name | description | range |
|------|-------------|-------|
| output[0..4] | probabilities of g, q, W, Z, t | [0, 1] |

## Training data
20,000 toy jets (`ntuples/jets.root` → `data/jets.npz`, see the data references), 80/20 split.

## Metrics
Accuracy and macro one-vs-rest AUC on the held-out 20 % (see the training record).

## Limitations
Trained on a toy Gaussian sample; the first four features drift under '2027 conditions'.

## Contacts
trainer@example.cern.ch
"""


def step_build(run: Run) -> str:
    spec_dir = run.work / "jet-tagger"
    spec_dir.mkdir()
    (spec_dir / "hepbundle.yaml").write_text(SPEC + IO + VALIDITY)
    (spec_dir / "MODEL_CARD.md").write_text(CARD)
    p = run.hb(
        "build",
        "jet-tagger",
        "-o",
        BUNDLE,
        "--profile-from",
        "training/data/jets.npz",
        "--profile-features",
        FEATURES,
    )
    return p.stdout.strip()


def step_sign(run: Run) -> str:
    run.hb("key", "generate", "-o", "keys/release-manager.pem")
    (run.work / "policy.yaml").write_text(
        "version: 1\nrules:\n  - namespace: 'demo/*'\n    signers:\n      - key: keys/release-manager.pub.pem\n"
    )
    return run.hb("sign", BUNDLE, "--key", "keys/release-manager.pem").stdout.strip()


def step_verify(run: Run) -> str:
    # signature under policy.yaml, then every digest (without a policy it would be refused)
    return run.hb("verify", BUNDLE, "--policy", "policy.yaml").stdout.strip()


def step_tamper(run: Run) -> str:
    copy = run.work / "tampered"
    shutil.copytree(run.work / BUNDLE, copy)
    with open(copy / "model" / "model.keras", "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 1]))
    p = run.hb("verify", copy, "--policy", "policy.yaml", expect=1)
    shutil.rmtree(copy)
    return (
        "a copy with one flipped bit is refused: " + p.stderr.strip().split("error: ", 1)[-1][:120]
    )


def step_publish(run: Run) -> str:
    # the operator creates ./hepbundle-repo (bundles/, catalog/ exactly as on CVMFS) with
    # policy.yaml as its trust root: every later publish and every job is judged by it, and
    # each catalogue change (publish, the move of prod) is a statement the release key signs
    run.hb("repo", "init", "--policy", "policy.yaml")
    return run.hb(
        "publish", BUNDLE, "--alias", "prod", "--sign-key", "keys/release-manager.pem"
    ).stdout.strip()


JOB = """\
import numpy as np, hepbundle
from hepbundle.loaders import keras_model
from hepbundle.errors import ValidityError
# HEPBUNDLE_PATH; the repository's trust root; the job's context checked against the scope
b = hepbundle.resolve("demo/jet-tagger@prod", context={"run": 456789, "release": "Athena,25.0.12"})
x = {k: v[:1000] for k, v in np.load("training/data/jets-eval.npz").items()}
b.io.check(x).raise_for_problems()  # the I/O signature: feature names, dtype, shape, ranges
feats = b.io.normalise(x)["features"]  # the 16 columns in the model's order
pred = keras_model(b).predict(feats, verbose=0).argmax(axis=1)
bad = b.io.check(dict(x, j_f03=x["j_f03"] * 1000))  # a unit 1000x off
try:  # a run outside the tagger's interval of validity
    hepbundle.resolve("demo/jet-tagger@prod", context="run=470001")
    late = "NOT refused"
except ValidityError as e:
    late = e.message.split(" (context", 1)[0]
print(f"{b.ref} (signed by {b.signature[0].identity[:24]}...) tagged {len(pred)} jets; "
      f"accuracy {float((pred == x['label'][:1000]).mean()):.3f}; "
      f"a batch with j_f03 x1000 is caught: {bad.problems[0].split(': ', 1)[0]}; "
      f"a job at run 470001 is refused: {late}")
"""


def step_job(run: Run) -> str:
    env = dict(run.env, HEPBUNDLE_PATH=str(run.work / "hepbundle-repo"), TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.run(
        [sys.executable, "-c", JOB], capture_output=True, text=True, cwd=run.work, env=env
    )
    if p.returncode:
        raise RuntimeError(f"job failed: {p.stderr.strip()[-800:]}")
    path = run.hb("path", REF, "model/model.keras").stdout.strip()
    return p.stdout.strip() + f"; `hepbundle path` gives {Path(path).relative_to(run.work)}"


def step_compare(run: Run) -> str:
    import numpy as np

    with np.load(run.work / "training/data/jets-eval.npz") as d:
        x = np.stack([d[f"j_f{i:02d}"] for i in range(16)], axis=1)[:2000]
    np.savez(run.work / "compare-inputs.npz", x=x)
    p = run.hb(
        "fpga",
        "compare",
        REF,
        "--inputs",
        "compare-inputs.npz",
        "--min-argmax-agreement",
        "0.95",
        "--plot",
        "compare.png",
        "--key",
        "keys/release-manager.pem",
        "--json",
    )
    rep = json.loads(p.stdout)
    return "float vs hls4ml emulation, " + _summarise_compare(rep) + " (signed record appended)"


def _summarise_compare(rep: dict[str, Any]) -> str:
    parts = []
    for o in rep["outputs"]:
        f = o["float_vs_emulation"]
        parts.append(
            f"{o['name']}: argmax agreement {f['argmaxAgreement']:.3f}, max |d| {f['maxAbsDiff']:.3f}, "
            f"mean |d| {f['meanAbsDiff']:.4f} on {o['samples']} jets"
        )
    return "; ".join(parts)


def step_eval(run: Run) -> str:
    p = run.hb(
        "eval",
        REF,
        "--data",
        "training/data/jets-eval.npz",
        "--labels",
        "label",
        "--inputs",
        FEATURES,
        "--metric",
        "auc,accuracy",
        "--tolerance",
        "0.05",
        "--key",
        "keys/release-manager.pem",
    )
    lines = p.stdout.strip().splitlines()
    checks = [" ".join(ln.split()[:5]) for ln in lines if "recorded" in ln]
    return lines[0] + ": " + "; ".join(checks) + " (signed evaluation record appended)"


def step_drift(run: Run) -> str:
    same = run.hb("drift", REF, "--data", "training/data/jets-eval.npz")
    alert = run.hb(
        "drift",
        REF,
        "--data",
        "training/data/jets-2027.npz",
        "--plot",
        "drift.png",
        "--json",
        expect=3,
    )
    worst = json.loads(alert.stdout)
    feats = worst.get("features") or []
    top = feats[0]["name"] if feats and isinstance(feats[0], dict) and "name" in feats[0] else "?"
    return f"eval sample: no alert (exit {same.returncode}); 2027 sample: ALERT (exit 3), worst feature {top}; drift.png"


def step_reproduce(run: Run) -> str:
    run.hb("reproduce", REF, "--check", "--mirror", "training", "--data-dir", "training")
    p = run.hb(
        "reproduce",
        REF,
        "--run",
        "rerun",
        "--mirror",
        "training",
        "--data-dir",
        "training",
        "--env",
        "current",
        "--tolerance",
        "0.02",
    )
    verdict = p.stdout.strip().splitlines()[-1]
    return f"--check ready (code, lock, data, command); --run re-trained from the pinned commit: {verdict}"


def step_find(run: Run) -> str:
    out = run.hb("find", "jet").stdout.strip()
    if "demo/jet-tagger@1.0.0" not in out:
        raise RuntimeError(f"`hepbundle find jet` did not list the published version: {out!r}")
    show = run.hb("show", REF).stdout
    return f"find: {out.splitlines()[-1].strip()[:80]}; show: {len(show.splitlines())} lines incl. model card"


def step_site(run: Run) -> str:
    run.hb("catalog", "html", "--repo", "hepbundle-repo", "-o", "site")
    return f"catalogue site written: {run.work.name}/site/index.html (open it in a browser, no server needed)"


STEPS: list[tuple[str, Step]] = [
    ("ntuple", step_ntuple),
    ("root2npz", step_root2npz),
    ("train", step_train),
    ("hls4ml", step_hls4ml),
    ("build", step_build),
    ("sign", step_sign),
    ("verify", step_verify),
    ("tamper", step_tamper),
    ("publish", step_publish),
    ("job", step_job),
    ("compare", step_compare),
    ("eval", step_eval),
    ("drift", step_drift),
    ("reproduce", step_reproduce),
    ("find", step_find),
    ("site", step_site),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workdir", type=Path, default=Path("demo-run"))
    args = ap.parse_args(argv)
    work = args.workdir.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEPBUNDLE_")}
    env.update(
        TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore", HEPBUNDLE_CACHE_DIR=str(work / ".cache")
    )
    run = Run(work, env=env)
    ok = True
    for name, fn in STEPS:
        t0 = time.perf_counter()
        try:
            line, status = fn(run), "ok"
        except Exception as e:  # a demo reports every failure and stops
            line, status, ok = str(e), "FAILED", False
        dt = time.perf_counter() - t0
        run.results.append((name, status, dt))
        print(f"[{name:>9}] {line}", flush=True)
        if not ok:
            break
    total = sum(dt for _, _, dt in run.results)
    print(f"\n{'step':<10} {'status':<7} {'seconds':>7}")
    for name, status, dt in run.results:
        print(f"{name:<10} {status:<7} {dt:7.1f}")
    print(f"{'total':<10} {'ok' if ok else 'FAILED':<7} {total:7.1f}")
    print(f"\nrepository: {work / 'hepbundle-repo'}   catalogue: {work / 'site' / 'index.html'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
