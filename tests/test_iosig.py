"""The I/O signature (bundle-spec/io.md) on real models: captured from an ONNX graph and a Keras
model at build, completed by the spec, refused where the spec contradicts the model; checked
by the loaders at load; batches read against it (order, dtype, unit range) and normalised."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.errors import BatchError, BuildError, FormatError, ModelIOError, SpecError
from hepbundle.iosig import IOSignature
from hepbundle.iosig.capture import hls4ml_precisions
from hepbundle.loaders import keras_model, onnx_session
from hepbundle.spec import validate

sys.path.insert(0, str(Path(__file__).parents[1] / "tools"))
from make_examples import tiny_onnx

from .conftest import write_spec

ROOT = Path(__file__).resolve().parents[1]
FEATURES = """
      features:
        - {name: pt, unit: GeV, normalisation: {offset: -20, scale: 0.01}, range: {min: 20, max: 3000}}
        - {name: eta, unit: "", normalisation: {mean: 0, std: 1.5}, range: {min: -2.5, max: 2.5}}
        - {name: mass, unit: GeV, range: {min: 0, max: 500}}
"""


def _spec(d: Path, io: str, model: str = "model/model.onnx") -> Path:
    return write_spec(
        d,
        f"name: demo/tagger\nversion: 1.0.0\nfiles:\n  - path: {model}\n    role: model\n{io}",
    )


@pytest.fixture
def tagger(tmp_path: Path) -> hepbundle.Bundle:
    """A real 3-feature, 2-class ONNX tagger with its full signature."""
    d = tmp_path / "src"
    tiny_onnx(d / "model" / "model.onnx", n_in=3, n_out=2)
    _spec(
        d,
        "io:\n  inputs:\n    - name: x"
        + FEATURES
        + "  outputs:\n    - {name: probs, classes: [b, light]}\n",
    )
    return hepbundle.build(d, tmp_path / "b")


def _jets(n: int = 500, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack(
        [rng.uniform(25, 800, n), rng.uniform(-2.4, 2.4, n), rng.uniform(5, 200, n)], axis=1
    ).astype(np.float32)


def test_build_records_the_model_signature_completed_by_the_spec(
    tagger: hepbundle.Bundle,
) -> None:
    io = tagger.manifest.meta["io"]
    validate(io, "io.schema.json")
    assert io["model"] == "model/model.onnx" and io["framework"] == "onnx"
    (x,) = io["inputs"]
    assert (x["name"], x["dtype"], x["shape"]) == ("x", "float32", ["N", 3])  # from the graph
    assert [f["name"] for f in x["features"]] == ["pt", "eta", "mass"]  # from the spec
    assert x["features"][0] == {
        "name": "pt",
        "unit": "GeV",
        "normalisation": {"offset": -20.0, "scale": 0.01},
        "range": {"min": 20.0, "max": 3000.0},
    }
    assert io["outputs"] == [
        {"name": "probs", "dtype": "float32", "shape": ["N", 2], "classes": ["b", "light"]}
    ]
    assert tagger.io.feature_names == ["pt", "eta", "mass"]


def test_a_model_alone_gives_names_dtypes_and_shapes(tmp_path: Path) -> None:
    d = tmp_path / "src"
    tiny_onnx(d / "model" / "model.onnx")
    _spec(d, "")
    io = hepbundle.build(d, tmp_path / "b").manifest.meta["io"]
    assert io["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["N", 16]}]


def test_an_unreadable_model_without_io_section_records_none_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = tmp_path / "src"
    (d / "model").mkdir(parents=True)
    (d / "model" / "model.onnx").write_bytes(bytes(range(256)) * 4)
    _spec(d, "")
    with caplog.at_level("WARNING", logger="hepbundle"):
        b = hepbundle.build(d, tmp_path / "b")
    assert "io" not in b.manifest.meta and "no I/O signature recorded" in caplog.text
    with pytest.raises(hepbundle.NotInBundleError, match="records no I/O signature"):
        b.io  # noqa: B018


def test_a_good_batch_fits_and_normalises_to_what_the_session_takes(
    tagger: hepbundle.Bundle,
) -> None:
    x = _jets()
    report = tagger.io.check({"x": x})
    assert report.ok, str(report)
    # columns by feature name (an NPZ or ROOT tree), in any order, extras noted
    cols = {"mass": x[:, 2], "eta": x[:, 1], "pt": x[:, 0], "label": np.zeros(len(x))}
    report = tagger.io.check(cols)
    assert report.ok and report.notes == ["ignored label (not an input or feature)"]
    feed = tagger.io.normalise(cols)
    want = np.stack([(x[:, 0] - 20) * 0.01, x[:, 1] / 1.5, x[:, 2]], axis=1)
    assert feed["x"].dtype == np.float32
    np.testing.assert_allclose(feed["x"], want, rtol=1e-6)
    kept = x.copy()
    np.testing.assert_allclose(tagger.io.normalise({"x": x})["x"], want, rtol=1e-6)
    np.testing.assert_array_equal(x, kept)  # the caller's array is never normalised in place
    probs = onnx_session(tagger).run(None, feed)[0]
    assert probs.shape == (len(x), 2)


def test_wrong_feature_order_is_caught(tagger: hepbundle.Bundle) -> None:
    x = _jets()
    report = tagger.io.check({"x": x[:, [1, 0, 2]]})  # eta and pt swapped
    assert not report.ok
    assert any(
        "feature 0 pt [GeV]" in p and "fits the range of feature 1 eta" in p
        for p in report.problems
    ), report.problems
    # a structured array in another order than the signature: named, and normalise reorders
    s = np.zeros(len(x), dtype=[("eta", "f4"), ("pt", "f4"), ("mass", "f4")])
    s["pt"], s["eta"], s["mass"] = x[:, 0], x[:, 1], x[:, 2]
    report = tagger.io.check(s)
    assert report.problems == [
        "input x: structured fields in the order eta, pt, mass; the model expects pt, eta, "
        "mass (field 0 is eta, should be pt; normalise() reorders by name)"
    ]
    np.testing.assert_allclose(tagger.io.normalise(s)["x"], tagger.io.normalise({"x": x})["x"])
    with pytest.raises(BatchError, match="does not fit the I/O signature: input x: structured"):
        report.raise_for_problems()


def test_wrong_dtype_and_shape_are_caught(tagger: hepbundle.Bundle) -> None:
    x = _jets()
    assert tagger.io.check({"x": x.astype(np.float64)}).problems == [
        "input x: dtype float64, the model takes float32"
    ]
    problems = tagger.io.check({"x": x[:, :2]}).problems
    assert problems == [
        "input x: axis 1 has 2 elements, the model takes 3 (shape [500, 2] for [N, 3])"
    ]
    assert tagger.io.check({"y": x}).problems == [
        "input x: no tensor x and no feature columns pt, eta, mass"
    ]


def test_a_unit_off_by_a_thousand_is_caught(tagger: hepbundle.Bundle) -> None:
    x = _jets()
    mev = x * np.array([1000, 1, 1], dtype=np.float32)  # pt in MeV for a model trained in GeV
    (problem,) = tagger.io.check({"x": mev}).problems
    assert problem.startswith("input x feature 0 pt [GeV]: ")
    assert re.search(r"× the range: is it in GeV\?", problem), problem
    assert tagger.io.check({"x": mev}, ranges=False).ok
    nan = x.copy()
    nan[3, 2] = np.nan
    assert tagger.io.check({"x": nan}).problems == ["input x feature 2 mass [GeV]: 1 NaN"]


def _recorded(b: hepbundle.Bundle) -> dict[str, Any]:
    return json.loads(json.dumps(b.manifest.meta["io"]))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda io: io["inputs"][0].update(name="jets"),
            r"inputs jets recorded but not in the model \(it has x\)",
        ),
        (
            lambda io: io["inputs"][0].update(dtype="float64"),
            r"input x: dtype float32, recorded as float64",
        ),
        (
            lambda io: io["inputs"][0].update(shape=["N", 4], features=[]),
            r"input x: shape \[N, 3\], recorded as \[N, 4\]",
        ),
        (
            lambda io: io["outputs"][0].update(dtype="float16"),
            r"output probs: dtype float32, recorded as float16",
        ),
    ],
    ids=["name", "dtype", "shape", "output"],
)
def test_onnx_session_refuses_a_model_that_is_not_the_recorded_one(
    tagger: hepbundle.Bundle, tmp_path: Path, edit: Any, message: str
) -> None:
    """An importer records a signature as given (``extra_meta``): one that does not match the
    packed model is refused when the model is loaded."""
    io = _recorded(tagger)
    edit(io)
    if not io["inputs"][0].get("features"):
        io["inputs"][0].pop("features", None)
    b = hepbundle.build(tmp_path / "src", tmp_path / "other", extra_meta={"io": io})
    with pytest.raises(ModelIOError, match=message) as e:
        onnx_session(b)
    assert e.value.exit_code == 1 and "does not match its recorded I/O signature" in str(e.value)


@pytest.mark.parametrize(
    ("io", "message"),
    [
        (
            "io:\n  inputs:\n    - {name: x, dtype: float64}\n",
            r"hepbundle.yaml:8: io.inputs\[0\].dtype: the spec says float64, model/model.onnx says float32",
        ),
        (
            "io:\n  inputs:\n    - {name: x, shape: [N, 4]}\n",
            r"io.inputs\[0\].shape: the spec says \[N, 4\], model/model.onnx says \[N, 3\]",
        ),
        (
            "io:\n  inputs:\n    - {name: jets}\n",
            r"io.inputs\[0\].name: 'jets' is not one of the inputs of model/model.onnx \(it has: x\)",
        ),
        (
            "io:\n  inputs:\n    - {name: x, features: [pt, eta]}\n",
            r"io.inputs\[0\].features: 2 features, but model/model.onnx says x has 3",
        ),
        (
            "io:\n  outputs:\n    - {name: probs, classes: [b, c, light]}\n",
            r"io.outputs\[0\].classes: 3 classes, but model/model.onnx says probs has 2",
        ),
        (
            "io:\n  model: model/other.onnx\n",
            r"io.model: 'model/other.onnx' is not a file of this bundle",
        ),
    ],
    ids=["dtype", "shape", "name", "features", "classes", "model"],
)
def test_spec_contradicting_the_model_is_a_build_error_naming_both(
    tmp_path: Path, io: str, message: str
) -> None:
    d = tmp_path / "src"
    tiny_onnx(d / "model" / "model.onnx", n_in=3, n_out=2)
    _spec(d, io)
    with pytest.raises(BuildError, match=message):
        hepbundle.build(d, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_a_model_hepbundle_cannot_read_needs_dtype_and_shape_in_the_spec(tmp_path: Path) -> None:
    d = tmp_path / "src"
    (d / "model").mkdir(parents=True)
    (d / "model" / "tagger.xml").write_text("<MethodSetup/>")
    _spec(d, "io:\n  inputs:\n    - {name: x, features: [a, b]}\n", model="model/tagger.xml")
    with pytest.raises(BuildError, match=r"io.inputs\[0\] \(x\): no dtype, and no model"):
        hepbundle.build(d, tmp_path / "b")
    _spec(
        d,
        "io:\n  inputs:\n    - {name: x, dtype: float32, shape: [batch, 2], features: [a, b]}\n",
        model="model/tagger.xml",
    )
    io = hepbundle.build(d, tmp_path / "b").manifest.meta["io"]
    assert io["framework"] == "spec" and "model" not in io
    assert io["inputs"][0]["shape"] == ["batch", 2]


def test_a_malformed_io_section_is_one_line(tmp_path: Path) -> None:
    d = tmp_path / "src"
    tiny_onnx(d / "model" / "model.onnx", n_in=3, n_out=2)
    _spec(
        d,
        "io:\n  inputs:\n    - name: x\n      features:\n        - {name: pt, normalization: {mean: 0, std: 1}}\n",
    )
    with pytest.raises(SpecError, match=r"hepbundle.yaml:\d+: io.inputs\[0\].features\[0\]"):
        hepbundle.build(d, tmp_path / "b")
    res = CliRunner().invoke(main, ["build", str(d), "-o", str(tmp_path / "b")])
    assert res.exit_code == 2
    (line,) = res.output.strip().splitlines()
    assert line.startswith("hepbundle: error: ") and "Traceback" not in res.output


def test_a_malformed_io_member_in_a_manifest_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        FormatError, match=r"io: inputs\[0\] \(x\): 2 features for a last axis of 3"
    ):
        IOSignature.from_json(
            {
                "inputs": [
                    {
                        "name": "x",
                        "dtype": "float32",
                        "shape": ["N", 3],
                        "features": [{"name": "a"}, {"name": "b"}],
                    }
                ],
                "outputs": [],
            }
        )
    with pytest.raises(FormatError, match=r"'float' is not one of"):
        IOSignature.from_json(
            {"inputs": [{"name": "x", "dtype": "float", "shape": [1]}], "outputs": []}
        )
    with pytest.raises(FormatError, match=r"feature 'a' appears twice"):
        IOSignature.from_json(
            {
                "inputs": [
                    {
                        "name": "x",
                        "dtype": "float32",
                        "shape": [None, 2],
                        "features": [{"name": "a"}, {"name": "a"}],
                    }
                ],
                "outputs": [],
            }
        )


def test_show_renders_the_signature_as_a_table(tagger: hepbundle.Bundle) -> None:
    res = CliRunner().invoke(main, ["show", str(tagger.root)])
    assert res.exit_code == 0, res.output
    text = res.output
    assert "inputs (model/model.onnx, onnx)" in text
    assert re.search(
        r"x\s+float32\[N, 3\]\s+0\s+pt\s+GeV\s+\(x - 20\) × 0.01\s+\[20, 3000\]", text
    ), text
    assert re.search(r"1\s+eta\s+x / 1.5\s+\[-2.5, 2.5\]", text), text
    assert re.search(r"probs\s+float32\[N, 2\]\s+b, light", text), text


def test_format_page_examples_validate(tmp_path: Path) -> None:
    text = (ROOT / "bundle-spec" / "io.md").read_text()
    (member,) = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    validate(member, "io.schema.json")
    sig = IOSignature.from_json(member)
    assert sig.to_json() == member
    (section,) = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", text, re.S)]
    # the spec example, built against a real model of its shape, gives the manifest example
    d = tmp_path / "src"
    tiny_onnx(d / "model" / "model.onnx", n_in=3, n_out=2)
    _spec(d, yaml.safe_dump(section, sort_keys=False))
    io = hepbundle.build(d, tmp_path / "b").manifest.meta["io"]
    expected = json.loads(json.dumps(member))
    expected["inputs"][0].pop("precision")  # no hls4ml project here
    expected["inputs"][0]["features"][2] = {"name": "jet_mass"}  # a name alone in the spec
    member_mass = member["inputs"][0]["features"][2]
    assert member_mass["name"] == "jet_mass"
    assert io == expected


def test_hls4ml_precisions_from_the_top_function(tmp_path: Path) -> None:
    fw = tmp_path / "prj" / "firmware"
    fw.mkdir(parents=True)
    (tmp_path / "prj" / "hls4ml_config.yml").write_text("ProjectName: tagger\n")
    (fw / "defines.h").write_text(
        "typedef ap_fixed<16,6> input_t;\ntypedef ap_fixed<16,6> layer2_t;\n"
        "typedef ap_fixed<18,8> result_t;\n"
    )
    (fw / "tagger.cpp").write_text(
        "void tagger(\n    input_t x[N_INPUT_1_1],\n    result_t layer7_out[N_LAYER_5]\n) {\n"
    )
    assert hls4ml_precisions(tmp_path / "prj", 1) == (["ap_fixed<16,6>"], ["ap_fixed<18,8>"])
    (fw / "tagger.cpp").unlink()
    (fw / "defines.h").unlink()
    (tmp_path / "prj" / "hls4ml_config.yml").write_text(
        "HLSConfig:\n  Model:\n    Precision: ap_fixed<12,4>\n"
    )
    assert hls4ml_precisions(tmp_path / "prj", 1) == (["ap_fixed<12,4>"], ["ap_fixed<12,4>"])


@pytest.mark.slow
def test_keras_signature_captured_and_checked_at_load(tmp_path: Path) -> None:
    import keras

    d = tmp_path / "src"
    (d / "model").mkdir(parents=True)
    model = keras.Sequential(
        [keras.Input((3,), name="jets"), keras.layers.Dense(2, activation="softmax", name="probs")]
    )
    model.save(d / "model" / "tagger.keras")
    _spec(
        d,
        "io:\n  inputs:\n    - name: jets"
        + FEATURES
        + "  outputs:\n    - {name: probs, classes: [b, light]}\n",
        model="model/tagger.keras",
    )
    b = hepbundle.build(d, tmp_path / "b")
    io = b.manifest.meta["io"]
    assert io["framework"] == "keras"
    assert (io["inputs"][0]["name"], io["inputs"][0]["shape"]) == ("jets", ["batch", 3])
    assert io["outputs"][0]["name"] == "probs" and io["outputs"][0]["classes"] == ["b", "light"]
    x = _jets()
    loaded = keras_model(b)
    probs = loaded.predict(b.io.normalise({"jets": x})["jets"], verbose=0)
    assert probs.shape == (len(x), 2)
    # a recorded dtype the model does not have: refused at load
    wrong = json.loads(json.dumps(io))
    wrong["inputs"][0]["dtype"] = "float64"
    other = hepbundle.build(d, tmp_path / "other", extra_meta={"io": wrong})
    with pytest.raises(ModelIOError, match="input jets: dtype float32, recorded as float64"):
        keras_model(other)
    # and a spec contradicting the Keras model fails the build
    _spec(d, "io:\n  inputs:\n    - {name: jets, shape: [batch, 4]}\n", model="model/tagger.keras")
    with pytest.raises(
        BuildError, match=r"the spec says \[batch, 4\], model/tagger.keras says \[batch, 3\]"
    ):
        hepbundle.build(d, tmp_path / "c")


def test_catalogue_site_shows_the_signature(
    tagger: hepbundle.Bundle,
    tmp_path: Path,
    ec_key: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hepbundle.repository import publish
    from hepbundle.signing import KeySigner, sign
    from hepbundle.site import build_site

    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: 1\nrules:\n  - namespace: '*'\n    signers:\n      - key: {ec_key[1]}\n"
    )
    monkeypatch.setenv("HEPBUNDLE_POLICY", str(policy))
    sign(tagger.root, KeySigner(ec_key[0]))
    publish(tagger.root, tmp_path / "repo")
    site = build_site(tmp_path / "repo", tmp_path / "site").path
    page = (site / "b" / "demo" / "tagger" / "1.0.0" / "index.html").read_text()
    rows = re.findall(r"<tr>(.*?)</tr>", page.split('id="io-inputs"')[1].split("</table>")[0])
    cells = [c for c in (re.findall(r"<td>(.*?)</td>", r) for r in rows) if c]
    assert cells[0] == [
        "<code>x</code>", "<code>float32[N, 3]</code>", "0", "pt", "GeV", "(x - 20) × 0.01", "[20, 3000]"
    ]  # fmt: skip
    assert cells[1] == ["", "", "1", "eta", "", "x / 1.5", "[-2.5, 2.5]"]
    outputs = page.split('id="io-outputs"')[1].split("</table>")[0]
    assert "<td>b, light</td>" in outputs and "read from <code>model/model.onnx</code>" in page


def test_a_manifest_with_a_malformed_io_member_is_refused_at_open(
    tagger: hepbundle.Bundle,
) -> None:
    """Python refuses it at open, as the native library does (bundle-spec/io.md § 1)."""
    m = json.loads((tagger.root / "hepbundle.json").read_text())
    m["io"]["inputs"][0]["features"].pop()  # 2 features for a last axis of 3
    (tagger.root / "hepbundle.json").write_text(json.dumps(m))
    with pytest.raises(FormatError, match=r"hepbundle.json: io: inputs\[0\] \(x\): 2 features"):
        hepbundle.open(tagger.root, verify="integrity")
    res = CliRunner().invoke(main, ["show", str(tagger.root)])
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1, res.output
