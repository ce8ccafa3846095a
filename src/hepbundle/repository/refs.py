"""Bundle references (``ns/name@version``, ``ns/name@alias``, ``ns/name``, a path) and SemVer order.

A reference names either a directory on disk or a catalogue entry. Versions follow SemVer 2.0.0;
:func:`version_key` turns one into a string whose byte order is SemVer precedence, so both Python
and SQLite (``ORDER BY sort_key``) sort versions the same way without parsing them again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import NotFoundError

__all__ = [
    "NAME_RE",
    "SEMVER_RE",
    "VALID",
    "Ref",
    "is_prerelease",
    "is_version",
    "parse_ref",
    "shadowing_hint",
    "split_name",
    "version_key",
]

#: ``namespace/name`` as bundle-spec/v1/spec.schema.json defines it
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}/[a-z0-9][a-z0-9._-]{0,127}$")
#: the official SemVer 2.0.0 regular expression
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
#: alias names: lowercase words that can never be mistaken for a version
ALIAS_RE = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
#: the selector that picks by validity scope: ``ns/name@valid`` with a context (never an alias)
VALID = "valid"

_NUM_WIDTH = 20  # digits a numeric SemVer field is padded to in a sort key


def is_version(text: str) -> bool:
    return SEMVER_RE.match(text) is not None


def is_prerelease(version: str) -> bool:
    m = SEMVER_RE.match(version)
    return m is not None and m.group(4) is not None


def version_key(version: str) -> str:
    """A string whose lexicographic order is SemVer precedence (build metadata ignored).

    Release ``1.2.0`` sorts after its pre-releases (``~`` > ``-``); pre-release identifiers
    compare numerically when numeric, numeric before alphanumeric, and a shorter list of equal
    identifiers first (``\\x01`` separates them and sorts before every identifier character).
    """
    m = SEMVER_RE.match(version)
    if m is None:
        raise NotFoundError(f"{version!r} is not a SemVer version (e.g. 1.2.0)")
    core = ".".join(g.zfill(_NUM_WIDTH) for g in m.group(1, 2, 3))
    pre = m.group(4)
    if pre is None:
        return core + "~"
    parts = ["0" + p.zfill(_NUM_WIDTH) if p.isdigit() else "1" + p for p in pre.split(".")]
    return core + "-" + "\x01".join(parts)


def split_name(name: str) -> tuple[str, str]:
    """``("ns", "name")`` of ``ns/name``; :class:`NotFoundError` if it is not a valid name."""
    if NAME_RE.match(name) is None:
        raise NotFoundError(
            f"{name!r} is not a bundle name",
            hint="names are namespace/name in lowercase [a-z0-9._-], e.g. atlas/tauid",
        )
    ns, short = name.split("/", 1)
    return ns, short


@dataclass(frozen=True)
class Ref:
    """A parsed reference: a filesystem ``path``, or a catalogue ``name`` with an optional
    ``selector`` (a version or an alias; None means the latest released version)."""

    name: str | None = None
    selector: str | None = None
    path: Path | None = None

    @property
    def is_path(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        if self.path is not None:
            return str(self.path)
        return f"{self.name}@{self.selector}" if self.selector else str(self.name)


def parse_ref(text: str) -> Ref:
    """Parse ``ns/name@version``, ``ns/name@alias``, ``ns/name`` or a path.

    A string that parses as a catalogue reference **is** a reference, whatever the working
    directory holds: a directory named ``atlas/tauid`` in the job's directory never shadows the
    repository's bundle. A bundle directory is written as a path: starting with ``/``, ``.`` or
    ``~`` (``./atlas/tauid``), or any string that is not a reference (``out/atlas/tauid/1.2.0``).
    """
    if not text:
        raise NotFoundError("empty bundle reference")
    if text.startswith(("/", ".", "~")):
        return Ref(path=Path(text).expanduser())
    name, sep, selector = text.partition("@")
    if NAME_RE.match(name) is not None:
        if sep and not (is_version(selector) or ALIAS_RE.match(selector)):
            raise NotFoundError(
                f"{text!r}: {selector!r} is neither a SemVer version nor an alias name",
                hint="write ns/name@1.2.0 or ns/name@prod"
                + (f", or ./{text} for the directory" if Path(text).exists() else ""),
            )
        return Ref(name=name, selector=selector or None)
    if Path(text).exists():
        return Ref(path=Path(text))
    raise NotFoundError(
        f"{text!r} is neither an existing path nor a bundle reference",
        hint="write ns/name@version, ns/name@alias, ns/name, or a bundle directory",
    )


def shadowing_hint(ref: Ref) -> str | None:
    """When a catalogue reference also names an existing path in the working directory, the
    hint that says how to mean the path instead (used in not-found messages)."""
    if ref.name is None or not Path(str(ref)).exists():
        return None
    return f"./{ref} is a directory here; write ./{ref} to open it instead of the catalogue entry"
