"""Building bundles: layout, manifest content, reproducibility, and failures that leave nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import hepbundle
from hepbundle.digest import hash_file
from hepbundle.errors import BuildError, SpecError
from hepbundle.spec import validate

from .conftest import write_spec


def test_build_writes_manifest_with_every_file(built: hepbundle.Bundle, model_dir: Path) -> None:
    m = json.loads((built.root / "hepbundle.json").read_text())
    validate(m, "manifest.schema.json")
    assert m["mediaType"] == "application/vnd.hepbundle.manifest.v1+json"
    assert (m["name"], m["version"]) == ("atlas/tauid", "1.2.0")
    files = {f["path"]: f for f in m["files"]}
    assert set(files) == {"model/model.onnx", "model/weights.bin", "MODEL_CARD.md"}
    assert files["model/model.onnx"]["role"] == "model"
    assert files["MODEL_CARD.md"]["role"] == "docs"
    alg = m["hashing"]["algorithm"]
    assert alg == "blake3"  # the default for new bundles (docs/performance.md)
    want = hash_file(model_dir / "model/model.onnx", alg).digest
    assert files["model/model.onnx"][alg] == want
    assert m["metrics"] == [{"name": "auc", "value": 0.93}]
    assert m["authors"] == [{"name": "Jane Doe", "email": "jane@cern.ch"}]
    assert m["modelCard"] == "MODEL_CARD.md"
    assert built.verify().ok


def test_reproducible_with_source_date_epoch(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = hepbundle.build(model_dir, tmp_path / "a")
    b = hepbundle.build(model_dir, tmp_path / "b")
    assert (a.root / "hepbundle.json").read_bytes() == (b.root / "hepbundle.json").read_bytes()
    assert a.manifest.created == "2023-11-14T22:13:20Z"


def test_same_inputs_differ_only_in_created(model_dir: Path, tmp_path: Path) -> None:
    a = json.loads((hepbundle.build(model_dir, tmp_path / "a").root / "hepbundle.json").read_text())
    b = json.loads((hepbundle.build(model_dir, tmp_path / "b").root / "hepbundle.json").read_text())
    a.pop("created")
    b.pop("created")
    assert a == b


def test_output_exists_refused(built: hepbundle.Bundle, model_dir: Path) -> None:
    with pytest.raises(BuildError, match="already exists"):
        hepbundle.build(model_dir, built.root)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("name: Atlas/TauID\nversion: 1.0.0\nfiles: [{path: a}]\n", r"hepbundle.yaml:1: name"),
        ("name: atlas/x\nversion: 1.0\nfiles: [{path: a}]\n", r"hepbundle.yaml:2: version"),
        (
            "name: atlas/x\nversion: 1.0.0\nfiles:\n  - path: a\n    role: modle\n",
            r":5: files\[0\].role: 'modle' is not one of .*did you mean 'model'",
        ),
        (
            "name: atlas/x\nversion: 1.0.0\nfile: [{path: a}]\n",
            r":3: file: unknown key \(did you mean 'files'",
        ),
        ("name: atlas/x\nversion: 1.0.0\n", r"files: required field is missing"),
        ("name: atlas/x\nversion: [1.0.0\n", r"hepbundle.yaml:\d+: invalid YAML"),
        (
            "name: atlas/x\nname: atlas/y\nversion: 1.0.0\nfiles: [{path: a}]\n",
            r":2: name: key given twice",
        ),
        ("- just a list\n", r"must be a YAML mapping"),
    ],
)
def test_spec_errors_name_line_and_field(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "a").write_text("x")
    spec = tmp_path / "hepbundle.yaml"
    spec.write_text(body)
    with pytest.raises(SpecError, match=message):
        hepbundle.build(spec, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ("- path: nothing/*.onnx", "matches no file"),
        ("- path: ../outside.bin", "outside the spec directory"),
        ("- path: model.onnx\n  to: ../../etc", "'..' segment"),
        ("- path: model.onnx\n  to: /abs", "absolute"),
        ("- path: hepbundle.json", "reserved"),
        ("- path: model.onnx\n- path: MODEL.onnx", "collide"),
    ],
)
def test_bad_file_rules_leave_nothing(tmp_path: Path, files: str, message: str) -> None:
    d = tmp_path / "src"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"onnx")
    (d / "MODEL.onnx").write_bytes(b"ONNX")
    (d / "hepbundle.json").write_text("{}")
    (tmp_path / "outside.bin").write_bytes(b"x")
    write_spec(
        d,
        "name: atlas/x\nversion: 1.0.0\nfiles:\n"
        + "\n".join("  " + ln for ln in files.splitlines()),
    )
    with pytest.raises(hepbundle.HepbundleError, match=message):
        hepbundle.build(d, tmp_path / "out" / "b")
    assert not (tmp_path / "out" / "b").exists()
    assert list((tmp_path / "out").glob("*")) == [] if (tmp_path / "out").exists() else True


def test_directory_globs_and_to(tmp_path: Path) -> None:
    d = tmp_path / "src"
    (d / "prj" / "firmware" / "nnet_utils").mkdir(parents=True)
    (d / "prj" / "firmware" / "myproject.cpp").write_text("// hls")
    (d / "prj" / "firmware" / "nnet_utils" / "nnet_dense.h").write_text("// h")
    (d / "prj" / "hls4ml_config.yml").write_text("Backend: Vivado\n")
    write_spec(
        d,
        """
        name: cms-l1t/jet-tagger
        version: 0.1.0
        files:
          - path: prj
            role: firmware
            to: firmware/hls4ml
          - path: "prj/**/*.h"
            role: code
            to: headers
        """,
    )
    b = hepbundle.build(d, tmp_path / "out")
    paths = {f.path: f.role for f in b.manifest.files}
    assert paths["firmware/hls4ml/hls4ml_config.yml"] == "firmware"
    assert paths["firmware/hls4ml/firmware/nnet_utils/nnet_dense.h"] == "firmware"
    assert paths["headers/firmware/nnet_utils/nnet_dense.h"] == "code"


def test_failure_mid_copy_removes_stage(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hepbundle.builder as mod

    def boom(src: object, dst: object, *_: object, **__: object) -> object:
        raise OSError(5, "Input/output error", str(src))

    monkeypatch.setattr(mod, "copy_and_hash", boom)
    out = tmp_path / "out" / "x"
    with pytest.raises(BuildError, match="cannot copy"):
        hepbundle.build(model_dir, out)
    assert not out.exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_every_spec_example_builds_and_verifies(tmp_path: Path) -> None:
    examples = Path(__file__).parents[1] / "bundle-spec" / "examples"
    specs = sorted(examples.glob("*/hepbundle.yaml"))
    assert specs, "bundle-spec/examples must hold example specs"
    for spec in specs:
        b = hepbundle.build(spec, tmp_path / spec.parent.name)
        assert b.verify().ok, spec


def test_spec_fpga_section_packs_the_project(tmp_path: Path) -> None:
    """`fpga:` in hepbundle.yaml is captured by the library build itself (not only the CLI)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "tools" / "fixtures"))
    from fpga import finn_build  # tools/fixtures/fpga.py: a realistic FINN build_dataflow output

    d = tmp_path / "src"
    finn_build(d / "finn_out")
    (d / "model.onnx").write_bytes(b"onnx")
    write_spec(
        d,
        """
        name: cms-l1t/finn-tagger
        version: 1.0.0
        files:
          - path: model.onnx
            role: model
        fpga:
          toolchain: finn
          project: finn_out
        """,
    )
    b = hepbundle.build(d, tmp_path / "out")
    fpga = b.manifest.meta["fpga"]
    assert fpga["toolchain"] == "finn"
    packed = [f.path for f in b.manifest.files if f.path != "model.onnx"]
    assert packed and all(p.startswith("firmware/finn/") for p in packed)
    assert b.verify().ok


def test_rebuild_over_a_signed_bundle_speaks_python_and_says_signatures_go(
    model_dir: Path, tmp_path: Path, ec_key: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    from hepbundle.signing import KeySigner, sign

    out = tmp_path / "dist" / "atlas" / "tauid" / "1.2.0"
    sign(hepbundle.build(model_dir, out).root, KeySigner(ec_key[0]))
    with pytest.raises(BuildError, match="already exists") as e:
        hepbundle.build(model_dir, out)
    assert "force=True" in str(e.value) and "signatures" in str(e.value)
    with caplog.at_level("WARNING", logger="hepbundle"):
        hepbundle.build(model_dir, out, force=True)
    assert "removes its signatures (hepbundle.sig)" in caplog.text
    assert not (out / "hepbundle.sig").exists()


def test_output_path_naming_another_version_is_refused(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist" / "atlas" / "tauid" / "0.2.0"
    with pytest.raises(BuildError, match=r"names version 0\.2\.0, but .*version: is 1\.2\.0"):
        hepbundle.build(model_dir, out)
    assert not out.exists()
    assert hepbundle.build(model_dir, tmp_path / "anywhere").version == "1.2.0"
