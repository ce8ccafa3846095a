"""File-level helpers shared by the FPGA toolchain readers: walk, classify, digest, read configs.

Every reader returns the same :class:`FpgaCapture`: the manifest ``fpga`` section and the files to
pack (bundle path → (bytes, role)). Roles follow the bundle roles: ``bitstream`` for loadable
images, ``report`` for tool reports, ``model`` for source models, ``weights``, ``data`` for test
vectors, ``firmware`` for everything else of a project.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..digest import hash_file, sha256_bytes
from ..errors import ToolError
from ..paths import check_relpath

__all__ = [
    "BITSTREAM_SUFFIXES",
    "FpgaCapture",
    "compact",
    "hls4ml_config",
    "hls4ml_project_name",
    "read_json",
    "read_json_object",
    "tree_digest",
    "walk",
]

#: loadable FPGA images and platform files
BITSTREAM_SUFFIXES = (".bit", ".bin", ".xclbin", ".xsa", ".pdi", ".sof")
_MODEL_SUFFIXES = (".keras", ".h5", ".onnx", ".pb", ".pt", ".pth")
_REPORT_SUFFIXES = (".rpt", ".log")
#: build products that are machine-specific or regenerated (never packed)
_SKIP_SUFFIXES = (".so", ".o", ".pyc", ".a")
_SKIP_DIRS = {"__pycache__", ".git", ".Xil", "webtalk"}
_CONFIG = "hls4ml_config.yml"


@dataclass
class FpgaCapture:
    """The manifest ``fpga`` section and the files that go with it."""

    meta: dict[str, Any] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def add(self, dest: str, content: bytes, role: str) -> None:
        self.files[check_relpath(dest)] = (content, role)


def compact(section: dict[str, Any]) -> dict[str, Any]:
    """``section`` without empty values, one level of nested mappings compacted too: a
    manifest says nothing rather than ``null`` about what a tool did not record."""
    out: dict[str, Any] = {}
    for k, v in section.items():
        if isinstance(v, dict):
            v = {ik: iv for ik, iv in v.items() if iv not in (None, {}, [])}
        if v not in (None, {}, []):
            out[k] = v
    return out


def walk(root: Path, keep: Callable[[str], bool] = lambda rel: True) -> Iterator[tuple[Path, str]]:
    """Files under ``root`` in sorted order as (path, ``/``-relative path), skipping build
    products and tool scratch directories, and refusing symlinks that leave ``root``."""
    real_root = os.path.realpath(root)
    for dirpath, dirnames, names in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for n in sorted(names):
            p = Path(dirpath) / n
            rel = os.path.relpath(p, root).replace(os.sep, "/")
            if n.endswith(_SKIP_SUFFIXES) or not keep(rel):
                continue
            if p.is_symlink() and not os.path.realpath(p).startswith(real_root + os.sep):
                raise ToolError(f"{p} is a symlink leaving {root}; copy the file into the project")
            yield p, rel


def role_of(rel: str) -> str:
    """Bundle role of a project file, from its name and place."""
    low = rel.lower()
    name = low.rsplit("/", 1)[-1]
    if name.endswith(BITSTREAM_SUFFIXES):
        return "bitstream"
    if name.endswith(_MODEL_SUFFIXES):
        return "model"
    if name.endswith(_REPORT_SUFFIXES) or "/report/" in f"/{low}" or name.startswith("estimate_"):
        return "report"
    if low.startswith("tb_data/"):
        return "data"
    if "/weights/" in f"/{low}" and name.endswith(".txt"):
        return "weights"
    return "firmware"


def tree_digest(root: Path) -> str:
    """SHA-256 over the sorted (path, file digest) pairs of ``root``: a content key."""
    lines = [f"{rel}\0{hash_file(p).sha256}\n" for p, rel in walk(root)]
    return sha256_bytes("".join(lines).encode())


def read_json(path: Path) -> Any:
    """Parse a JSON file a tool wrote, or raise :class:`ToolError` naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ToolError(f"cannot read {path}: {e}") from None


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object file a tool may or may not have written: ``{}`` when absent."""
    if not path.is_file():
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise ToolError(f"{path} is not a JSON object")
    return data


class _Hls4mlLoader(yaml.SafeLoader):
    """Safe YAML plus hls4ml's own tags (``!keras_model '…'``), read as their plain value."""


def _plain(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    del suffix
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_Hls4mlLoader.add_multi_constructor("!", _plain)


def hls4ml_config(project_dir: Path) -> dict[str, Any]:
    """The ``hls4ml_config.yml`` hls4ml wrote into ``project_dir``.

    Not read through the spec loader: hls4ml tags values (``!keras_model``) that safe YAML
    refuses, and the file is tool output, not an authoring file with line-numbered errors."""
    path = project_dir / _CONFIG
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Hls4mlLoader)
    except FileNotFoundError:
        raise ToolError(
            f"{project_dir} has no {_CONFIG}: not a written hls4ml project",
            hint="point at the output_dir given to hls4ml's convert_from_*_model",
        ) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ToolError(f"cannot read {path}: {e}") from None
    if not isinstance(data, dict):
        raise ToolError(f"{path} is not a mapping")
    return data


def hls4ml_project_name(project_dir: Path) -> str:
    """``ProjectName`` of an hls4ml project (the top function's name)."""
    name = hls4ml_config(project_dir).get("ProjectName") or "myproject"
    return str(name)
