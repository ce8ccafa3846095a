"""YAML loading that remembers the line of every value, so errors can name ``file:line: field``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError

__all__ = ["LineMap", "field_name", "load_yaml"]

#: JSON-pointer-like path (keys and list indices) → 1-based line number in the YAML file
LineMap = dict[tuple[str | int, ...], int]


def field_name(path: tuple[str | int, ...]) -> str:
    """``('files', 0, 'role')`` → ``files[0].role``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def load_yaml(path: Path, *, what: str = "YAML file") -> tuple[Any, LineMap]:
    """Load one YAML document safely; return the data and the line of each value.

    Duplicate mapping keys, which PyYAML silently lets the last one win, are an error here.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"cannot read {what} {path}: {e}") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, filename: str) -> tuple[Any, LineMap]:
    """Parse YAML text (see :func:`load_yaml`)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: LineMap = {}
        _index(node, (), lines, filename)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise SpecError(f"{filename}{line}: invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{filename}: invalid YAML: {e}") from None
    finally:
        loader.dispose()
    return data, lines


def _index(node: yaml.Node, path: tuple[str | int, ...], lines: LineMap, filename: str) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            key = str(k.value)
            if key in seen:
                raise SpecError(
                    f"{filename}:{k.start_mark.line + 1}: {field_name((*path, key))}: "
                    "key given twice"
                )
            seen.add(key)
            _index(v, (*path, key), lines, filename)
            lines[(*path, key)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _index(v, (*path, i), lines, filename)
