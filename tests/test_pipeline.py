"""The README's main job: the whole pipeline example runs end to end and each step did its job;
then a C++ job built against the installed native library resolves the model it published."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import hepbundle
from hepbundle.policy import TrustPolicy
from hepbundle.repository.layout import catalog_file, records_root

from .needs import missing

ROOT = Path(__file__).parents[1]


@dataclass(frozen=True)
class Demo:
    work: Path  # the pipeline's work directory: hepbundle-repo/, policy.yaml, keys/…
    out: str  # what it printed


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    """One run of the README's main job, shared by the tests of this module."""
    work = tmp_path_factory.mktemp("pipeline") / "demo"
    p = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "pipeline.py"), "--workdir", str(work)],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return Demo(work, p.stdout)


@pytest.mark.slow
@pytest.mark.integration
def test_pipeline_end_to_end(demo: Demo) -> None:
    work, out = demo.work, demo.out
    for step in (
        "ntuple",
        "root2npz",
        "train",
        "hls4ml",
        "build",
        "sign",
        "verify",
        "tamper",
        "publish",
        "job",
        "compare",
        "eval",
        "drift",
        "reproduce",
        "find",
        "site",
    ):
        assert f"[{step:>9}]" in out, step
    assert "ALERT (exit 3)" in out and "one flipped bit is refused" in out
    # the published bundle carries full provenance, the profile and the hls4ml project
    repo = work / "hepbundle-repo"
    m = json.loads((repo / "bundles/demo/jet-tagger/1.0.0/hepbundle.json").read_text())
    code = m["provenance"]["code"]
    assert (
        code["remote"].endswith("jet-tagger-training.git")
        and len(code["commit"]) == 40
        and not code["dirty"]
    )
    assert m["data"][0]["type"] == "npz" and m["profile"]["path"]
    assert m["fpga"]["toolchain"] == "hls4ml"
    # the full I/O signature: the Keras model's tensors, the firmware's precision, the spec's
    # feature names, units, normalisation, ranges and classes; the job checked its batch with it
    (inp,) = m["io"]["inputs"]
    assert (inp["name"], inp["dtype"], inp["shape"]) == ("features", "float32", ["batch", 16])
    assert inp["precision"].startswith("ap_fixed<") and m["io"]["framework"] == "keras"
    assert [f["name"] for f in inp["features"]] == [f"j_f{i:02d}" for i in range(16)]
    assert inp["features"][0]["range"] == {"min": -8.0, "max": 8.0}
    assert m["io"]["outputs"][0]["classes"] == ["g", "q", "W", "Z", "t"]
    assert "a batch with j_f03 x1000 is caught: input features feature 3 j_f03" in out
    assert (
        "a job at run 470001 is refused: demo/jet-tagger@1.0.0 is not valid for run=470001" in out
    )
    assert {r["name"] for r in m["metrics"]} == {"accuracy", "auc"}
    # the validity scope, as the spec wrote it (bundle-spec/validity.md)
    assert m["validity"]["runs"] == [{"first": 450000, "last": 459999}]
    assert m["validity"]["releases"] == ["Athena 25.0.*"]
    cat = json.loads(catalog_file(repo, "demo/jet-tagger").read_text())
    assert cat["aliases"]["prod"] == "1.0.0"
    records = sorted(p.name for p in (records_root(repo, "demo/jet-tagger") / "1.0.0").iterdir())
    assert any(r.endswith("fpga-compare") for r in records) and any(
        r.endswith("evaluation") for r in records
    )
    assert (work / "site" / "index.html").is_file() and (work / "drift.png").stat().st_size > 1000


def native_prefix() -> Path:
    """The native library as ``make native`` installs it (or ``HEPBUNDLE_NATIVE_PREFIX``)."""
    prefix = Path(
        os.environ.get("HEPBUNDLE_NATIVE_PREFIX") or ROOT / "build" / "native" / "install"
    )
    if not (prefix / "include" / "hepbundle" / "hepbundle.hpp").is_file():
        missing(f"the native library is not installed in {prefix}; run: make native")
    return prefix


