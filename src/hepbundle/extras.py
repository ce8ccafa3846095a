"""Optional dependencies in one place (in the spirit of uproot's ``extras.py``): which extra of
``hepbundle`` brings which module, and the one way to import it.

:func:`require` imports a module a feature cannot work without, or raises
:class:`~hepbundle.errors.MissingExtraError` naming the extra to install; :func:`optional`
imports a module a feature only uses when present (None otherwise). Every optional import in
hepbundle goes through one of the two, so a job that never asks for TensorFlow never imports it
and the error for a missing framework is the same everywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType

from .errors import MissingExtraError

__all__ = ["EXTRAS", "MODULE_EXTRA", "optional", "require"]

#: extra → what it brings (pyproject.toml's [project.optional-dependencies], kept in step by a test)
EXTRAS: Mapping[str, tuple[str, ...]] = {
    "onnx": ("onnx", "onnxruntime"),
    "root": ("uproot", "awkward"),
    "plot": ("matplotlib",),
    "fpga": ("hls4ml", "tensorflow-cpu", "hepbundle[plot]"),
    "mlflow": ("mlflow",),
    "data-services": ("rucio-clients", "xrootd", "fsspec-xrootd"),
}

#: top-level module → the extra that installs it
MODULE_EXTRA: Mapping[str, str] = {
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "uproot": "root",
    "awkward": "root",
    "matplotlib": "plot",
    "hls4ml": "fpga",
    "tensorflow": "fpga",
    "keras": "fpga",
    "mlflow": "mlflow",
    "rucio": "data-services",
    "XRootD": "data-services",
}

#: top-level module → the distribution to name when it is missing (when the names differ)
_PACKAGE: Mapping[str, str] = {"rucio": "rucio-clients", "XRootD": "xrootd"}


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` (dotted names allowed) or raise :class:`MissingExtraError` naming
    ``hepbundle[extra]`` (default: the extra :data:`MODULE_EXTRA` gives its top-level package)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".", 1)[0]
        raise MissingExtraError(_PACKAGE.get(top, top), extra or MODULE_EXTRA[top]) from None


def optional(module: str) -> ModuleType | None:
    """Import ``module`` if it is installed, else None (for features that degrade gracefully)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
