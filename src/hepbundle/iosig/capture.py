"""Reading an I/O signature out of a model, and completing it with the spec's ``io:`` section.

The model says names, dtypes and shapes (an ONNX graph, a Keras model, an onnxruntime session);
an hls4ml project says the fixed-point precision of its inputs and outputs; the spec says what
no model can (feature names, units, normalisation, ranges, classes). :func:`complete` merges
them and refuses a spec that contradicts the model, naming both.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BuildError, MissingExtraError
from ..extras import require
from ._signature import Dim, Feature, IOSignature, Tensor, dims_agree, format_shape

if TYPE_CHECKING:
    from ..spec import BundleSpec

log = logging.getLogger("hepbundle")

__all__ = [
    "MODEL_SUFFIXES",
    "capture_io",
    "complete",
    "hls4ml_precisions",
    "keras_tensors",
    "read_model",
    "session_tensors",
]

#: model files whose signature a build reads, by suffix → framework
MODEL_SUFFIXES = {".onnx": "onnx", ".keras": "keras", ".h5": "keras"}

#: onnxruntime's type strings → numpy names
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
    **{f"tensor({t})": t for t in ("int8", "int16", "int32", "int64")},
    **{f"tensor({t})": t for t in ("uint8", "uint16", "uint32", "uint64")},
}

Tensors = tuple[tuple[Tensor, ...], tuple[Tensor, ...]]


class Unreadable(BuildError):
    """The model file cannot be read by its framework (not a model, or a damaged one)."""


def read_model(path: Path) -> Tensors:
    """(inputs, outputs) of the ONNX or Keras model at ``path``; :class:`Unreadable` if its
    framework cannot read it, :class:`~hepbundle.errors.MissingExtraError` if the framework is
    not installed."""
    framework = MODEL_SUFFIXES[path.suffix.lower()]
    return _onnx_file(path) if framework == "onnx" else _keras_file(path)


def _onnx_file(path: Path) -> Tensors:
    onnx = require("onnx", "onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends: not an ONNX file
        raise Unreadable(f"{path.name} is not an ONNX model onnx can read: {e}") from None
    graph = model.graph
    if not graph.node and not graph.input and not graph.output:
        raise Unreadable(f"{path.name} holds no ONNX graph (is it an ONNX model?)")
    initialisers = {i.name for i in graph.initializer}

    def tensor(v: Any) -> Tensor:
        t = v.type.tensor_type
        try:
            dtype = str(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type))
        except (KeyError, ValueError, TypeError):
            raise Unreadable(f"{path.name}: {v.name} has an element type numpy lacks") from None
        dtype = {"object": "string", "<U0": "string"}.get(dtype, dtype)
        dims: list[Dim] = []
        for d in t.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or None)
        return Tensor(name=v.name, dtype=dtype, shape=tuple(dims))

    return (
        tuple(tensor(v) for v in graph.input if v.name not in initialisers),
        tuple(tensor(v) for v in graph.output),
    )


def _keras_file(path: Path) -> Tensors:
    require("tensorflow", "fpga")
    keras = require("keras", "fpga")
    try:
        model = keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as e:  # Keras raises ValueError, OSError, zipfile errors, …
        raise Unreadable(f"{path.name} is not a Keras model Keras can load: {e}") from None
    return keras_tensors(model)


def keras_tensors(model: Any) -> Tensors:
    """(inputs, outputs) of a loaded Keras model; the batch axis (``None``) is ``batch``."""

    def tensor(name: str, t: Any) -> Tensor:
        shape = tuple(t.shape)
        dims: tuple[Dim, ...] = tuple(
            ("batch" if i == 0 else None) if d is None else int(d) for i, d in enumerate(shape)
        )
        return Tensor(name=name, dtype=str(t.dtype), shape=dims)

    inputs = tuple(tensor(str(t.name), t) for t in model.inputs)
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(model.outputs):
        names = [model.layers[-1].name] if len(model.outputs) == 1 else []
        names += [str(t.name) for t in model.outputs[len(names) :]]
    return inputs, tuple(tensor(n, t) for n, t in zip(names, model.outputs, strict=True))


def session_tensors(session: Any) -> Tensors:
    """(inputs, outputs) of an ``onnxruntime.InferenceSession``."""

    def tensor(a: Any) -> Tensor:
        dims = tuple(d if isinstance(d, int) else (d or None) for d in a.shape)
        return Tensor(name=a.name, dtype=_ORT_TYPES.get(a.type, a.type), shape=dims)

    return (
        tuple(tensor(a) for a in session.get_inputs()),
        tuple(tensor(a) for a in session.get_outputs()),
    )


_TYPEDEF = re.compile(r"typedef\s+(.+?)\s+(\w+)\s*;")
_ARG = re.compile(r"(\w+(?:\s*<[^>]*>)?)\s+(\w+)\s*\[")


def hls4ml_precisions(project: Path, n_inputs: int) -> tuple[list[str], list[str]]:
    """The fixed-point types of the top function's inputs and outputs in the hls4ml project at
    ``project`` (``firmware/<name>.cpp`` through ``firmware/defines.h``), else ``input_t`` and
    ``result_t``, else the model's configured precision; empty lists when none is found."""
    import yaml

    try:
        cfg = yaml.safe_load((project / "hls4ml_config.yml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        cfg = {}
    name = str(cfg.get("ProjectName") or "myproject") if isinstance(cfg, dict) else "myproject"
    defines = _read(project / "firmware" / "defines.h")
    types = {m.group(2): m.group(1) for m in _TYPEDEF.finditer(defines)}
    top = re.search(
        rf"void\s+{re.escape(name)}\s*\(([^)]*)\)", _read(project / "firmware" / f"{name}.cpp")
    )
    if top:
        args = [types.get(m.group(1), m.group(1)) for m in _ARG.finditer(top.group(1))]
        if len(args) > n_inputs:
            return args[:n_inputs], args[n_inputs:]
    if "input_t" in types or "result_t" in types:
        return [types.get("input_t", "")] * n_inputs, [types.get("result_t", "")]
    model = ((cfg.get("HLSConfig") or {}).get("Model") or {}) if isinstance(cfg, dict) else {}
    precision = model.get("Precision")
    if isinstance(precision, dict):
        precision = precision.get("default")
    return ([str(precision)] * n_inputs, [str(precision)]) if precision else ([], [])


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def complete(
    section: Mapping[str, Any] | None,
    model: Tensors | None,
    *,
    model_path: str | None,
    framework: str | None,
    where: Callable[..., str],
    precisions: tuple[Sequence[str], Sequence[str]] = ((), ()),
) -> IOSignature:
    """The signature of ``model`` (what the model says) completed by the spec's ``io:``
    ``section``; :class:`BuildError` naming the spec's line and the model where they disagree.
    Without a model, the section alone must give every dtype and shape."""
    section = section or {}
    label = model_path or "the model"
    kinds = []
    for k, kind in enumerate(("inputs", "outputs")):
        given = list(section.get(kind) or [])
        said = model[k] if model is not None else None
        kinds.append(_merge(kind, given, said, label, where, list(precisions[k])))
    sig = IOSignature(
        inputs=kinds[0],
        outputs=kinds[1],
        model=model_path,
        framework=framework if model is not None else "spec",
    )
    problems = sig.problems()
    if problems:
        raise BuildError(f"{where('io')}io: {problems[0]}")
    if not sig.inputs:
        raise BuildError(f"{where('io')}io: no inputs (the model says none, nor does the spec)")
    return sig


def _merge(
    kind: str,
    given: list[Any],
    said: tuple[Tensor, ...] | None,
    label: str,
    where: Callable[..., str],
    precisions: list[str],
) -> tuple[Tensor, ...]:
    by_name: dict[str, tuple[int, Any]] = {}
    for i, g in enumerate(given):
        if str(g["name"]) in by_name:
            raise BuildError(
                f"{where('io', kind, i, 'name')}io.{kind}[{i}].name: {g['name']!r} is given twice"
            )
        by_name[str(g["name"])] = (i, g)
    if said is not None:
        names = [t.name for t in said]
        for name, (i, _) in by_name.items():
            if name not in names:
                raise BuildError(
                    f"{where('io', kind, i, 'name')}io.{kind}[{i}].name: {name!r} is not one of "
                    f"the {kind} of {label} (it has: {', '.join(names) or 'none'})"
                )
        base = list(said)
    else:
        for name, (i, g) in by_name.items():
            for key in ("dtype", "shape"):
                if key not in g:
                    raise BuildError(
                        f"{where('io', kind, i)}io.{kind}[{i}] ({name}): no {key}, and no model "
                        "hepbundle can read says it",
                        hint="give dtype and shape in the spec, or pack an ONNX or Keras model",
                    )
        base = [Tensor(str(g["name"]), str(g["dtype"]), tuple(g["shape"])) for g in given]
    out = []
    for j, t in enumerate(base):
        precision = precisions[j] if j < len(precisions) and precisions[j] else None
        entry = by_name.get(t.name)
        if entry is None:
            out.append(Tensor(t.name, t.dtype, t.shape, precision=precision))
            continue
        i, g = entry
        if said is not None:
            if "dtype" in g and g["dtype"] != t.dtype:
                raise BuildError(
                    f"{where('io', kind, i, 'dtype')}io.{kind}[{i}].dtype: the spec says "
                    f"{g['dtype']}, {label} says {t.dtype}"
                )
            shape = tuple(g.get("shape", t.shape))
            if len(shape) != len(t.shape) or not all(
                dims_agree(a, b) for a, b in zip(shape, t.shape, strict=True)
            ):
                raise BuildError(
                    f"{where('io', kind, i, 'shape')}io.{kind}[{i}].shape: the spec says "
                    f"{format_shape(shape)}, {label} says {format_shape(t.shape)}"
                )
            # the model's sizes, the spec's names for the symbols it gives
            dims = tuple(
                m if isinstance(m, int) or s is None else s
                for s, m in zip(shape, t.shape, strict=True)
            )
        else:
            dims = t.shape
        features = tuple(
            Feature(name=f) if isinstance(f, str) else Feature.from_json(f)
            for f in g.get("features") or ()
        )
        classes = tuple(g.get("classes") or ())
        for what, n in (("features", len(features)), ("classes", len(classes))):
            width = dims[-1] if dims else None
            if n and isinstance(width, int) and n != width:
                raise BuildError(
                    f"{where('io', kind, i, what)}io.{kind}[{i}].{what}: {n} {what}, but "
                    f"{label} says {t.name} has {width} ({t.dtype}{format_shape(dims)})"
                )
        out.append(
            Tensor(
                t.name,
                t.dtype,
                dims,
                description=g.get("description"),
                precision=precision,
                features=features,
                classes=classes,
            )
        )
    return tuple(out)


def capture_io(spec: BundleSpec, files: Mapping[str, tuple[Path, str]]) -> dict[str, Any] | None:
    """The manifest's ``io`` member for a build of ``spec`` packing ``files`` (bundle path →
    (source, role)): the model's signature completed by the spec's ``io:`` section. Without one, what a
    readable model says, or None (a warning when a model file cannot be read)."""
    section = spec.sections.get("io")
    chosen = _model_file(spec, section, files)
    if chosen is None:
        if section is None:
            return None
        tensors, framework = None, None
    else:
        try:
            tensors = read_model(files[chosen][0])
        except Unreadable as e:
            if section is not None:
                raise BuildError(f"{spec.where('io')}io: {e.message}") from None
            log.warning("no I/O signature recorded: %s", e.message)
            return None
        except MissingExtraError as e:
            if section is not None:
                raise BuildError(
                    f"{spec.where('io')}io: reading {chosen} needs {e.module}", hint=e.hint
                ) from None
            log.info("no I/O signature recorded: reading %s needs %s", chosen, e.module)
            return None
        framework = MODEL_SUFFIXES[Path(chosen).suffix.lower()]
    precisions: tuple[Sequence[str], Sequence[str]] = ((), ())
    fpga = spec.sections.get("fpga")
    if isinstance(fpga, Mapping) and fpga.get("toolchain") == "hls4ml" and fpga.get("project"):
        n_inputs = len(tensors[0]) if tensors else len((section or {}).get("inputs") or ())
        precisions = hls4ml_precisions(spec.base_dir / str(fpga["project"]), n_inputs)
    sig = complete(
        section,
        tensors,
        model_path=chosen,
        framework=framework,
        where=spec.where,
        precisions=precisions,
    )
    return sig.to_json()


def _model_file(
    spec: BundleSpec, section: Mapping[str, Any] | None, files: Mapping[str, tuple[Path, str]]
) -> str | None:
    """The packed model whose signature is read: the section's ``model``, else the one file of
    role ``model`` with a readable suffix."""
    named = (section or {}).get("model")
    if named is not None:
        if named not in files:
            raise BuildError(
                f"{spec.where('io', 'model')}io.model: {named!r} is not a file of this bundle",
                hint=_did_you_mean(str(named), list(files)),
            )
        if Path(named).suffix.lower() not in MODEL_SUFFIXES:
            return None  # a framework hepbundle does not read: the spec says everything
        return str(named)
    found = [
        d
        for d, (_, role) in files.items()
        if role == "model" and Path(d).suffix.lower() in MODEL_SUFFIXES
    ]
    if len(found) > 1:
        if section is not None:
            raise BuildError(
                f"{spec.where('io')}io: several models ({', '.join(found)}): say which one the "
                "signature describes with 'model:'"
            )
        log.info("no I/O signature recorded: several models (%s)", ", ".join(found))
        return None
    return found[0] if found else None


def _did_you_mean(word: str, options: list[str]) -> str | None:
    close = difflib.get_close_matches(word, options, n=1)
    return f"did you mean {close[0]!r}?" if close else None
