"""Real hls4ml: a Keras 16→64→32→5 model converted (Vivado backend, io_parallel), packed, compiled
into its bit-accurate C++ emulation with g++, and compared with float and "hardware" outputs.

TensorFlow and hls4ml work happens once per session (fixtures below); every test is slow.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from tools.fixtures import fpga as fx

import hepbundle
from hepbundle.cli import main
from hepbundle.errors import ToolError
from hepbundle.fpga.capture import capture
from hepbundle.fpga.emulation import hls4ml_model, load_emulation
from hepbundle.spec import validate

from .conftest import write_spec
from .test_fpga_capture import assert_vivado_io_parallel

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Hls4mlCase:
    project: Path
    inputs: Path
    x: np.ndarray
    y_hls4ml: np.ndarray
    y_keras: np.ndarray
    synth: dict[str, object]


def _convert(
    model: Any, out: Path, io_type: str, settings: dict[str, dict[str, object]] | None = None
) -> Any:
    """Convert with hls4ml (Vivado backend, ap_fixed<18,8> by default) and compile."""
    import hls4ml

    cfg = hls4ml.utils.config_from_keras_model(
        model, granularity="name", backend="Vivado", default_precision="fixed<18,8>"
    )
    for key, values in (settings or {}).items():
        (cfg[key] if key == "Model" else cfg["LayerName"][key]).update(values)
    hls = hls4ml.converters.convert_from_keras_model(
        model,
        hls_config=cfg,
        output_dir=str(out),
        backend="Vivado",
        io_type=io_type,
        part="xcvu9p-flga2104-2L-e",
    )
    hls.compile()
    return hls


@pytest.fixture(scope="session")
def case(tmp_path_factory: pytest.TempPathFactory) -> Hls4mlCase:
    """Convert and compile once. Three weight storages on purpose: fc1 constants (Latency),
    fc2's kernel over BramFactor (a top-level memory port), out with the Resource strategy."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("hls4ml")
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((16,), name="x"),
            tf.keras.layers.Dense(64, activation="relu", name="fc1"),
            tf.keras.layers.Dense(32, activation="relu", name="fc2"),
            tf.keras.layers.Dense(5, name="out"),
        ]
    )
    hls = _convert(
        model,
        root / "hls4ml_prj",
        "io_parallel",
        {"Model": {"BramFactor": 1500}, "out": {"Strategy": "Resource", "ReuseFactor": 4}},
    )
    x = np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)
    np.savez(root / "inputs.npz", x=x)
    synth = fx.vivado_reports(root / "hls4ml_prj")
    return Hls4mlCase(
        project=root / "hls4ml_prj",
        inputs=root / "inputs.npz",
        x=x,
        y_hls4ml=np.asarray(hls.predict(x)),
        y_keras=np.asarray(model.predict(x, verbose=0)),
        synth=synth,
    )


