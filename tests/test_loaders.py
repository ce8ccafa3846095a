"""Framework loaders (hepbundle.loaders, the hls4ml emulation in hepbundle.fpga.emulation): real onnxruntime sessions on verified files, clear errors for
missing extras, tampered models refused before the framework sees them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import hepbundle
from hepbundle.errors import IntegrityError, MissingExtraError
from hepbundle.fpga.emulation import hls4ml_model
from hepbundle.loaders import keras_model, onnx_session
from hepbundle.policy import TrustPolicy
from hepbundle.signing import KeySigner, generate_key, sign

sys.path.insert(0, str(Path(__file__).parents[1] / "tools"))
from make_examples import tiny_onnx

from .conftest import write_spec


@pytest.fixture
def onnx_bundle(tmp_path: Path) -> hepbundle.Bundle:
    d = tmp_path / "src"
    tiny_onnx(d / "model" / "model.onnx")
    write_spec(
        d,
        "name: demo/tagger\nversion: 1.0.0\nfiles:\n  - path: model/model.onnx\n    role: model\n",
    )
    b = hepbundle.build(d, tmp_path / "b")
    priv, _ = generate_key(tmp_path / "k.pem")
    sign(b.root, KeySigner(priv))
    return b


def _open(b: hepbundle.Bundle) -> hepbundle.Bundle:
    """Open ``b`` under a policy trusting the key the fixture signed it with."""
    policy = TrustPolicy.from_flags(keys=[b.root.parent / "k.pub.pem"])
    return hepbundle.open(b.root, policy=policy)


def test_onnx_session_runs_inference(onnx_bundle: hepbundle.Bundle) -> None:
    sess = onnx_session(_open(onnx_bundle))
    x = np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32)
    (probs,) = sess.run(None, {"x": x})
    assert probs.shape == (4, 5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_tampered_model_refused_before_loading(onnx_bundle: hepbundle.Bundle) -> None:
    b = _open(onnx_bundle)
    p = onnx_bundle.root / "model" / "model.onnx"
    data = bytearray(p.read_bytes())
    data[-5] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="model/model.onnx"):
        onnx_session(b)


@pytest.mark.parametrize(
    ("method", "module", "extra"),
    [
        (onnx_session, "onnxruntime", "onnx"),
        (keras_model, "tensorflow", "fpga"),
        (hls4ml_model, "hls4ml", "fpga"),
    ],
)
def test_missing_extra_named(
    onnx_bundle: hepbundle.Bundle,
    monkeypatch: pytest.MonkeyPatch,
    method: Callable[[hepbundle.Bundle], object],
    module: str,
    extra: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    # hepbundle is on no package index: the hint names the extra's own packages
    with pytest.raises(
        MissingExtraError, match=rf"pip install .*'{module}[^']*'.*hepbundle's '{extra}' extra"
    ) as e:
        method(_open(onnx_bundle))
    assert "hepbundle[" not in str(e.value)


@pytest.mark.slow
def test_no_model_of_that_kind(onnx_bundle: hepbundle.Bundle) -> None:
    with pytest.raises(hepbundle.HepbundleError, match=r"no \.keras/\.h5 model file"):
        keras_model(_open(onnx_bundle))


@pytest.mark.slow
def test_keras_model_round_trip(tmp_path: Path) -> None:
    import keras

    model = keras.Sequential(
        [keras.Input((16,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(5)]
    )
    d = tmp_path / "src"
    (d / "model").mkdir(parents=True)
    model.save(d / "model" / "tagger.keras")
    write_spec(
        d, "name: demo/k\nversion: 1.0.0\nfiles:\n  - path: model/tagger.keras\n    role: model\n"
    )
    b = hepbundle.open(hepbundle.build(d, tmp_path / "b").root, verify="integrity")
    x = np.ones((2, 16), dtype=np.float32)
    np.testing.assert_allclose(
        keras_model(b).predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )
