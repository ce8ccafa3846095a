"""Bit-accurate C++ emulation of a packed hls4ml project: copy, compile with g++, call via ctypes.

The project's own ``build_lib.sh`` (written by hls4ml for its backend and version) compiles the
firmware C++ with the ``ap_fixed`` types into a shared library; its ``<project>_bridge.cpp``
exports ``<project>_float``/``<project>_double`` that take flat input arrays and fill flat output
arrays, one sample per call. This module needs neither hls4ml nor TensorFlow at run time.

A bundle on CVMFS is read-only, and a verified bundle must stay byte-identical, so the project
is always copied into a build directory and compiled there. Only the files the caller lists (for
a bundle: the signed manifest's entries) are copied, each verified as it is copied, so nothing
the manifest does not cover is ever compiled. The default build directory is a private (``0700``,
owner-checked) cache entry keyed by the content; a finished build records the digest of its
library, and a cached build is re-verified before it is loaded again.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import logging
import os
import posixpath
import re
import shutil
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.ctypeslib as npc

from ..config import cache_dir
from ..digest import copy_and_hash, hash_file, sha256_bytes
from ..errors import IntegrityError, NotInBundleError, ToolError, VerificationError
from ..extras import require
from ..paths import check_relpath
from ..regular import open_regular
from ._files import hls4ml_project_name, walk

if TYPE_CHECKING:
    from ..bundle import Bundle

__all__ = [
    "Emulation",
    "SourceFile",
    "cache_root",
    "hls4ml_model",
    "hls4ml_project_dir",
    "load_emulation",
]

log = logging.getLogger("hepbundle")

_HLS4ML_CONFIG = "hls4ml_config.yml"

_STAMP = ".hepbundle-emulation-built"
_PARTIAL = ".hepbundle-emulation-partial"
_SIGNATURE = re.compile(r"void\s+(\w+)_float\s*\(([^)]*)\)", re.S)
_CONVERT = re.compile(r"convert_data<\s*float\s*,\s*(\w+)\s*,\s*([^>]+?)>\s*\(\s*(\w+)\s*,")
_CONVERT_OUT = re.compile(
    r"convert_data<\s*(\w+)\s*,\s*float\s*,\s*([^>]+?)>\s*\(\s*\w+\s*,\s*(\w+)\s*\)"
)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_TYPEDEF = re.compile(r"typedef\s+(.+?)\s+(\w+);")


def cache_root() -> Path:
    """hepbundle's cache root, :func:`hepbundle.config.cache_dir` (``$HEPBUNDLE_CACHE_DIR``, the
    deprecated ``$HEPBUNDLE_CACHE``, else ``$XDG_CACHE_HOME/hepbundle``)."""
    return cache_dir()


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


@dataclass(frozen=True)
class SourceFile:
    """One file of the project to compile: its path relative to the project and the size and
    digest (in ``algorithm``) it must have (a bundle's manifest entry)."""

    path: str
    size: int
    digest: str
    algorithm: str = "sha256"

    @property
    def key(self) -> str:
        """The digest as the content key names it (bare for SHA-256, as before agility)."""
        return self.digest if self.algorithm == "sha256" else f"{self.algorithm}:{self.digest}"


def load_emulation(
    project_dir: Path,
    *,
    files: Sequence[SourceFile] | None = None,
    build_dir: Path | None = None,
) -> Emulation:
    """Compile (once) and load the bit-accurate emulation of the hls4ml project ``project_dir``.

    ``project_dir`` is never written. Exactly ``files`` (for a bundle: the manifest's files of the
    project) are copied into a private build directory, each hashed as it is copied and refused
    when it differs from its entry, and compiled there: a file lying next to them that they do not
    list (an added ``firmware/ap_fixed.h``…) is never seen by the compiler. Without ``files``
    (a project directory you wrote yourself) every project file is taken as it is.

    The build happens in ``build_dir`` or in ``cache_root()/fpga-emulation/<key>``, ``key`` being
    the SHA-256 over the project name and every copied file's path and digest. The cache and the
    build directory must be owned by the user and not writable by anyone else; a cached build is
    used only after every source file and the library itself hash to what was recorded when it
    was built (else it is rebuilt). Needs ``g++`` and ``bash``.
    """
    project_dir = Path(project_dir)
    name = hls4ml_project_name(project_dir)
    if not _IDENTIFIER.fullmatch(name):
        raise ToolError(f"{project_dir}: ProjectName {name[:80]!r} is not a C identifier")
    sources = list(files) if files is not None else _tree_sources(project_dir)
    for f in sources:
        check_relpath(f.path)
    if f"{name}_bridge.cpp" not in {f.path for f in sources}:
        raise ToolError(
            f"{project_dir} has no {name}_bridge.cpp: not a written hls4ml project",
            hint="write the project with hls4ml (hls_model.write()) before packing it",
        )
    key = _content_key(name, sources)
    if build_dir is None:
        build_dir = _private_dir(cache_root() / "fpga-emulation") / key
    else:
        build_dir = Path(build_dir).absolute()
        build_dir.parent.mkdir(parents=True, exist_ok=True)
        _check_not_shared(build_dir.parent)
    library = _reuse(build_dir, key, sources)
    if library is None:
        library = _compile(project_dir, build_dir, key, sources)
    defines = build_dir / "firmware" / "defines.h"
    typedefs = _typedefs(_read_text(defines)) if defines.is_file() else {}
    inputs, outputs = _ports(_read_text(build_dir / f"{name}_bridge.cpp"), name, typedefs)
    return Emulation(library, name, inputs, outputs)


def _read_text(path: Path) -> str:
    with open_regular(path) as f:
        return f.read().decode("utf-8", errors="replace")


def _tree_sources(project_dir: Path) -> list[SourceFile]:
    out = []
    for p, rel in walk(project_dir):
        d = hash_file(p)
        out.append(SourceFile(rel, d.size, d.digest))
    return out


def _content_key(name: str, sources: Sequence[SourceFile]) -> str:
    lines = [f"hls4ml-emulation-v2\0{name}\n"]
    lines += [f"{f.path}\0{f.size}\0{f.key}\n" for f in sorted(sources, key=lambda f: f.path)]
    return sha256_bytes("".join(lines).encode())


def _private_dir(path: Path) -> Path:
    """``path``, created ``0700`` if absent, after checking it is ours and private."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise ToolError(f"emulation cache {path} is not a directory")
    if st.st_uid != os.getuid():
        raise ToolError(
            f"emulation cache {path} belongs to uid {st.st_uid}, not to you: refusing to run "
            "libraries another user could have built",
            hint="set HEPBUNDLE_CACHE to a directory of your own",
        )
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)  # ours: make it private before trusting anything in it
    _check_not_shared(path.parent)
    return path


def _check_not_shared(path: Path) -> None:
    """Refuse a directory in which other users could replace entries (writable by group or
    others without the sticky bit): the build directory placed in it could be swapped."""
    st = path.stat()
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise ToolError(
            f"{path} is writable by other users: an emulation built there could be replaced",
            hint="use a private directory (chmod go-w, or another --build-dir / HEPBUNDLE_CACHE)",
        )


def _owned_private(path: Path) -> bool:
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077


def _reuse(build_dir: Path, key: str, sources: Sequence[SourceFile]) -> Path | None:
    """The library of a complete build of ``key`` in ``build_dir`` whose every source file and
    library still hash to what was recorded; None (rebuild) otherwise."""
    stamp = _stamp(build_dir)
    if stamp is None or stamp.get("key") != key or not _owned_private(build_dir):
        return None
    lib_name = str(stamp.get("library", ""))
    if not lib_name.endswith(".so") or "/" in lib_name or lib_name.startswith("."):
        return None
    library = build_dir / "firmware" / lib_name
    expected = [(f.path, f.algorithm, f.digest) for f in sources] + [
        (f"firmware/{lib_name}", "sha256", str(stamp.get("librarySha256")))
    ]
    for rel, alg, want in expected:
        try:
            if hash_file(build_dir / rel, alg).digest != want:
                raise OSError(f"{rel} changed")
        except OSError as e:
            log.warning("emulation cache %s no longer matches (%s): rebuilding", build_dir, e)
            return None
    return library


def _stamp(build_dir: Path) -> dict[str, object] | None:
    """The record of the complete build in ``build_dir``, if there is one."""
    try:
        with open_regular(build_dir / _STAMP, follow_symlinks=False) as f:
            data = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _compile(project_dir: Path, build_dir: Path, key: str, sources: Sequence[SourceFile]) -> Path:
    for tool in ("g++", "bash"):
        if shutil.which(tool) is None:
            raise ToolError(
                f"{tool} is not on PATH: cannot compile the hls4ml emulation",
                hint="install a C++ compiler (e.g. apt-get install g++)",
            )
    if "build_lib.sh" not in {f.path for f in sources}:
        raise ToolError(f"{project_dir} has no build_lib.sh; cannot compile the emulation")
    # The library reads its weights at run time from the absolute directory it was compiled
    # in (WEIGHTS_DIR), so it must be built at its final place; a lock file serialises
    # concurrent jobs, and the stamp, written last, marks a complete build.
    lock_path = build_dir.parent / f".{build_dir.name}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        library = _reuse(build_dir, key, sources)
        if library is not None:
            return library  # another job built it while we waited
        if build_dir.is_symlink():
            build_dir.unlink()
        elif build_dir.exists():
            ours = (build_dir / _PARTIAL).is_file() or _stamp(build_dir) is not None
            if any(build_dir.iterdir()) and not ours:
                raise ToolError(
                    f"build directory {build_dir} is not empty",
                    hint="give a new or empty --build-dir",
                )
            shutil.rmtree(build_dir)
        build_dir.mkdir(mode=0o700)
        (build_dir / _PARTIAL).touch()
        _copy_verified(project_dir, build_dir, sources)
        proc = subprocess.run(
            ["bash", "build_lib.sh"], cwd=build_dir, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ToolError(
                f"g++ failed to compile the emulation of {project_dir}: {' | '.join(tail)}"[:2000]
            )
        name = hls4ml_project_name(build_dir)
        libs = sorted((build_dir / "firmware").glob(f"{name}*.so"))
        if not libs:
            raise ToolError(f"compiling {project_dir} produced no firmware/{name}-*.so")
        record = {
            "key": key,
            "library": libs[-1].name,
            "librarySha256": hash_file(libs[-1]).sha256,
        }
        (build_dir / _PARTIAL).unlink()
        (build_dir / _STAMP).write_text(json.dumps(record) + "\n", encoding="utf-8")
        return libs[-1]


def _copy_verified(src: Path, dst: Path, sources: Sequence[SourceFile]) -> None:
    """Copy exactly ``sources`` from ``src`` to ``dst``, refusing any file whose bytes as copied
    differ from its entry (the copy, not the original, is what gets compiled)."""
    for f in sources:
        target = dst / f.path
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            got = copy_and_hash(src / f.path, target, f.algorithm)
        except OSError as e:
            raise IntegrityError(f"cannot copy {f.path} of {src}: {e.strerror or e}") from None
        if (got.size, got.digest) != (f.size, f.digest):
            raise IntegrityError(
                f"{src}: {f.path} does not match its manifest entry; not compiling it",
                hint="verify the bundle (hepbundle verify) and use an intact copy",
            )
        # copies of a read-only (CVMFS) tree are read-only too; the build writes next to them
        target.chmod(0o700 if f.path.endswith(".sh") else 0o600)


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
        raise NotInBundleError(
            f"{bundle.ref} has {what} hls4ml project ({_HLS4ML_CONFIG})"
            + (f": {', '.join(dirs)}" if dirs else "")
        )
    return dirs[0]


def hls4ml_model(
    bundle: Bundle, project: str | None = None, *, allow_unsigned: bool = False, **kwargs: Any
) -> Any:
    """The compiled bit-accurate C++ emulation of the bundle's packed hls4ml project.

    Compiling runs the project's ``build_lib.sh`` and loads the C++ it builds into this process:
    code from the bundle. So the bundle's signatures must have been checked under a trust policy
    (``hepbundle.open(path, policy=…)`` or ``HEPBUNDLE_POLICY``) unless ``allow_unsigned`` (a
    bundle you built yourself). Exactly the manifest's files of the project are copied, each
    verified as it is copied, into a private build directory outside the bundle (bundles on
    CVMFS are read-only) and compiled there; files the manifest does not list are never used."""
    require("hls4ml")
    if bundle.signature is None and not allow_unsigned:
        raise VerificationError(
            f"{bundle.ref}: its signatures were not checked, so its firmware code is not "
            "compiled or run",
            hint="give a trust policy (--policy, --trust-key or HEPBUNDLE_POLICY), or "
            "--allow-unsigned for a bundle you built yourself",
        )
    prefix = hls4ml_project_dir(bundle, project)
    strip = len(prefix) + 1 if prefix else 0
    files = [
        SourceFile(f.path[strip:], f.size, f.digest, f.algorithm)
        for f in bundle.manifest.files
        if prefix == "" or f.path.startswith(prefix + "/")
    ]
    return load_emulation(bundle.root / prefix, files=files, **kwargs)
