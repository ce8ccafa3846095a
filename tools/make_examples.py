"""Regenerate the small real model files used by bundle-spec/examples (run from the repo root).

    python tools/make_examples.py

The ONNX model is a genuine 16→5 dense + softmax graph (a toy jet tagger) with fixed weights,
so its bytes are reproducible and it runs in onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_onnx(path: Path, n_in: int = 16, n_out: int = 5, seed: int = 7) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(size=(n_in, n_out)).astype(np.float32), "W")
    b = numpy_helper.from_array(np.zeros(n_out, dtype=np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "W", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "jet_tagger",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", n_out])],
        initializer=[w, b],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="hepbundle"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1] / "bundle-spec" / "examples"
    tiny_onnx(root / "onnx-minimal" / "model" / "model.onnx")
    tiny_onnx(root / "firmware" / "model" / "model.onnx")
    print("wrote example models under", root)
