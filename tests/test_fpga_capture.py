"""FPGA capture without vendor tools: FINN and Vitis-AI outputs, bitstreams, spec sections, the
comparison arithmetic and the reload verdicts (the real hls4ml path is in test_fpga_hls4ml.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tools.fixtures import fpga as fx

import hepbundle
from hepbundle.cli import main
from hepbundle.digest import sha256_bytes
from hepbundle.errors import SpecError, ToolError
from hepbundle.fpga import bitstreams
from hepbundle.fpga.capture import capture, capture_section
from hepbundle.fpga.compare import Tolerance, compare_outputs, decode_fixed, load_npz
from hepbundle.fpga.reloadable import classify
from hepbundle.spec import validate

from .conftest import write_spec

EXAMPLE_HLS4ML = Path(__file__).parents[1] / "bundle-spec" / "examples" / "firmware" / "hls4ml_prj"


def assert_vivado_io_parallel(meta: dict[str, object]) -> None:
    """The target every hls4ml project of these tests was written for."""
    assert (meta["backend"], meta["ioType"], meta["part"]) == (
        "Vivado",
        "io_parallel",
        "xcvu9p-flga2104-2L-e",
    )


@pytest.fixture
def finn_dir(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    out = tmp_path / "finn" / "output_jet_tagger"
    return out, fx.finn_build(out)


@pytest.fixture
def vai_dir(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    out = tmp_path / "vai"
    return out, fx.vitis_ai_output(out)


# --- FINN ------------------------------------------------------------------------------------


def test_finn_build_output_parsed_end_to_end(finn_dir: tuple[Path, dict]) -> None:
    out, written = finn_dir
    cap = capture(out, "finn")
    meta = cap.meta
    validate(meta, "fpga.schema.json")
    assert meta["toolchain"] == "finn" and meta["project"] == "firmware/finn"
    assert (meta["board"], meta["part"], meta["clock"]["periodNs"]) == (
        "Pynq-Z1",
        "xc7z020clg400-1",
        10.0,
    )
    assert [s["name"] for s in meta["steps"]] == list(written["steps"])
    net = meta["estimates"]["network"]
    assert net["throughputFps"] == written["performance"]["estimated_throughput_fps"]
    assert net["criticalPathCycles"] == 156 and net["maxCyclesNode"] == "MVAU_hls_1"
    assert meta["estimates"]["resources"] == {
        "BRAM_18K": 3.0,
        "LUT": 3235.0,
        "URAM": 0.0,
        "DSP": 0.0,
    }
    assert meta["estimates"]["layers"]["MVAU_hls_1"] == {
        "BRAM_18K": 2,
        "LUT": 2001,
        "URAM": 0,
        "DSP": 0,
        "cycles": 64,
    }
    # the last step's ONNX is the implemented graph; earlier ones and copies are not packed
    assert meta["finalModel"] == "firmware/finn/intermediate_models/step_create_stitched_ip.onnx"
    assert meta["firmwareBuild"]["sourceModel"]["path"] == meta["finalModel"]
    paths = set(cap.files)
    assert not any("/deploy/" in p or "/stitched_ip/" in p for p in paths)
    assert "firmware/finn/intermediate_models/step_streamline.onnx" not in paths
    assert cap.files["firmware/finn/bitfile/finn-accel.bit"][1] == "bitstream"
    assert cap.files["firmware/finn/report/estimate_layer_cycles.json"][1] == "report"
    assert cap.files["firmware/finn/driver/runtime_weights/idma0.dat"][1] == "firmware"
    (bit,) = meta["bitstreams"]
    data = (out / "bitfile" / "finn-accel.bit").read_bytes()
    assert bit["sha256"] == sha256_bytes(data) and bit["part"] == "7z020clg400"
    assert bit["toolVersion"] == "2022.2" and bit["design"] == "top_wrapper"


def test_finn_without_step_timings_is_refused(tmp_path: Path) -> None:
    (tmp_path / "report").mkdir()
    with pytest.raises(ToolError, match="time_per_step.json"):
        capture(tmp_path, "finn")


# --- Vitis-AI --------------------------------------------------------------------------------


def test_vitis_ai_output_parsed_end_to_end(vai_dir: tuple[Path, dict]) -> None:
    out, written = vai_dir
    cap = capture(out, "vitis-ai", to="dpu")
    validate(cap.meta, "fpga.schema.json")
    dpu = cap.meta["dpu"]
    assert dpu["target"] == "DPUCZDX8G_ISA1_B4096"
    assert dpu["fingerprint"] == written["fingerprint"]
    assert dpu["runner"] == "libvart-dpu-runner.so"
    assert cap.meta["xmodels"] == [{"path": "dpu/jet_tagger.xmodel", "md5Checked": True}]
    assert cap.files["dpu/jet_tagger.xmodel"][1] == "firmware"
    assert cap.files["dpu/quantize_result/JetTagger_int.xmodel"][1] == "model"
    assert cap.meta["quantizer"]["params"] == 2


def test_vitis_ai_xmodel_changed_after_compilation_is_caught(vai_dir: tuple[Path, dict]) -> None:
    out, _ = vai_dir
    with open(out / "jet_tagger.xmodel", "ab") as f:
        f.write(b"\x00")
    with pytest.raises(ToolError, match="md5"):
        capture(out, "vitis-ai")


def test_vitis_ai_without_compiled_xmodel_is_refused(vai_dir: tuple[Path, dict]) -> None:
    out, _ = vai_dir
    (out / "jet_tagger.xmodel").unlink()
    with pytest.raises(ToolError, match="no compiled .xmodel"):
        capture(out, "vitis-ai")


# --- bitstreams ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make", "expect"),
    [
        ("top.bit", fx.bit_file, {"part": "xcvu9p-flga2104-2L-e", "toolVersion": "2022.2"}),
        ("a.xclbin", fx.xclbin_file, {"platform": "xilinx_u250_gen3x16_xdma_4_1_202210_1"}),
        ("p.xsa", fx.xsa_file, {"part": fx.PART, "toolVersion": "2022.2"}),
        ("boot.pdi", lambda p: p.write_bytes(b"\x00" * 64), {"format": "pdi"}),
        ("img.sof", lambda p: p.write_bytes(b"\x01" * 64), {"format": "sof"}),
    ],
)
def test_bitstream_described_with_loader_digest(
    tmp_path: Path, name: str, make: object, expect: dict[str, str]
) -> None:
    path = tmp_path / name
    make(path)  # type: ignore[operator]
    data = path.read_bytes()
    entry = bitstreams.describe(f"fw/{name}", data, {"buildHost": "lxplus-fpga01", "board": "X"})
    assert entry["sha256"] == sha256_bytes(data) and entry["size"] == len(data)
    assert entry["buildHost"] == "lxplus-fpga01" and entry["board"] == "X"  # declared wins
    for key, value in expect.items():
        assert entry[key] == value


@pytest.mark.parametrize(
    "data", [b"not a bitstream", b"\x00\x09\x0f\xf0\x0f\xf0\x0f\xf0\x0f\xf0\x00\x00\x01a\xff"]
)
def test_malformed_bit_header_is_an_error(data: bytes) -> None:
    with pytest.raises(ToolError, match=r"\.bit"):
        bitstreams.describe("x.bit", data)


def test_declared_bitstream_outside_project_is_packed(
    finn_dir: tuple[Path, dict], tmp_path: Path
) -> None:
    out, _ = finn_dir
    fx.xclbin_file(tmp_path / "impl" / "accel.xclbin")
    cap = capture(
        out,
        "finn",
        bitstreams=[{"path": "impl/accel.xclbin", "buildHost": "ci-42"}],
        base_dir=tmp_path,
    )
    entry = next(b for b in cap.meta["bitstreams"] if b["format"] == "xclbin")
    assert (
        entry["path"] == "firmware/finn/bitstreams/accel.xclbin" and entry["buildHost"] == "ci-42"
    )
    assert cap.files[entry["path"]][1] == "bitstream"


def test_firmware_build_id_changes_with_any_firmware_file(finn_dir: tuple[Path, dict]) -> None:
    out, _ = finn_dir
    before = capture(out, "finn").meta["firmwareBuild"]["id"]
    (out / "driver" / "driver.py").write_text("platform = 'alveo'\n")
    assert capture(out, "finn").meta["firmwareBuild"]["id"] != before


# --- hls4ml config (fast part; the real project is in test_fpga_hls4ml.py) --------------------


def test_hls4ml_example_project_config(tmp_path: Path) -> None:
    cap = capture(EXAMPLE_HLS4ML, "hls4ml", to="fw")
    meta = cap.meta
    validate(meta, "fpga.schema.json")
    assert_vivado_io_parallel(meta)
    assert meta["clock"]["periodNs"] == 5 and meta["model"]["reuseFactor"] == 1
    assert meta["tool"]["name"] == "hls4ml" and "synthesis" not in meta
    assert set(cap.files) == {"fw/hls4ml_config.yml", "fw/firmware/myproject.cpp"}


def test_hls4ml_config_with_hls4ml_tags_is_read(tmp_path: Path) -> None:
    prj = tmp_path / "prj"
    shutil.copytree(EXAMPLE_HLS4ML, prj)
    with open(prj / "hls4ml_config.yml", "a", encoding="utf-8") as f:
        f.write("KerasModel: !keras_model '/elsewhere/model.keras'\n")
    (prj / "model.keras").write_bytes(b"PK\x03\x04 keras zip")
    meta = capture(prj, "hls4ml").meta
    assert meta["sourceModel"] == "firmware/hls4ml/model.keras"
    assert meta["firmwareBuild"]["sourceModel"]["path"] == "firmware/hls4ml/model.keras"


def test_hls4ml_reports_hls4ml_cannot_read_are_one_line_errors(tmp_path: Path) -> None:
    """A project.tcl without its "set backend" line made hls4ml's report reader crash with an
    UnboundLocalError, a traceback out of `hepbundle build`; now a ToolError naming the cause."""
    prj = tmp_path / "prj"
    shutil.copytree(EXAMPLE_HLS4ML, prj)
    (prj / "project.tcl").write_text('set project_name "myproject"\n')
    fx.vivado_reports(prj)
    with pytest.raises(ToolError, match="could not parse the synthesis report") as e:
        capture(prj, "hls4ml")
    assert "set backend" in (e.value.hint or "")
    (prj / "project.tcl").write_text('set project_name "myproject"\nset backend "vivado"\n')
    assert capture(prj, "hls4ml").meta["synthesis"]["latency"] == {
        "bestCycles": 9,
        "worstCycles": 11,
    }


@pytest.mark.parametrize(
    ("toolchain", "project", "match"),
    [
        ("quartus-magic", ".", "unknown FPGA toolchain"),
        ("hls4ml", ".", "hls4ml_config.yml"),
        ("hls4ml", "missing", "not a directory"),
    ],
)
def test_capture_errors_name_the_problem(
    tmp_path: Path, toolchain: str, project: str, match: str
) -> None:
    with pytest.raises(ToolError, match=match):
        capture(tmp_path / project, toolchain)


# --- spec section and build -------------------------------------------------------------------


def test_capture_section_from_spec(finn_dir: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = finn_dir
    section = {
        "toolchain": "finn",
        "project": str(out.relative_to(tmp_path)),
        "to": "fw/finn",
        "board": "Pynq-Z1 rev C",
    }
    meta, files = capture_section(section, tmp_path)
    assert meta["project"] == "fw/finn" and meta["board"] == "Pynq-Z1 rev C"
    assert all(p.startswith("fw/finn/") for p in files)
    with pytest.raises(SpecError, match="toolchain"):
        capture_section({"project": "x"}, tmp_path)


def test_spec_schema_checks_the_fpga_section(tmp_path: Path) -> None:
    spec = {
        "name": "cms-l1t/tagger",
        "version": "1.0.0",
        "files": [{"path": "m.onnx", "role": "model"}],
        "fpga": {"toolchain": "hls4ml", "project": "prj", "to": "firmware/hls4ml"},
    }
    validate(spec, "spec.schema.json")
    spec["fpga"] = {"toolchain": "hls4ml", "projekt": "prj"}
    with pytest.raises(SpecError, match="project"):
        validate(spec, "spec.schema.json")


def test_cli_build_with_fpga_project(
    finn_dir: tuple[Path, dict], model_dir: Path, tmp_path: Path
) -> None:
    out, _ = finn_dir
    dest = tmp_path / "bundle"
    res = CliRunner().invoke(
        main,
        [
            "build",
            str(model_dir),
            "-o",
            str(dest),
            "--fpga-project",
            str(out),
            "--toolchain",
            "finn",
        ],
    )
    assert res.exit_code == 0, res.output
    b = hepbundle.open(dest, verify="integrity")  # unsigned: every digest checked below
    b.verify().raise_for_problems(b.ref)
    assert b.manifest.meta["fpga"]["toolchain"] == "finn"
    bit = b.manifest.meta["fpga"]["bitstreams"][0]
    # fpga.bitstreams records the SHA-256 programming tools check, whatever the bundle's algorithm
    assert hepbundle.digest.hash_file(b.root / bit["path"]).sha256 == bit["sha256"]
    assert b.manifest.file(bit["path"]).role == "bitstream"
    res = CliRunner().invoke(
        main, ["build", str(model_dir), "-o", str(tmp_path / "b2"), "--toolchain", "finn"]
    )
    assert res.exit_code == 2 and "go together" in res.output


def test_manifest_fpga_section_is_checked_on_read(built: hepbundle.Bundle) -> None:
    from hepbundle.errors import FormatError
    from hepbundle.manifest import Manifest

    doc = json.loads(built.manifest_bytes())
    doc["fpga"] = {"toolchain": "hls4ml", "project": "firmware/hls4ml"}  # no firmwareBuild
    with pytest.raises(FormatError, match="firmwareBuild"):
        Manifest.from_bytes(json.dumps(doc).encode())
    doc["fpga"]["firmwareBuild"] = {"id": "0" * 64, "files": 0}
    doc["fpga"]["futureField"] = {"readers": "ignore it"}
    assert Manifest.from_bytes(json.dumps(doc).encode()).meta["fpga"]["toolchain"] == "hls4ml"


def test_cli_capture_writes_section(vai_dir: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = vai_dir
    dest = tmp_path / "fpga.json"
    res = CliRunner().invoke(
        main, ["fpga", "capture", str(out), "--toolchain", "vitis-ai", "-o", str(dest)]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(dest.read_text())["dpu"]["target"] == "DPUCZDX8G_ISA1_B4096"
    res = CliRunner().invoke(main, ["fpga", "capture", str(tmp_path), "--toolchain", "finn"])
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output


def test_cli_compare_refuses_to_sign_an_unpublished_bundle(
    built: hepbundle.Bundle, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 16)))
    args = ["fpga", "compare", str(built.root), "--inputs", str(tmp_path / "x.npz")]
    res = CliRunner().invoke(main, [*args, "--integrity-only", "--key", str(ec_key[0])])
    assert res.exit_code == 2 and "not a published bundle" in res.output


# --- comparison arithmetic ---------------------------------------------------------------------


def _emu(n: int = 200, width: int = 5) -> np.ndarray:
    # values on the ap_fixed<16,6> grid, as the emulation returns them
    rng = np.random.default_rng(1)
    return np.round(rng.normal(size=(n, width)) * 1024) / 1024


@pytest.mark.parametrize(
    ("perturb", "tol", "passed", "exact"),
    [
        (lambda h: h, Tolerance(), True, 1.0),
        (
            lambda h: h + np.where(np.arange(h.size).reshape(h.shape) == 7, 2**-10, 0),
            Tolerance(),
            False,
            1 - 1 / 1000,
        ),
        (
            lambda h: h + np.where(np.arange(h.size).reshape(h.shape) == 7, 2**-10, 0),
            Tolerance(hardware_atol=2**-10),
            True,
            1 - 1 / 1000,
        ),
        (
            lambda h: h + np.where(np.arange(h.size).reshape(h.shape) % 100 == 0, 0.5, 0),
            Tolerance(min_agreement=0.995),
            False,
            0.99,
        ),
    ],
    ids=["exact-copy", "one-lsb-flip", "lsb-within-tolerance", "one-percent-wrong"],
)
def test_hardware_mismatch_gate(
    perturb: object, tol: Tolerance, passed: bool, exact: float
) -> None:
    emu = _emu()
    hw = perturb(emu.copy())  # type: ignore[operator]
    res = compare_outputs("y", emu, hardware=hw, tolerance=tol)
    assert (not res.failures) is passed
    assert res.emulation_vs_hardware is not None
    assert res.emulation_vs_hardware["bitExactFraction"] == pytest.approx(exact)


def test_float_gates_and_argmax() -> None:
    emu = _emu()
    flt = emu + 0.01
    res = compare_outputs("y", emu, float_out=flt, tolerance=Tolerance(float_atol=0.02))
    assert not res.failures
    assert res.float_vs_emulation == {
        "maxAbsDiff": pytest.approx(0.01),
        "meanAbsDiff": pytest.approx(0.01),
        "argmaxAgreement": 1.0,
        "floatRange": pytest.approx(float(np.ptp(flt))),
        "maxRelativeDiff": pytest.approx(0.01 / float(np.ptp(flt))),
    }
    swapped = emu.copy()
    swapped[:, [0, 1]] = swapped[:, [1, 0]]
    res = compare_outputs(
        "y", emu, float_out=swapped, tolerance=Tolerance(min_argmax_agreement=0.99)
    )
    assert res.failures and "argmax" in res.failures[0]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("constant", [0.0, 1 / 3, 0.5, 1.0])
def test_default_gate_fails_a_constant_output_firmware(constant: float) -> None:
    """The issue's broken firmware: a 3-class softmax emulated as a constant 0.333."""
    rng = np.random.default_rng(2)
    flt = _softmax(rng.normal(scale=2.0, size=(500, 3)))
    res = compare_outputs("y", np.full_like(flt, constant), float_out=flt)
    assert res.failures, res.float_vs_emulation
    assert any("range" in f for f in res.failures)
    # one-output score: constant on one side of the cut keeps the majority's decisions
    score = 1 / (1 + np.exp(-rng.normal(loc=-2.0, size=(500, 1))))
    res = compare_outputs("y", np.full_like(score, constant), float_out=score)
    assert any("range" in f for f in res.failures), res.float_vs_emulation