@pytest.fixture(scope="session")
def packed(case: Hls4mlCase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle built through the CLI with --fpga-project (the Keras model as role model)."""
    src = tmp_path_factory.mktemp("src")
    write_spec(
        src,
        """
        name: cms-l1t/jet-tagger
        version: 1.0.0
        summary: Toy L1 jet tagger with hls4ml firmware
        framework: keras
        files:
          - path: MODEL_CARD.md
            role: docs
        """,
    )
    (src / "MODEL_CARD.md").write_text("# Jet tagger\n\nFirmware in firmware/hls4ml.\n")
    dest = tmp_path_factory.mktemp("dist") / "cms-l1t" / "jet-tagger" / "1.0.0"
    res = CliRunner().invoke(
        main,
        [
            "build",
            str(src),
            "-o",
            str(dest),
            "--fpga-project",
            str(case.project),
            "--toolchain",
            "hls4ml",
        ],
    )
    assert res.exit_code == 0, res.output
    return dest


@pytest.fixture(scope="session")
def emu_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One emulation build for the CLI comparisons (each test has its own XDG cache)."""
    return tmp_path_factory.mktemp("emu") / "build"


def test_capture_real_project_with_synthesis_reports(case: Hls4mlCase) -> None:
    cap = capture(case.project, "hls4ml")
    meta = cap.meta
    validate(meta, "fpga.schema.json")
    assert_vivado_io_parallel(meta)
    assert meta["tool"]["version"] == "1.3.0" and meta["inputs"] == {"x": [16]}
    syn = meta["synthesis"]
    assert syn["latency"] == {"bestCycles": 9, "worstCycles": 11}
    assert syn["interval"] == {"min": 1, "max": 1}
    assert syn["timing"] == {"targetNs": 5.0, "estimatedNs": 4.372}
    assert syn["resources"] == {"LUT": 61234, "FF": 23145, "DSP": 4120, "BRAM_18K": 2, "URAM": 0}
    assert syn["cosim"]["Status"] == "Pass" and syn["vivadoSynth"]["LUT"] == 58001
    layers = {layer["name"]: layer for layer in meta["layers"]}
    assert [layers[n]["nOut"] for n in ("fc1", "fc2", "out")] == [64, 32, 5]
    assert layers["out"]["strategy"] == "resource" and layers["out"]["reuseFactor"] == 4
    ports = {w["name"]: w["port"] for w in layers["fc2"]["weights"]}
    assert ports == {"w4": True, "b4": False}
    assert {w["type"] for w in layers["fc1"]["weights"]} == {"ap_fixed<18,8>"}
    roles = {p: r for p, (_, r) in cap.files.items()}
    assert roles["firmware/hls4ml/firmware/weights/w2.txt"] == "weights"
    assert roles[meta["sourceModel"]] == "model"
    assert (
        roles["firmware/hls4ml/myproject_prj/solution1/syn/report/myproject_csynth.xml"] == "report"
    )
    assert not any(p.endswith(".so") for p in cap.files), "machine-specific build products packed"


def test_emulation_from_read_only_bundle(case: Hls4mlCase, packed: Path, tmp_path: Path) -> None:
    """Compiling never writes into the bundle (CVMFS is read-only) and computes exactly what
    hls4ml's own compiled model computes."""
    import shutil

    ro = tmp_path / "ro" / "bundle"
    shutil.copytree(packed, ro)
    for p in [ro, *ro.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        # our own unsigned build: ask for full digest checks without signatures, by name
        b = hepbundle.open(ro, verify="integrity")
        b.verify().raise_for_problems(b.ref)  # every file, as verify="full" checked
        before = sorted(str(p) for p in ro.rglob("*"))
        emu = hls4ml_model(b, allow_unsigned=True)  # our own, unsigned build
        y = emu.predict(case.x)
        np.testing.assert_array_equal(y, case.y_hls4ml)
        assert sorted(str(p) for p in ro.rglob("*")) == before
        b.verify().raise_for_problems(b.ref)
        cache = Path(os.environ["XDG_CACHE_HOME"]) / "hepbundle" / "fpga-emulation"
        assert emu.library.is_relative_to(cache)
        built = emu.library.stat().st_mtime_ns
        again = hls4ml_model(hepbundle.open(ro, verify="integrity"), allow_unsigned=True)
        assert again.library == emu.library and again.library.stat().st_mtime_ns == built
    finally:
        for p in [ro, *ro.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_emulation_input_errors(case: Hls4mlCase, emu_dir: Path) -> None:
    emu = load_emulation(case.project, build_dir=emu_dir)
    with pytest.raises(ToolError, match="not a multiple"):
        emu.predict(np.ones((3, 15), dtype=np.float32))
    with pytest.raises(ToolError, match="input"):
        emu.predict([case.x, case.x])
    assert np.array_equal(emu.predict(case.x.astype(np.float64)).astype(np.float32), case.y_hls4ml)


def _compare(bundle: Path | str, case: Hls4mlCase, emu_dir: Path, *extra: str) -> list[str]:
    """``hepbundle fpga compare`` on the session's inputs and shared emulation build."""
    return [
        "fpga",
        "compare",
        str(bundle),
        "--inputs",
        str(case.inputs),
        "--build-dir",
        str(emu_dir),
        "--allow-unsigned",  # the session's own, unsigned build
        *extra,
    ]


def _hardware(case: Hls4mlCase, kind: str, path: Path, emu_dir: Path | None = None) -> Path:
    hw = case.y_hls4ml.copy()
    if kind == "lsb":
        hw[17, 3] += 2.0**-10  # a small error in one value
    elif kind == "scrambled":
        hw = hw[::-1].copy()
    elif kind.startswith("raw"):
        # what a test bed dumps: the output port's ap_fixed words as integers
        assert emu_dir is not None
        (port,) = load_emulation(case.project, build_dir=emu_dir).outputs
        width, integer = (int(v) for v in port.type.split("<")[1].rstrip(">").split(","))  # type: ignore[union-attr]
        words = np.round(hw.astype(np.float64) * 2.0 ** (width - integer)).astype(np.int64)
        words &= (1 << width) - 1
        if kind == "raw-lsb":
            words[42, 0] ^= 1  # flip the least significant bit of one word
        np.savez(path, layer6_out=words)
        return path
    np.savez(path, layer6_out=hw)
    return path


@pytest.mark.parametrize(
    ("kind", "extra", "code"),
    [
        ("exact", [], 0),
        ("lsb", [], 1),
        ("lsb", ["--tolerance", "0.001"], 0),
        ("lsb", ["--min-agreement", "0.99"], 0),
        ("scrambled", ["--min-agreement", "0.5"], 1),
        ("raw", [], 0),
        ("raw-lsb", [], 1),
    ],
    ids=[
        "exact-copy",
        "one-lsb",
        "lsb-tolerated",
        "agreement-tolerated",
        "scrambled",
        "raw-words",
        "raw-word-bit-flip",
    ],
)
def test_compare_gate(
    case: Hls4mlCase,
    packed: Path,
    emu_dir: Path,
    tmp_path: Path,
    kind: str,
    extra: list[str],
    code: int,
) -> None:
    hw = _hardware(case, kind, tmp_path / "hw.npz", emu_dir)
    plot = tmp_path / "cmp.png"
    args = _compare(packed, case, emu_dir, "--hardware-outputs", str(hw), "--plot", str(plot))
    args += ["--out", str(tmp_path / "rep"), "--json"]
    res = CliRunner().invoke(main, args + extra)
    assert res.exit_code == code, res.output
    report = json.loads(res.stdout)
    (out,) = report["outputs"]
    assert out["name"] == "layer6_out" and out["samples"] == 300 and out["width"] == 5
    eh = out["emulation_vs_hardware"]
    expected_exact = {"exact": 1.0, "raw": 1.0, "lsb": 1 - 1 / 1500, "raw-lsb": 1 - 1 / 1500}.get(
        kind
    )
    assert report["hardware"]["encoding"] == (
        "values"
        if "raw" not in kind
        else "raw words: " + str(load_emulation(case.project, build_dir=emu_dir).outputs[0].type)
    )
    if expected_exact is not None:
        assert eh["bitExactFraction"] == pytest.approx(expected_exact)
    else:
        assert eh["bitExactFraction"] < 0.1 and eh["argmaxAgreement"] < 0.5
    fe = out["float_vs_emulation"]
    # what quantisation to ap_fixed<18,8> costs: small, decisions nearly always kept
    assert 0 < fe["maxAbsDiff"] < 0.1 and fe["argmaxAgreement"] > 0.95
    assert report["passed"] is (code == 0)
    assert report["floatModel"].endswith(".keras")
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["passed"] is (code == 0)


def test_compare_float_gate_and_human_output(case: Hls4mlCase, packed: Path, emu_dir: Path) -> None:
    args = _compare(packed, case, emu_dir)
    res = CliRunner().invoke(main, [*args, "--float-tolerance", "1e-6"])
    assert res.exit_code == 1
    assert "firmware comparison failed: layer6_out: float vs emulation" in res.output
    res = CliRunner().invoke(main, [*args, "--float-tolerance", "0.5"])
    assert res.exit_code == 0, res.output
    assert "PASS cms-l1t/jet-tagger@1.0.0" in res.output


def test_default_gate_fails_a_constant_output_firmware(case: Hls4mlCase, tmp_path: Path) -> None:
    """A firmware whose last layer lost its weights (output = bias = 0.333 for every sample),
    packed with the right float model: the default thresholds fail it, and the record says so."""
    project = tmp_path / "broken_prj"
    shutil.copytree(case.project, project, ignore=shutil.ignore_patterns("*.so", "*.o"))
    weights = project / "firmware" / "weights"
    (weights / "w6.txt").write_text(", ".join(["0"] * 160))
    (weights / "b6.txt").write_text(", ".join(["0.333"] * 5))
    src = tmp_path / "src"
    write_spec(
        src,
        """
        name: cms-l1t/broken
        version: 1.0.0
        summary: Firmware that outputs a constant
        framework: keras
        files:
          - path: MODEL_CARD.md
            role: docs
        """,
    )
    (src / "MODEL_CARD.md").write_text("# Broken\n")
    dest = tmp_path / "dist"
    res = CliRunner().invoke(
        main,
        [
            "build",
            str(src),
            "-o",
            str(dest),
            "--fpga-project",
            str(project),
            "--toolchain",
            "hls4ml",
        ],
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        main,
        [
            "fpga",
            "compare",
            str(dest),
            "--inputs",
            str(case.inputs),
            "--out",
            str(tmp_path / "rep"),
            "--allow-unsigned",  # built right here
        ],
    )
    assert res.exit_code == 1, res.output
    assert "FAIL" in res.output and "PASS" not in res.output
    assert "argmax agreement" in res.output
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert report["passed"] is False
    fe = report["outputs"][0]["float_vs_emulation"]
    assert fe["maxRelativeDiff"] > 0.2 and fe["argmaxAgreement"] < 0.9
    assert report["tolerance"]["min_argmax_agreement"] == 0.9


def test_compare_appends_signed_record(
    case: Hls4mlCase, packed: Path, emu_dir: Path, tmp_path: Path, ec_key: tuple[Path, Path]
) -> None:
    from hepbundle.policy import TrustPolicy
    from hepbundle.repository import list_records, publish, verify_record

    repo = tmp_path / "repo"
    publish(packed, repo, allow_unsigned=True)
    published = repo / "bundles" / "cms-l1t" / "jet-tagger" / "1.0.0"
    hw = _hardware(case, "exact", tmp_path / "hw.npz")
    args = _compare(
        "cms-l1t/jet-tagger@latest",
        case,
        emu_dir,
        "--hardware-outputs",
        str(hw),
        "--key",
        str(ec_key[0]),
        "--repo",
        str(repo),
    )
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    (rec,) = list_records(repo, "cms-l1t/jet-tagger", "1.0.0", kind="fpga-compare")
    assert rec.signed and rec.attachments == ("report.png",)
    assert rec.manifest_digest == hepbundle.Bundle.load(published).manifest_digest
    assert rec.payload["outputs"][0]["emulation_vs_hardware"]["bitExactFraction"] == 1.0
    verify_record(rec, TrustPolicy.from_flags(keys=[ec_key[1]]))


def test_reloadable_cli(packed: Path) -> None:
    res = CliRunner().invoke(
        main, ["fpga", "reloadable", str(packed), "--json", "--integrity-only"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["runtimeReloadable"] == ["fc2.w4"]
    updates = {layer["name"]: layer["update"] for layer in report["layers"]}
    assert updates == {
        "fc1": "resynthesis",
        "fc1_relu": "none",
        "fc2": "resynthesis",
        "fc2_relu": "none",
        "out": "bitstream",
    }
    res = CliRunner().invoke(main, ["fpga", "reloadable", str(packed), "--integrity-only"])
    assert "loadable at run time: fc2.w4" in res.output


def test_io_stream_conv_project(tmp_path: Path) -> None:
    """io_stream and multi-dimensional ports (the bridge writes sizes as products, 8*3)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(1)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((8, 3), name="x"),
            tf.keras.layers.Conv1D(4, 3, activation="relu", name="c1"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(5, name="out"),
        ]
    )
    hls = _convert(model, tmp_path / "prj", "io_stream")
    x = np.random.default_rng(2).normal(size=(40, 8, 3)).astype(np.float32)
    emu = load_emulation(tmp_path / "prj", build_dir=tmp_path / "emu")
    assert [(p.name, p.size) for p in emu.inputs] == [("x", 24)]
    np.testing.assert_array_equal(emu.predict(x), hls.predict(x))
    meta = capture(tmp_path / "prj", "hls4ml").meta
    validate(meta, "fpga.schema.json")
    assert meta["ioType"] == "io_stream" and meta["inputs"] == {"x": [8, 3]}
    assert [layer["function"] for layer in meta["layers"]] == ["conv_1d_cl", "relu", "dense"]
