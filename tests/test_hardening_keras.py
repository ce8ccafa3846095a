"""A Keras model with a Lambda layer (Python code) in a bundle: loaded in safe mode, explicitly,
and the refusal is one clear error, not Keras's ValueError traceback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.loaders import keras_model

from .conftest import write_spec

pytestmark = pytest.mark.slow  # TensorFlow import


def test_lambda_layer_refused_cleanly(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    src = tmp_path / "src"
    src.mkdir()
    m = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])
    m.save(src / "model.keras")
    write_spec(
        src,
        """
        name: atlas/lambda
        version: 1.0.0
        summary: x
        framework: keras
        files:
          - path: model.keras
            role: model
        """,
    )
    b = hepbundle.build(src, tmp_path / "out")
    with pytest.raises(hepbundle.HepbundleError, match="Keras safe mode refuses"):
        keras_model(hepbundle.open(b.root, verify="integrity"))
    np.savez(tmp_path / "d.npz", x=np.ones((4, 3), dtype=np.float32), y=np.ones(4))
    args = ["eval", str(b.root), "--data", str(tmp_path / "d.npz"), "--labels", "y"]
    res = CliRunner().invoke(
        main, [*args, "--runner", "keras", "--metric", "mse", "--integrity-only"]
    )
    assert res.exit_code == 2, res.output
    assert "safe mode refuses" in res.output and "Traceback" not in res.output