def test_default_gate_passes_a_quantised_copy() -> None:
    """ap_fixed<16,6> rounding of a real-valued output is well inside the default gate."""
    rng = np.random.default_rng(3)
    flt = _softmax(rng.normal(scale=2.0, size=(500, 5)))
    emu = np.round(flt * 1024) / 1024
    res = compare_outputs("y", emu, float_out=flt)
    assert not res.failures
    assert res.float_vs_emulation is not None
    assert res.float_vs_emulation["maxRelativeDiff"] < 0.01


def test_switched_off_bounds_pass_anything() -> None:
    flt = _softmax(np.random.default_rng(4).normal(size=(50, 3)))
    off = Tolerance(min_argmax_agreement=None, max_relative_diff=None)
    assert not compare_outputs("y", np.zeros_like(flt), float_out=flt, tolerance=off).failures


def test_comparing_nothing_is_an_error(built: hepbundle.Bundle, tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", x=np.zeros((2, 16)))
    args = ["fpga", "compare", str(built.root), "--inputs", str(tmp_path / "x.npz"), "--no-float"]
    res = CliRunner().invoke(main, [*args, "--integrity-only"])  # an unsigned test bundle
    assert res.exit_code == 2, res.output
    assert "nothing to compare" in res.output and "PASS" not in res.output


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ToolError, match="shape"):
        compare_outputs("y", _emu(), hardware=_emu(n=10))


