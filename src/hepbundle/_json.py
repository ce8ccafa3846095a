"""Bounded JSON reading: every JSON document hepbundle reads from a bundle, repository or cache
goes through :func:`read_json` / :func:`parse_json`, which refuse (with one :class:`FormatError`
line) a file that is not a regular file, larger than its byte limit, not UTF-8 JSON, or nested
deeper than :data:`~hepbundle.limits.MAX_JSON_DEPTH` — never a ``RecursionError`` traceback, a
hang on a FIFO, or a deeply nested value that breaks a later consumer (schema check, writer).
"""

from __future__ import annotations

import json
import os
from typing import Any

from .errors import FormatError, HepbundleError
from .limits import MAX_JSON_BYTES, MAX_JSON_DEPTH, clip
from .regular import read_regular

__all__ = ["check_depth", "parse_json", "read_json"]


def read_json(
    path: str | os.PathLike[str],
    *,
    limit: int = MAX_JSON_BYTES,
    max_depth: int = MAX_JSON_DEPTH,
    what: str | None = None,
) -> Any:
    """The JSON value in the regular file ``path`` (``FileNotFoundError`` passes through, so
    callers can say what a missing file means)."""
    source = what or os.fspath(path)
    try:
        data = read_regular(path, limit=limit)
    except FileNotFoundError:
        raise
    except HepbundleError as e:
        raise FormatError(f"{source}: {e.message}", hint=e.hint) from None
    return parse_json(data, source, max_depth=max_depth, limit=limit)


def parse_json(
    data: bytes | str,
    source: str,
    *,
    max_depth: int = MAX_JSON_DEPTH,
    limit: int = MAX_JSON_BYTES,
) -> Any:
    """Parse ``data``; :class:`FormatError` naming ``source`` on anything wrong with it."""
    if len(data) > limit:
        raise FormatError(
            f"{source}: {len(data):,} bytes, over the limit of {limit:,}",
            hint="see docs/reference/errors.md § Limits",
        )
    try:
        obj = json.loads(data)
    except RecursionError:
        raise FormatError(f"{source}: JSON nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
        raise FormatError(f"{source}: not valid JSON: {clip(str(e), 300)}") from None
    check_depth(obj, source, max_depth)
    return obj


def check_depth(obj: Any, source: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """:class:`FormatError` when ``obj`` nests arrays/objects deeper than ``max_depth``
    (level by level: no recursion whatever the depth, one pass over the containers)."""
    level: list[Any] = [obj] if isinstance(obj, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise FormatError(f"{source}: JSON nested deeper than {max_depth} levels")
        below: list[Any] = []
        for value in level:
            children = value.values() if type(value) is dict else value
            below += [c for c in children if type(c) is dict or type(c) is list]
        level = below
