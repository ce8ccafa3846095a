"""Framework loaders: turn a verified bundle file into an onnxruntime session or a Keras model
(the compiled hls4ml emulation lives beside its compiler, :func:`hepbundle.fpga.emulation.hls4ml_model`).
Each framework is imported only when asked for, with an error naming the extra to install when
it is missing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import HepbundleError, ModelIOError, NotInBundleError
from .extras import require
from .iosig import of as io_signature_of
from .iosig import tensor_problems
from .iosig.capture import keras_tensors, session_tensors

if TYPE_CHECKING:
    from .bundle import Bundle
    from .manifest import FileEntry

__all__ = ["check_io", "find_model_file", "keras_model", "onnx_session"]


def find_model_file(bundle: Bundle, suffixes: tuple[str, ...], relpath: str | None = None) -> str:
    """The bundle path of the model file to load: ``relpath`` if given, else the one file with
    one of ``suffixes`` of role ``model`` outside an FPGA project, else of role ``model``, else of
    any role."""
    if relpath is not None:
        return relpath
    fpga = bundle.manifest.meta.get("fpga")
    project = fpga.get("project") if isinstance(fpga, dict) else None

    def outside(path: str) -> bool:
        return not project or not path.startswith(f"{project}/")

    # the model itself first, not the copy of the source model inside an FPGA project
    passes: tuple[Callable[[FileEntry], bool], ...] = (
        lambda f: f.role == "model" and outside(f.path),
        lambda f: f.role == "model",
        lambda f: True,
    )
    for wanted in passes:
        found = [
            f.path for f in bundle.manifest.files if f.path.lower().endswith(suffixes) and wanted(f)
        ]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise NotInBundleError(
                f"{bundle.ref} has several {'/'.join(suffixes)} models: {', '.join(found)}",
                hint="name the one to load",
            )
    raise NotInBundleError(f"{bundle.ref} has no {'/'.join(suffixes)} model file", ref=bundle.ref)


def onnx_session(bundle: Bundle, relpath: str | None = None, **kwargs: Any) -> Any:
    """An ``onnxruntime.InferenceSession`` on the bundle's (verified) ONNX model, refused
    (:class:`~hepbundle.errors.ModelIOError`) when its inputs or outputs differ from the
    recorded I/O signature."""
    ort = require("onnxruntime")
    rel = find_model_file(bundle, (".onnx",), relpath)
    path = bundle.path(rel)
    kwargs.setdefault("providers", ["CPUExecutionProvider"])
    session = ort.InferenceSession(str(path), **kwargs)
    check_io(bundle, rel, session_tensors(session))
    return session


def check_io(bundle: Bundle, rel: str, tensors: tuple[Any, Any]) -> None:
    """Refuse a loaded model whose (inputs, outputs) differ from the I/O signature the manifest
    records for ``rel`` (:class:`ModelIOError`); nothing to check when it records none, or one
    of another file."""
    sig = io_signature_of(bundle.manifest.meta, source=f"{bundle.ref}: io")
    if sig is None or (sig.model is not None and sig.model != rel):
        return
    problems = tensor_problems(sig.inputs, tensors[0], "inputs")
    if sig.outputs:
        problems += tensor_problems(sig.outputs, tensors[1], "outputs")
    if problems:
        raise ModelIOError(
            f"{bundle.ref}: {rel} does not match its recorded I/O signature: {'; '.join(problems)}",
            hint="the bundle does not hold the model its manifest describes: rebuild it",
            ref=bundle.ref,
        )


def keras_model(bundle: Bundle, relpath: str | None = None, *, compile: bool = False) -> Any:
    """A Keras model loaded from the bundle's (verified) ``.keras``/``.h5`` file, refused
    (:class:`~hepbundle.errors.ModelIOError`) when its inputs or outputs differ from the
    recorded I/O signature."""
    require("tensorflow", "fpga")
    keras = require("keras", "fpga")
    rel = find_model_file(bundle, (".keras", ".h5"), relpath)
    path = bundle.path(rel)
    try:
        # safe mode, explicitly: a Lambda layer's Python code is never deserialised and run
        model = keras.models.load_model(str(path), compile=compile, safe_mode=True)
    except ValueError as e:
        if "safe_mode" not in str(e) and "arbitrary code" not in str(e):
            raise HepbundleError(f"{bundle.ref}: Keras cannot load {rel}: {e}") from None
        raise HepbundleError(
            f"{bundle.ref}: {rel} holds Python code (a Lambda layer or custom object), which "
            "Keras safe mode refuses to load",
            hint="rebuild the model without Lambda layers (use built-in or registered layers)",
        ) from None
    check_io(bundle, rel, keras_tensors(model))
    return model
