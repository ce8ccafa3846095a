"""Capture the software environment: a package lock, container image, platform, CUDA, frameworks.

The lock is either a file the spec names (pip requirements, pip-tools/uv output, conda explicit
or environment YAML), packed as given, or a ``pip freeze``-equivalent generated from
:mod:`importlib.metadata` for this interpreter (or a ``site_packages`` directory). Hashes in the
generated lock: an installed distribution no longer has its wheel, so each line carries the
SHA-256 of the distribution's ``RECORD`` (which itself lists a hash of every installed file: it
fingerprints exactly what is on disk), plus the archive hash pip recorded in ``direct_url.json``
(PEP 610) when the package came from a direct URL. Both are comments, so the file stays a
valid ``pip install -r`` input.

A lock an importer took from the legacy store (``imported``: an MLflow model's
``requirements.txt``, with its ``conda.yaml`` and ``python_env.yaml``) describes the training's
environment, not the machine running the migration: its record then holds what those files say
(Python version, conda channels and dependencies) and no host platform or CUDA at all.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import logging
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import settings
from ..digest import sha256_bytes
from ..errors import SpecError
from .datarefs import Where

__all__ = [
    "FRAMEWORKS",
    "LOCK_PATH",
    "capture_environment",
    "freeze",
    "host_platform",
    "imported_env_file",
    "nvidia_gpus",
]

log = logging.getLogger("hepbundle")

#: where the lock (generated or given) is packed in the bundle
LOCK_PATH = "provenance/environment.lock"

#: distributions whose versions are worth a line of their own in the manifest
FRAMEWORKS = (
    "torch",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "jax",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "scikit-learn",
    "xgboost",
    "lightgbm",
    "hls4ml",
    "numpy",
    "uproot",
    "awkward",
    "mlflow",
)

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def capture_environment(
    section: Mapping[str, Any], base: Path, where: Where
) -> tuple[dict[str, Any], bytes]:
    """The manifest's ``provenance.environment`` record and the lock file bytes to pack. An
    ``imported`` lock records no host facts (this host is not the training's)."""
    imported = section.get("imported")
    record: dict[str, Any] = {"imported": str(imported)} if imported else {"host": host_platform()}
    if "lock" in section:
        lock_path = (base / str(section["lock"])).resolve()
        try:
            lock = lock_path.read_bytes()
        except OSError as e:
            raise SpecError(
                f"{where('lock')}environment.lock: cannot read {lock_path}: {e.strerror}"
            ) from None
        fmt = _lock_format(lock_path.name, lock)
        versions = _versions_from_lock(lock.decode(errors="replace"), fmt)
        source = f"{imported}:{lock_path.name}" if imported else str(section["lock"])
        record["lock"] = {"source": source, "format": fmt}
    else:
        site = section.get("site_packages")
        paths = [str((base / str(site)).resolve())] if site else None
        if paths and not Path(paths[0]).is_dir():
            raise SpecError(
                f"{where('site_packages')}environment.site_packages: {paths[0]} is not a directory"
            )
        lock, versions = freeze(paths)
        if not site:
            log.warning(
                "environment lock captured from the interpreter running the build (%s, %d "
                "packages), which may not be the training's: name the training environment "
                "with environment.lock or environment.site_packages",
                sys.prefix,
                len(versions),
            )
        record["lock"] = {"source": "captured" if not site else f"captured: {site}"}
        record["lock"]["format"] = "pip-freeze"
    record["lock"].update(path=LOCK_PATH, sha256=sha256_bytes(lock), packages=len(versions))
    record["frameworks"] = {k: versions[k] for k in FRAMEWORKS if k in versions}
    if "container" in section:
        record["container"] = _container(section["container"], where)
    if imported:
        record.update(_imported_files(section, base, where))
    else:
        record["cuda"] = detect_cuda(versions)
    return record, lock


def _imported_files(section: Mapping[str, Any], base: Path, where: Where) -> dict[str, Any]:
    """``pythonEnv`` and ``conda`` records of an imported lock's companion files, and the
    training's ``python`` version they name (python_env.yaml's, which MLflow restores with,
    before conda.yaml's)."""
    out: dict[str, Any] = {}
    for key, name in (("python_env", "pythonEnv"), ("conda", "conda")):
        if key not in section:
            continue
        try:
            out[name] = imported_env_file((base / str(section[key])).resolve(), key)
        except SpecError as e:
            raise SpecError(f"{where(key)}environment.{key}: {e.message}") from None
        if out[name].get("python"):
            out.setdefault("python", out[name]["python"])
    return out


#: a conda dependency naming the Python version: ``python=3.11.7``, ``python==3.9``,
#: ``python=3.10.12=h955ad1f_0`` (a build string follows the second ``=``)
_CONDA_PYTHON = re.compile(r"^python\s*={1,2}\s*([0-9][0-9A-Za-z.*+]*)")
#: ``python: 3.10`` in a python_env.yaml, read from the text: YAML makes 3.10 the float 3.1
_ENV_PYTHON = re.compile(r"^python:\s*[\"']?([0-9][^\s\"'#]*)", re.MULTILINE)


def imported_env_file(path: Path, kind: str) -> dict[str, Any]:
    """What an MLflow ``conda.yaml`` (``kind`` ``conda``: name, channels, dependencies, the
    Python version among them) or ``python_env.yaml`` (``python_env``: Python version, build
    dependencies, dependencies) says, with the file's SHA-256, the values as written."""
    from .._yaml import parse_yaml, read_yaml_text
    from ..validity import plain_times

    what = "conda environment file" if kind == "conda" else "MLflow python_env.yaml"
    text = read_yaml_text(path, what=what)
    doc, _ = parse_yaml(text, str(path), aliases=False)
    if not isinstance(doc, dict):
        raise SpecError(f"{what} {path}: not a YAML mapping")
    doc = plain_times(doc)  # an unquoted date stays the text it was written as
    try:  # the record goes into the manifest: JSON values only (no set, bytes, NaN, int key)
        json.dumps(doc, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as e:
        raise SpecError(f"{what} {path}: holds a value a manifest cannot record ({e})") from None
    out: dict[str, Any] = {"sha256": sha256_bytes(text.encode())}
    deps = doc.get("dependencies") or []
    if not isinstance(deps, list):
        raise SpecError(f"{what} {path}: dependencies is not a list")
    if kind == "conda":
        channels = doc.get("channels") or []
        if not isinstance(channels, list):
            raise SpecError(f"{what} {path}: channels is not a list")
        if doc.get("name"):
            out["name"] = str(doc["name"])
        pins = (_CONDA_PYTHON.match(d.strip()) for d in deps if isinstance(d, str))
        python = next((m.group(1) for m in pins if m), None)
        out |= {"channels": [str(c) for c in channels], "dependencies": deps}
    else:
        m = _ENV_PYTHON.search(text)
        python = m.group(1) if m else None
        build = doc.get("build_dependencies") or []
        if not isinstance(build, list):
            raise SpecError(f"{what} {path}: build_dependencies is not a list")
        out |= {"buildDependencies": build, "dependencies": deps}
    if python:
        out["python"] = python
    return out


def host_platform() -> dict[str, Any]:
    """Python and operating system of the process capturing the environment."""
    libc, libc_version = platform.libc_ver()
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
    }
    if libc:
        out["libc"] = f"{libc} {libc_version}"
    return out


def freeze(paths: list[str] | None = None) -> tuple[bytes, dict[str, str]]:
    """A ``pip freeze``-equivalent lock of the distributions on ``paths`` (default: this
    interpreter's ``sys.path``), one ``name==version`` line each with hashes as comments."""
    seen: dict[str, tuple[str, list[str]]] = {}
    for dist in md.distributions(path=paths if paths is not None else sys.path):
        name = _normalise(dist.metadata["Name"] or "")
        if not name or name in seen:  # the first on the path wins, as for import
            continue
        notes = []
        record = dist.read_text("RECORD")
        if record is not None:
            notes.append(f"record-sha256:{sha256_bytes(record.encode())}")
        direct = _direct_url(dist)
        if direct:
            notes.append(direct)
        seen[name] = (dist.version, notes)
    lines = [
        "# hepbundle environment lock: pip freeze equivalent, generated from installed metadata",
        f"# python {platform.python_version()} on {platform.system()} {platform.machine()}",
    ]
    for name in sorted(seen):
        version, notes = seen[name]
        lines.append(f"{name}=={version}" + (f"  # {' '.join(notes)}" if notes else ""))
    return ("\n".join(lines) + "\n").encode(), {n: v for n, (v, _) in seen.items()}


def _direct_url(dist: md.Distribution) -> str | None:
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        return None
    hashes = (info.get("archive_info") or {}).get("hashes") or {}
    if "sha256" in hashes:
        return f"archive-sha256:{hashes['sha256']}"
    if "dir_info" in info:
        return "editable" if info["dir_info"].get("editable") else "local-directory"
    if "vcs_info" in info:
        vcs = info["vcs_info"]
        return f"{vcs.get('vcs', 'vcs')}:{info.get('url', '')}@{vcs.get('commit_id', '')}"
    return None


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock_format(filename: str, data: bytes) -> str:
    text = data[:4096].decode(errors="replace")
    if "@EXPLICIT" in text:
        return "conda-explicit"
    if filename.endswith((".yml", ".yaml")) and "dependencies:" in text:
        return "conda-environment"
    if filename == "uv.lock":
        return "uv-lock"
    if filename == "poetry.lock":
        return "poetry-lock"
    return "pip-requirements"


def _versions_from_lock(text: str, fmt: str) -> dict[str, str]:
    """Package versions named in a lock: ``name==1.2``, conda ``name=1.2=build`` or explicit
    URLs ``…/name-1.2-build.conda``; used for package counts and framework versions."""
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip().lstrip("- ").strip()
        if not line:
            continue
        if fmt == "conda-explicit":
            m = re.search(r"/([^/]+)-([^-/]+)-[^-/]+\.(?:conda|tar\.bz2)$", line)
        elif fmt == "conda-environment":
            m = re.match(r"^([A-Za-z0-9_.-]+)\s*==?\s*([^=\s]+)", line)
        else:
            m = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*===?\s*([^\s;\\]+)", line)
        if m:
            out.setdefault(_normalise(m.group(1)), m.group(2))
    return out


def _container(value: Any, where: Where) -> dict[str, str]:
    """``image[:tag][@sha256:…]`` or ``{image:, digest:}``; a digest must be ``sha256:<64 hex>``."""
    if isinstance(value, Mapping):
        image, digest = str(value["image"]), value.get("digest")
    else:
        image, _, digest = str(value).partition("@")
    out = {"image": image}
    if digest:
        if not _DIGEST.match(str(digest)):
            raise SpecError(
                f"{where('container')}environment.container: digest {digest!r} is not sha256:<64 hex digits>",
                hint="take it from: docker inspect --format '{{index .RepoDigests 0}}' IMAGE",
            )
        out["digest"] = str(digest)
    return out


def detect_cuda(versions: Mapping[str, str]) -> dict[str, Any]:
    """CUDA as far as this host shows it: container variable, toolkit, driver, pip runtime."""
    cuda = settings().cuda_version
    if cuda:
        return {"version": cuda, "source": "CUDA_VERSION"}
    vfile = Path("/usr/local/cuda/version.json")
    if vfile.is_file():
        try:
            ver = json.loads(vfile.read_text())["cuda"]["version"]
            return {"version": str(ver), "source": str(vfile)}
        except (OSError, ValueError, KeyError, TypeError):
            pass
    gpus = nvidia_gpus("name,driver_version")
    if gpus:
        return {"gpus": gpus, "source": "nvidia-smi"}
    runtime = [f"{k}=={v}" for k, v in sorted(versions.items()) if k.startswith("nvidia-cuda-")]
    if runtime:
        return {"packages": runtime, "source": "environment lock"}
    return {"available": False, "reason": "no CUDA toolkit, driver or CUDA runtime package found"}


def nvidia_gpus(fields: str = "name") -> list[str]:
    """One CSV line of ``fields`` per GPU that ``nvidia-smi`` lists; empty without a driver."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        p = subprocess.run(
            [smi, f"--query-gpu={fields}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=False,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []  # a hung or broken driver must not stop a build
    return p.stdout.strip().splitlines() if p.returncode == 0 else []
