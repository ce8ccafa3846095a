"""The model's I/O signature: what a bundle's model takes and returns (bundle-spec/io.md).

The manifest's ``io`` section records each input and output tensor (name, dtype, shape with a
symbolic batch dimension, the firmware's fixed-point precision), the features along the last
axis of an input (name, unit, normalisation, allowed range) and the classes of an output. A
build captures it from the model (:mod:`hepbundle.iosig.capture`: the ONNX graph, the Keras
model, the hls4ml project), completed by the spec's ``io:`` section; the loaders refuse a model
whose real inputs differ from it; a job reads its batches against it::

    b = hepbundle.resolve("demo/jet-tagger@prod")
    b.io.check({"jets": x}).raise_for_problems()   # names, dtypes, shapes, ranges
    probs = session.run(None, b.io.normalise({"pt": pt, "eta": eta, ...}))
"""

from __future__ import annotations

from typing import Any

from ._batch import IOReport, check, normalise
from ._signature import (
    DTYPES,
    Dim,
    Feature,
    IOSignature,
    Normalisation,
    Tensor,
    dims_agree,
    format_shape,
    tensor_problems,
)

__all__ = [
    "DTYPES",
    "Dim",
    "Feature",
    "IOReport",
    "IOSignature",
    "Normalisation",
    "Tensor",
    "check",
    "dims_agree",
    "format_shape",
    "normalise",
    "of",
    "tensor_problems",
]


def of(meta: Any, *, source: str = "io", schema_checked: bool = False) -> IOSignature | None:
    """The signature in a manifest's metadata (``Manifest.meta``), or None when it records
    none; :class:`~hepbundle.errors.FormatError` when it breaks bundle-spec/io.md."""
    section = meta.get("io") if hasattr(meta, "get") else None
    if section is None:
        return None
    return IOSignature.from_json(section, source=source, schema_checked=schema_checked)