@pytest.mark.slow
@pytest.mark.integration
def test_cpp_job_resolves_the_demo_model(demo: Demo, tmp_path: Path) -> None:
    """The issue-18 job: a C++ program built with find_package(hepbundle) against the installed
    library resolves demo/jet-tagger@prod from the demo's repository under the demo's policy,
    and prints the verified path Python gives; a flipped byte in the model is refused."""
    prefix = native_prefix()
    build = tmp_path / "examples"
    for cmd in (
        ["cmake", "-S", ROOT / "src/libhepbundle/examples", "-B", build,
         f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release"],
        ["cmake", "--build", build, "-j", "2"],
    ):  # fmt: skip
        p = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    repo, policy = demo.work / "hepbundle-repo", demo.work / "policy.yaml"
    want = hepbundle.resolve(
        "demo/jet-tagger@prod", repos=[repo], policy=TrustPolicy.load(policy)
    ).path("model/model.keras")
    env = {
        **os.environ,
        "HEPBUNDLE_PATH": str(repo),
        "HEPBUNDLE_POLICY": str(policy),
        "HEPBUNDLE_CACHE_DIR": str(tmp_path / "cache"),
    }
    env.pop("HEPBUNDLE_CONTEXT", None)

    def job(program: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(build / program), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env={**env, **extra},
        )

    for program in ("athena_style", "cmssw_style", "c_api"):
        p = job(program, "demo/jet-tagger@prod", "model/model.keras")
        assert p.returncode == 0, f"{program}: {p.stderr}"
        assert p.stdout.splitlines()[-1] == str(want), program
    # the Athena-style tool logs what it loaded: the version, the manifest digest, the signer
    p = job("athena_style", "demo/jet-tagger@prod", "model/model.keras")
    assert (
        "using demo/jet-tagger@1.0.0 (manifest sha256:" in p.stdout
        and "signed by sha256:" in p.stdout
    )
    # the job's context (bundle-spec/validity.md): a run outside the model's interval of validity
    # is refused, and @valid picks the version whose scope covers the run and the release
    p = job(
        "athena_style", "demo/jet-tagger@prod", "model/model.keras", HEPBUNDLE_CONTEXT="run=470001"
    )
    assert p.returncode == 1
    assert "ValidityError: demo/jet-tagger@1.0.0 is not valid for run=470001" in p.stderr
    p = job(
        "athena_style",
        "demo/jet-tagger@valid",
        "model/model.keras",
        HEPBUNDLE_CONTEXT="run=456789,release=Athena,25.0.12",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == str(want)
    # no HEPBUNDLE_POLICY: the repository's own trust root (repo init --policy policy.yaml),
    # once the site pins it; not pinned nor accepted on this node, it is refused
    env.pop("HEPBUNDLE_POLICY")
    root = hashlib.sha256((repo / "catalog" / "trust.json").read_bytes()).hexdigest()
    p = job(
        "c_api", "demo/jet-tagger@prod", "model/model.keras", HEPBUNDLE_TRUST_ROOT=f"sha256:{root}"
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == str(want)
    p = job("c_api", "demo/jet-tagger@prod", "model/model.keras")
    assert p.returncode != 0 and "is not accepted on this node" in p.stderr
    env["HEPBUNDLE_POLICY"] = str(policy)
    # a repository whose model file was changed after publishing: refused at initialize()
    copy = tmp_path / "tampered-repo"
    shutil.copytree(repo, copy)
    model = copy / "bundles/demo/jet-tagger/1.0.0/model/model.keras"
    model.chmod(0o644)  # published files are read-only
    data = bytearray(model.read_bytes())
    data[100] ^= 1
    model.write_bytes(bytes(data))
    p = job("athena_style", "demo/jet-tagger@prod", "model/model.keras", HEPBUNDLE_PATH=str(copy))
    assert p.returncode == 1
    assert "IntegrityError: demo/jet-tagger@1.0.0: modified model/model.keras" in p.stderr