@pytest.mark.parametrize(
    ("ctype", "words", "values"),
    [
        (
            "ap_fixed<18,8>",
            [0, 1, (1 << 17) - 1, 1 << 17, (1 << 18) - 1],
            [0, 2**-10, 128 - 2**-10, -128, -(2**-10)],
        ),
        ("ap_ufixed<8,4>", [0, 255, 16], [0, 16 - 1 / 16, 1]),
        ("ap_int<8>", [127, 128, 255], [127, -128, -1]),
        ("ap_uint<4>", [15, 16 + 3], [15, 3]),  # only the low W bits count
        ("ap_fixed<16,6,AP_RND,AP_SAT>", [-1], [-(2.0**-10)]),  # sign-extended int64 input
    ],
)
def test_decode_raw_fixed_point_words(ctype: str, words: list[int], values: list[float]) -> None:
    np.testing.assert_array_equal(decode_fixed(np.array(words), ctype), np.array(values))


@pytest.mark.parametrize("ctype", [None, "float", "ap_fixed<64,10>"])
def test_decode_refuses_what_it_cannot_read(ctype: str | None) -> None:
    with pytest.raises(ToolError):
        decode_fixed(np.array([1]), ctype)


def test_load_npz_by_name_or_single(tmp_path: Path) -> None:
    np.savez(tmp_path / "one.npz", whatever=np.ones((3, 4)))
    np.savez(tmp_path / "two.npz", a=np.ones(3), b=np.zeros(3))
    assert load_npz(tmp_path / "one.npz", ["x"], what="inputs")[0].shape == (3, 4)
    assert load_npz(tmp_path / "two.npz", ["b", "a"], what="inputs")[0].sum() == 0
    with pytest.raises(ToolError, match="expected x"):
        load_npz(tmp_path / "two.npz", ["x"], what="inputs")


