"""Bit-accurate C++ emulation of a packed hls4ml project: copy, compile with g++, call via ctypes.

The project's own ``build_lib.sh`` (written by hls4ml for its backend and version) compiles the
firmware C++ with the ``ap_fixed`` types into a shared library; its ``<project>_bridge.cpp``
exports ``<project>_float``/``<project>_double`` that take flat input arrays and fill flat output
arrays, one sample per call. This module needs neither hls4ml nor TensorFlow at run time.

A bundle on CVMFS is read-only, and a verified bundle must stay byte-identical, so the project
is always copied into a build directory (by default a cache directory keyed by the content
digest) and compiled there; a finished build is marked with a stamp file and reused.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import posixpath
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.ctypeslib as npc

from ..errors import HepbundleError, ToolError
from ..loaders import require
from ._files import hls4ml_project_name, tree_digest

if TYPE_CHECKING:
    from ..bundle import Bundle

__all__ = ["Emulation", "cache_root", "hls4ml_model", "hls4ml_project_dir", "load_emulation"]

_HLS4ML_CONFIG = "hls4ml_config.yml"

_STAMP = ".hepbundle-emulation-built"
_PARTIAL = ".hepbundle-emulation-partial"
_SIGNATURE = re.compile(r"void\s+(\w+)_float\s*\(([^)]*)\)", re.S)
_CONVERT = re.compile(r"convert_data<\s*float\s*,\s*(\w+)\s*,\s*([^>]+?)>\s*\(\s*(\w+)\s*,")
_CONVERT_OUT = re.compile(
    r"convert_data<\s*(\w+)\s*,\s*float\s*,\s*([^>]+?)>\s*\(\s*\w+\s*,\s*(\w+)\s*\)"
)
_TYPEDEF = re.compile(r"typedef\s+(.+?)\s+(\w+);")


def cache_root() -> Path:
    """``$HEPBUNDLE_CACHE`` or ``$XDG_CACHE_HOME/hepbundle`` (``~/.cache/hepbundle``)."""
    env = os.environ.get("HEPBUNDLE_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "hepbundle"


@dataclass(frozen=True)
class _Port:
    name: str
    size: int
    #: the firmware type of the port, e.g. ``ap_fixed<18,8>`` (None when not resolvable)
    type: str | None = None


class Emulation:
    """A compiled hls4ml emulation library: ``predict(x)`` runs every sample through the
    fixed-point C++ exactly as the firmware computes it (up to the float conversion at the I/O)."""

    def __init__(self, library: Path, project: str, inputs: list[_Port], outputs: list[_Port]):
        self.library = library
        self.project = project
        self.inputs = inputs
        self.outputs = outputs
        self._lib = ctypes.CDLL(str(library), mode=ctypes.RTLD_LOCAL)

    def __repr__(self) -> str:
        ins = ", ".join(f"{p.name}[{p.size}]" for p in self.inputs)
        outs = ", ".join(f"{p.name}[{p.size}]" for p in self.outputs)
        return f"<Emulation {self.project}({ins}) -> ({outs}) from {self.library}>"

    def predict(self, x: np.ndarray | Sequence[np.ndarray]) -> np.ndarray | list[np.ndarray]:
        """Outputs for a batch: one array ``(n, out_size)`` per output (a bare array when the
        model has one output). Inputs are flattened per sample; float64 input runs the
        ``_double`` bridge, anything else is converted to float32."""
        xs = [x] if isinstance(x, np.ndarray) else list(x)
        if len(xs) != len(self.inputs):
            raise ToolError(
                f"{self.project} takes {len(self.inputs)} input(s), got {len(xs)}",
                hint="pass one array per model input, in the order of the firmware ports",
            )
        dtype = np.float64 if all(a.dtype == np.float64 for a in xs) else np.float32
        flat = [self._flatten(a, port, dtype) for a, port in zip(xs, self.inputs, strict=True)]
        n = flat[0].shape[0]
        if any(f.shape[0] != n for f in flat):
            raise ToolError(f"{self.project}: inputs have different numbers of samples")
        suffix, ctype = (
            ("_double", ctypes.c_double) if dtype == np.float64 else ("_float", ctypes.c_float)
        )
        fn = getattr(self._lib, self.project + suffix)
        fn.restype = None
        fn.argtypes = [
            npc.ndpointer(ctype, flags="C_CONTIGUOUS")
            for _ in range(len(self.inputs) + len(self.outputs))
        ]
        outs = [np.zeros((n, p.size), dtype=dtype) for p in self.outputs]
        for i in range(n):
            # one call per sample: the bridge converts one sample to ap_fixed and back
            fn(*(f[i] for f in flat), *(o[i] for o in outs))
        return outs[0] if len(outs) == 1 else outs

    def _flatten(self, a: np.ndarray, port: _Port, dtype: type[np.floating]) -> np.ndarray:
        a = np.asarray(a, dtype=dtype)
        if a.size % port.size:
            raise ToolError(
                f"{self.project}: input {port.name} has {a.size} values, not a multiple of "
                f"the port size {port.size}",
                hint="give an array of shape (n_samples, ...) matching the model input",
            )
        return np.ascontiguousarray(a.reshape(-1, port.size))


def load_emulation(
    project_dir: Path, *, build_dir: Path | None = None, cache_key: str | None = None
) -> Emulation:
    """Compile (once) and load the bit-accurate emulation of the hls4ml project ``project_dir``.

    ``project_dir`` is never written. The build happens in ``build_dir``, or in
    ``cache_root()/fpga-emulation/<key>`` where ``key`` is ``cache_key`` (callers pass the
    bundle's manifest digest) or the digest of the project tree. Needs ``g++`` and ``bash``.
    """
    project_dir = Path(project_dir)
    name = hls4ml_project_name(project_dir)
    bridge = project_dir / f"{name}_bridge.cpp"
    if not bridge.is_file():
        raise ToolError(
            f"{project_dir} has no {bridge.name}: not a written hls4ml project",
            hint="write the project with hls4ml (hls_model.write()) before packing it",
        )
    defines = project_dir / "firmware" / "defines.h"
    typedefs = (
        _typedefs(defines.read_text(encoding="utf-8", errors="replace"))
        if defines.is_file()
        else {}
    )
    inputs, outputs = _ports(bridge.read_text(encoding="utf-8", errors="replace"), name, typedefs)
    key = cache_key or tree_digest(project_dir)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", key)[:128]
    build_dir = Path(build_dir) if build_dir else cache_root() / "fpga-emulation" / safe
    if _stamp(build_dir) != key:
        _compile(project_dir, build_dir, key)
    if not (build_dir / "firmware" / "weights").is_dir():
        # the library would exit() the process when it cannot read its weights
        raise ToolError(f"{build_dir} lost firmware/weights; delete it to rebuild the emulation")
    libs = sorted((build_dir / "firmware").glob(f"{name}*.so"))
    if not libs:
        raise ToolError(f"compiling {project_dir} produced no firmware/{name}-*.so")
    return Emulation(libs[-1], name, inputs, outputs)


def _typedefs(text: str) -> dict[str, str]:
    return {m.group(2): m.group(1) for m in _TYPEDEF.finditer(text)}


def _ports(bridge: str, name: str, typedefs: dict[str, str]) -> tuple[list[_Port], list[_Port]]:
    """Input and output ports (argument order, flat sizes) of ``<name>_float``."""
    sig = next((m for m in _SIGNATURE.finditer(bridge) if m.group(1) == name), None)
    if sig is None:
        raise ToolError(f"{name}_bridge.cpp has no {name}_float(...) function")
    args = [a.strip().split("*")[-1].strip() for a in sig.group(2).split(",") if a.strip()]
    body = bridge[sig.end() : sig.end() + 20000]
    ins = {m.group(3): (m.group(1), m.group(2)) for m in _CONVERT.finditer(body)}
    outs = {m.group(3): (m.group(1), m.group(2)) for m in _CONVERT_OUT.finditer(body)}
    inputs: list[_Port] = []
    outputs: list[_Port] = []
    for arg in args:
        for table, ports in ((ins, inputs), (outs, outputs)):
            if arg in table:
                tname, size = table[arg]
                ports.append(_Port(arg, _size(size, name), typedefs.get(tname)))
    if not inputs or not outputs or len(inputs) + len(outputs) != len(args):
        raise ToolError(f"cannot read the ports of {name}_float in {name}_bridge.cpp")
    return inputs, outputs


def _size(expr: str, name: str) -> int:
    # sizes are integer literals or products of them (N_IN*N_CHAN is written out by hls4ml)
    try:
        return int(np.prod([int(t) for t in expr.replace(" ", "").split("*")]))
    except ValueError:
        raise ToolError(f"{name}_bridge.cpp: unsupported port size expression {expr!r}") from None


def _stamp(build_dir: Path) -> str | None:
    """The key of the complete build in ``build_dir``, if there is one."""
    try:
        return (build_dir / _STAMP).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _compile(project_dir: Path, build_dir: Path, key: str) -> None:
    for tool in ("g++", "bash"):
        if shutil.which(tool) is None:
            raise ToolError(
                f"{tool} is not on PATH: cannot compile the hls4ml emulation",
                hint="install a C++ compiler (e.g. apt-get install g++)",
            )
    if not (project_dir / "build_lib.sh").is_file():
        raise ToolError(f"{project_dir} has no build_lib.sh; cannot compile the emulation")
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    # The library reads its weights at run time from the absolute directory it was compiled
    # in (WEIGHTS_DIR), so it must be built at its final place; a lock file serialises
    # concurrent jobs, and the stamp, written last, marks a complete build.
    with open(build_dir.parent / f".{build_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamp(build_dir) == key:
            return  # another job built it while we waited
        if build_dir.exists():
            ours = (build_dir / _PARTIAL).is_file() or _stamp(build_dir) is not None
            if any(build_dir.iterdir()) and not ours:
                raise ToolError(
                    f"build directory {build_dir} is not empty",
                    hint="give a new or empty --build-dir",
                )
            shutil.rmtree(build_dir)
        build_dir.mkdir()
        (build_dir / _PARTIAL).touch()
        _copy_writable(project_dir, build_dir)
        proc = subprocess.run(
            ["bash", "build_lib.sh"], cwd=build_dir, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ToolError(
                f"g++ failed to compile the emulation of {project_dir}: {' | '.join(tail)}"
            )
        (build_dir / _PARTIAL).unlink()
        (build_dir / _STAMP).write_text(f"{key}\n", encoding="utf-8")


def _copy_writable(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.so", "*.o"), dirs_exist_ok=True)
    for p in [dst, *dst.rglob("*")]:
        # copies of a read-only (CVMFS) tree are read-only too; the build writes next to them
        p.chmod(p.stat().st_mode | 0o200 | (0o100 if p.is_dir() else 0))


def hls4ml_project_dir(bundle: Bundle, project: str | None = None) -> str:
    """Bundle-relative directory of the packed hls4ml project (holding ``hls4ml_config.yml``)."""
    if project is not None:
        return project.rstrip("/")
    dirs = sorted(
        posixpath.dirname(f.path)
        for f in bundle.manifest.files
        if posixpath.basename(f.path) == _HLS4ML_CONFIG
    )
    if len(dirs) != 1:
        what = "no" if not dirs else "several"
        raise HepbundleError(
            f"{bundle.ref} has {what} hls4ml project ({_HLS4ML_CONFIG})"
            + (f": {', '.join(dirs)}" if dirs else "")
        )
    return dirs[0]


def hls4ml_model(bundle: Bundle, project: str | None = None, **kwargs: Any) -> Any:
    """The compiled bit-accurate C++ emulation of the bundle's packed hls4ml project.

    Every file of the project is verified first; compilation happens in a build directory outside
    the bundle (bundles on CVMFS are read-only)."""
    require("hls4ml", "fpga")
    prefix = hls4ml_project_dir(bundle, project)
    files = [
        f.path for f in bundle.manifest.files if prefix == "" or f.path.startswith(prefix + "/")
    ]
    bundle.verify(files).raise_for_problems(bundle.ref)
    kwargs.setdefault("cache_key", f"{bundle.manifest_digest}-{prefix.replace('/', '_')}")
    return load_emulation(bundle.root / prefix, **kwargs)
