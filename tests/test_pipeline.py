"""The README's main job: the whole pipeline example runs end to end and each step did its job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hepbundle.repository.layout import catalog_file, records_root

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
@pytest.mark.integration
def test_pipeline_end_to_end(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    p = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "examples" / "pipeline.py"), "--workdir", str(work)],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = p.stdout
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