# --- reload verdicts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "ports", "update"),
    [
        ("latency", (False, False), "resynthesis"),
        ("resource", (False, False), "bitstream"),
        ("latency", (True, True), "runtime"),
        ("latency", (True, False), "resynthesis"),
        ("resource", (True, False), "bitstream"),
    ],
)
def test_reload_classification(strategy: str, ports: tuple[bool, bool], update: str) -> None:
    layer = {
        "name": "fc",
        "function": "dense",
        "strategy": strategy,
        "weights": [{"name": "w", "port": ports[0]}, {"name": "b", "port": ports[1]}],
    }
    verdict = classify(layer)
    assert verdict.update == update
    assert dict(verdict.weights)["w"] == ("runtime" if ports[0] else verdict.update)
    assert classify({"name": "relu", "function": "relu", "weights": []}).update == "none"


def test_fixture_generator_cli(tmp_path: Path) -> None:
    assert fx.main(["finn", str(tmp_path / "f" / "out")]) == 0
    assert fx.main(["nope", str(tmp_path)]) == 2


def test_spec_example_build_with_fpga_section(tmp_path: Path, finn_dir: tuple[Path, dict]) -> None:
    """The section the build will hand to capture_section validates as part of a spec."""
    out, _ = finn_dir
    spec = write_spec(
        tmp_path,
        f"""
        name: cms-l1t/jet-tagger
        version: 1.0.0
        files:
          - path: {out.relative_to(tmp_path)}/intermediate_models/step_create_stitched_ip.onnx
            role: model
            to: model
        fpga:
          toolchain: finn
          project: {out.relative_to(tmp_path)}
          board: Pynq-Z1
        """,
    )
    from hepbundle.spec import load_spec

    s = load_spec(spec)
    meta, files = capture_section(s.sections["fpga"], s.base_dir)
    assert meta["board"] == "Pynq-Z1" and files
