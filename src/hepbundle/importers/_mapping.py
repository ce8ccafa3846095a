"""The import mapping file (``--map MAP.yaml``): namespace, defaults, roles, names, explicit bundles.

Validated against ``bundle-spec/v1/import-map.schema.json``; errors name the line and field.
Globs match legacy paths (``/``-separated, relative to SOURCE): ``*`` and ``?`` stay inside one
directory, ``**`` crosses directories, and a pattern without ``/`` also matches the base name.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._yaml import LineMap, load_yaml
from ..errors import SpecError
from ..spec import validate

__all__ = [
    "COMMON_KEYS",
    "DEFAULT_ROLES",
    "ENTRY_ONLY_KEYS",
    "LWTNN_MAX_BYTES",
    "Content",
    "ImportMap",
    "glob_below",
    "glob_match",
    "is_lwtnn",
    "load_map",
]

#: the mapping keys every built-in importer reads (``defaults.version`` is listed on its own:
#: only the importers that make versions up read it)
COMMON_KEYS = frozenset({"format", "namespace", "defaults", "roles", "skip", "names"})

#: the fields of a ``bundles:`` entry that select and place its files: the schema shares the
#: entry's fields with ``defaults:``, where these would be ignored, so there they are errors
ENTRY_ONLY_KEYS = ("name", "include", "exclude", "strip", "alias")

#: roles of common model-store files when the mapping says nothing (first match wins)
DEFAULT_ROLES: tuple[tuple[str, str], ...] = (
    ("*.onnx", "model"),
    ("*.pb", "model"),
    ("*.h5", "model"),
    ("*.keras", "model"),
    ("*.pt", "model"),
    ("*.pth", "model"),
    ("*.lwtnn.json", "model"),
    ("MLmodel", "model"),
    ("*.gguf", "model"),
    ("*.weights.xml", "weights"),
    ("*.weights.xml.gz", "weights"),
    ("TMVA*.xml", "weights"),
    ("*.safetensors", "weights"),
    ("*.bin", "weights"),
    ("*.npz", "weights"),
    ("*.md", "docs"),
    ("*.txt", "docs"),
    ("README*", "docs"),
    ("*.png", "report"),
    ("*.pdf", "report"),
    ("*.json", "config"),
    ("*.yaml", "config"),
    ("*.yml", "config"),
    ("*.conf", "config"),
)


#: the top-level keys every lwtnn network has: the sequential format (``inputs``, ``layers``,
#: ``outputs``, often ``defaults`` and ``miscellaneous``) and the graph format (also
#: ``input_sequences`` and ``nodes``); each layer names its ``architecture``
_LWTNN_KEYS = frozenset({"inputs", "layers", "outputs"})
#: the largest JSON file read to tell an lwtnn network (big networks are tens of MB)
LWTNN_MAX_BYTES = 256 * 1024 * 1024

#: a file's content for :meth:`ImportMap.role`: its path, or a function returning its bytes
Content = str | Path | Callable[[], bytes]


def is_lwtnn(content: Content) -> bool:
    """Whether ``content`` (a path, or a function returning the bytes) is an lwtnn network
    (sequential or graph JSON): an object with ``inputs``, ``layers`` and ``outputs`` whose
    layers each name an ``architecture``. A file that cannot be read or parsed, or is larger
    than :data:`LWTNN_MAX_BYTES`, is not one (its role stays ``config``)."""
    from .._json import parse_json, read_json
    from ..errors import HepbundleError

    try:
        if isinstance(content, (str, Path)):
            with open(content, "rb") as f:
                if f.read(64).lstrip()[:1] != b"{":
                    return False
            doc = read_json(content, limit=LWTNN_MAX_BYTES)
        else:
            data = content()
            if data.lstrip()[:1] != b"{":
                return False
            doc = parse_json(data, "an lwtnn candidate", limit=LWTNN_MAX_BYTES)
    except (OSError, HepbundleError):
        return False
    if not isinstance(doc, dict) or not doc.keys() >= _LWTNN_KEYS:
        return False
    layers = doc["layers"]
    return (
        isinstance(layers, list)
        and bool(layers)
        and all(isinstance(x, dict) and "architecture" in x for x in layers)
    )


@functools.lru_cache(maxsize=1024)
def _glob_re(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c))
        i += 1
    return re.compile(out + r"\Z")


def glob_match(pattern: str, legacy: str) -> bool:
    """Whether ``legacy`` (a ``/`` path) matches ``pattern``; slash-free patterns also match the
    base name, and a pattern ending in ``/`` matches everything below that directory."""
    if pattern.endswith("/"):
        pattern += "**"
    if "/" not in pattern and "**" not in pattern:
        # nothing in it crosses a '/': a match of the whole path is a match of the base name
        return _glob_re(pattern).match(legacy[legacy.rfind("/") + 1 :]) is not None
    if _glob_re(pattern).match(legacy):
        return True
    return "/" not in pattern and bool(_glob_re(pattern).match(legacy.rsplit("/", 1)[-1]))


def glob_below(pattern: str, directory: str) -> bool:
    """Whether ``pattern`` may match something below ``directory`` (whose entries are not
    known: an unreadable one). Segment by segment: a slash-free pattern (it matches base names)
    or ``**`` may match anything below."""
    if pattern.endswith("/"):
        pattern += "**"
    if "/" not in pattern or "**" in pattern.split("/", 1)[0]:
        return True
    parts = pattern.split("/")
    for i, seg in enumerate(directory.split("/")):
        if i >= len(parts):
            return False
        if "**" in parts[i]:
            return True
        if _glob_re(parts[i]).match(seg) is None:
            return False
    return len(parts) > len(directory.split("/"))


@dataclass(frozen=True)
class ImportMap:
    """A validated mapping file (or the empty mapping when none is given)."""

    path: Path | None = None
    namespace: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    roles: tuple[tuple[str, str], ...] = ()
    skip: tuple[str, ...] = ()
    names: Mapping[str, str] = field(default_factory=dict)
    include_dev: bool = False
    bundles: tuple[Mapping[str, Any], ...] = ()
    #: cms-data: the ``<Subsystem>/<Package>`` the legacy paths start with, and the layout of the
    #: repository (``root``: its root is ``<Subsystem>/<Package>/data/``; ``data``: it holds
    #: ``data/``); None: read from the names and the tree (docs/migration.md)
    package: str | None = None
    layout: str | None = None
    lines: LineMap = field(default_factory=dict, compare=False, repr=False)
    #: the keys the file sets (top level, and ``defaults.version``)
    keys: frozenset[str] = frozenset()
    #: directories a file symlink of the store may point into (``--allow-links-outside``; not a
    #: key of the file: an exception the person importing grants, shown in the plan)
    links_outside: tuple[str, ...] = ()
    #: source keys looked up in ``names`` while planning (see :meth:`name`)
    looked_up: set[str] = field(default_factory=set, compare=False, repr=False)

    def name(self, key: str) -> str | None:
        """The bundle name ``names:`` gives the source key ``key`` (None: none), remembering
        the lookup so that :meth:`check_names` can tell a names key that matched nothing."""
        self.looked_up.add(key)
        return self.names.get(key)

    def check_keys(self, kind: str, used: frozenset[str]) -> None:
        """A key the importer of ``kind`` does not read is an error, never silently ignored
        (``bundles:`` given to the mlflow importer, ``include_dev:`` to cms-data)."""
        for key in sorted(self.keys - used):
            raise SpecError(
                f"{self.where(*key.split('.'))}{key}: the {kind} importer does not use this key",
                hint=f"it reads {', '.join(sorted(used - {'format'}))} (docs/migration.md); "
                "remove the key",
            )

    def check_names(self, kind: str) -> None:
        """A ``names:`` key that matched nothing in the store is an error (a typo would
        otherwise publish, immutably, under the default name)."""
        for key in self.names:
            if key in self.looked_up:
                continue
            close = difflib.get_close_matches(key, sorted(self.looked_up), n=1)
            raise SpecError(
                f"{self.where('names', key)}names.{key}: matches nothing the {kind} importer "
                "found in the store",
                hint=f"did you mean {close[0]!r}?"
                if close
                else "keys are the source's own (Package or Package/subdir, the cms-data "
                "repository, the registered model name)",
            )

    def role(self, legacy: str, content: Content | None = None) -> str:
        """The role of a file by its legacy path: the mapping's globs, then the defaults. Given
        the file's ``content`` (its path, or a function returning its bytes, called only for
        such a file), a ``.json`` the defaults call ``config`` is ``model`` when it is an lwtnn
        network (:func:`is_lwtnn`): lwtnn's files are told apart by content only."""
        for pattern, role in self.roles:
            if glob_match(pattern, legacy):
                return role
        for pattern, role in DEFAULT_ROLES:
            if glob_match(pattern, legacy):
                if role == "config" and pattern == "*.json" and content is not None:
                    return "model" if is_lwtnn(content) else role
                return role
        return "data"

    def skipped(self, legacy: str) -> bool:
        return any(glob_match(p, legacy) for p in self.skip)

    def where(self, *path: str | int) -> str:
        """``map.yaml:12: `` for a field, or the empty string without a file."""
        if self.path is None:
            return ""
        for cut in range(len(path), -1, -1):
            if path[:cut] in self.lines:
                return f"{self.path}:{self.lines[path[:cut]]}: "
        return f"{self.path}: "

    def meta_for(self, entry: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults overlaid with one explicit bundle entry's own fields."""
        return {**self.defaults, **(entry or {})}

    def namespace_or(self, default: str) -> str:
        return self.namespace or default


def load_map(path: str | Path | None) -> ImportMap:
    """Read and validate a mapping file; ``None`` gives the empty mapping."""
    if path is None:
        return ImportMap()
    p = Path(path)
    data, lines = load_yaml(p, what="import mapping", aliases=False)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{p}: an import mapping must be a YAML mapping (namespace:, bundles: …)")
    from ..validity import plain_times

    # an unquoted date in a validity section (since: 2024-04-01) means what it says
    for entry in (data.get("defaults"), *(data.get("bundles") or ())):
        if isinstance(entry, dict) and "validity" in entry:
            entry["validity"] = plain_times(entry["validity"])
    validate(data, "import-map.schema.json", filename=str(p), lines=lines)
    m = ImportMap(
        path=p.resolve(),
        namespace=data.get("namespace"),
        defaults=data.get("defaults", {}),
        roles=tuple(data.get("roles", {}).items()),
        skip=tuple(data.get("skip", ())),
        names=data.get("names", {}),
        include_dev=bool(data.get("include_dev", False)),
        bundles=tuple(data.get("bundles", ())),
        package=data.get("package"),
        layout=data.get("layout"),
        lines=lines,
        keys=frozenset(data)
        | ({"defaults.version"} if "version" in (data.get("defaults") or {}) else set()),
    )
    for key in ENTRY_ONLY_KEYS:
        if key in m.defaults:
            raise SpecError(
                f"{m.where('defaults', key)}defaults.{key}: a key of a bundles: entry, not a "
                "default (no importer gives it to every bundle)",
                hint="move it into the bundles: entry it belongs to (docs/migration.md)",
            )
    return m
