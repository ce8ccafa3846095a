"""Load and validate authoring files (``hepbundle.yaml``) and manifests against ``bundle-spec/``.

Errors name the file, the line and the field, and for an unknown key or enum value suggest the
closest valid one, e.g. ``hepbundle.yaml:12: files[0].role: 'modle' is not valid (did you mean
'model'?)``.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._yaml import LineMap, field_name, load_yaml
from .config import settings
from .errors import SpecError
from .validity import plain_times

if TYPE_CHECKING:
    import jsonschema
    from referencing import Registry

__all__ = [
    "SPEC_FILENAME",
    "BundleSpec",
    "FileRule",
    "load_spec",
    "schema",
    "validate",
]

SPEC_FILENAME = "hepbundle.yaml"
_SCHEMA_DIR = "v1"


@functools.cache
def _schema_texts() -> dict[str, bytes]:
    root = resources.files("hepbundle") / "_schemas" / _SCHEMA_DIR
    return {
        entry.name: entry.read_bytes()
        for entry in root.iterdir()
        if entry.name.endswith(".schema.json")
    }


@functools.cache
def _schema_files() -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in _schema_texts().items()}


@functools.cache
def _schemas_digest() -> bytes:
    """SHA-256 over every schema file (a schema may refer to the others): a validation
    remembered under other schemas is never used."""
    h = hashlib.sha256()
    for name, text in sorted(_schema_texts().items()):
        h.update(b"%d:%s\0%d:" % (len(name), name.encode(), len(text)) + text)
    return h.digest()


@functools.cache
def _registry() -> Registry:
    from referencing import Registry, Resource

    resources_ = [
        (s["$id"], Resource.from_contents(s)) for s in _schema_files().values() if "$id" in s
    ]
    # also register by bare file name, so "$ref": "spec.schema.json#..." resolves offline
    resources_ += [(name, Resource.from_contents(s)) for name, s in _schema_files().items()]
    return Registry().with_resources(resources_)


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``bundle-spec/v1/<name>`` (e.g. ``"manifest.schema.json"``)."""
    try:
        return _schema_files()[name]
    except KeyError:
        raise SpecError(f"no schema named {name!r} in bundle-spec/v1") from None


@functools.cache
def _validator(schema_name: str) -> Any:
    """One validator per schema per process (building one costs more than a small validation)."""
    import jsonschema  # ~45 ms of start-up with referencing and attrs: only on a memo miss

    validator_cls = jsonschema.validators.validator_for(schema(schema_name))
    return validator_cls(schema(schema_name), registry=_registry())


def validate(
    data: Any, schema_name: str, *, filename: str = "<data>", lines: LineMap | None = None
) -> None:
    """Validate ``data`` against a bundle-spec schema; raise :class:`SpecError` for the first
    error (the one deepest in the document), naming line and field.

    A document that passed is remembered on this node (:func:`_memo_path`), so a later process
    checking the same document (``sign`` and ``publish`` reading the manifest ``build`` wrote, a
    job opening a bundle again) does not import jsonschema at all."""
    memo = _memo_path(data, schema_name)
    if memo is not None and _remembered(memo):
        return
    errors = list(_validator(schema_name).iter_errors(data))
    if not errors:
        if memo is not None:
            _remember(memo)
        return
    import jsonschema

    best = jsonschema.exceptions.best_match(errors)
    raise SpecError(_describe(best, filename, lines or {}))


def _memo_path(data: Any, schema_name: str) -> Path | None:
    """Where the node cache remembers that ``data`` passed ``schema_name``: a file named by the
    SHA-256 of every schema file, the schema's name and the document's canonical JSON, under
    ``<cache>/schema-ok/`` (private to the user, as the verification cache). None when the cache
    is off, or the document is not plain JSON (str keys; dict, list, str, int, float, bool,
    None): a tuple, a date or an int key would encode like a value the schema treats otherwise."""
    s = settings()
    if s.no_cache or not _plain(data, 0):
        return None
    try:
        doc = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError):
        return None
    h = hashlib.sha256(_schemas_digest())
    h.update(schema_name.encode() + b"\0" + doc.encode("utf-8", "surrogatepass"))
    key = h.hexdigest()
    return Path(s.cache_dir) / "schema-ok" / key[:2] / key


def _plain(obj: Any, depth: int) -> bool:
    if depth > 64:
        return False
    t = type(obj)
    if t is dict:
        return all(type(k) is str and _plain(v, depth + 1) for k, v in obj.items())
    if t is list:
        return all(_plain(v, depth + 1) for v in obj)
    return t in (str, int, float, bool) or obj is None


def _remembered(memo: Path) -> bool:
    """Whether ``memo`` is there and was written by this user, writable by no one else."""
    try:
        st = os.lstat(memo)
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & 0o022 and memo.is_file()


def _remember(memo: Path) -> None:
    try:
        memo.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(memo, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    except OSError:
        pass  # an unwritable cache: validate again next time


def _describe(err: jsonschema.ValidationError, filename: str, lines: LineMap) -> str:
    path = tuple(err.absolute_path)
    schema_ = err.schema if isinstance(err.schema, Mapping) else {}
    if err.validator == "additionalProperties" and isinstance(err.instance, Mapping):
        allowed = sorted(schema_.get("properties", {}))
        unknown = [k for k in err.instance if k not in allowed]
        if unknown:
            key = str(unknown[0])
            where = _where(filename, lines, (*path, key))
            return f"{where}{field_name((*path, key))}: unknown key{_suggest(key, allowed)}"
    if err.validator == "required":
        missing = str(err.message).split("'")[1] if "'" in err.message else err.message
        return f"{_where(filename, lines, path)}{field_name((*path, missing))}: required field is missing"
    if err.validator == "enum" and isinstance(err.instance, str):
        options = [str(o) for o in schema_.get("enum", [])]
        return (
            f"{_where(filename, lines, path)}{field_name(path)}: {err.instance!r} is not one of "
            f"{', '.join(options)}{_suggest(err.instance, options)}"
        )
    if err.validator == "pattern":
        hint = schema_.get("description") or f"must match {schema_.get('pattern')}"
        return f"{_where(filename, lines, path)}{field_name(path)}: {err.instance!r} is invalid: {hint}"
    return f"{_where(filename, lines, path)}{field_name(path)}: {err.message}"


def _where(filename: str, lines: LineMap, path: tuple[str | int, ...]) -> str:
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return f"{filename}:{lines[path[:cut]]}: "
    return f"{filename}: "


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return (
        f" (did you mean {close[0]!r}?)" if close else f" (expected one of: {', '.join(options)})"
    )


@dataclass(frozen=True, slots=True)
class FileRule:
    """One ``files:`` entry: a glob relative to the spec, the role, and where it lands."""

    pattern: str
    role: str = "other"
    to: str | None = None
    optional: bool = False
    line: int = 0


@dataclass(frozen=True)
class BundleSpec:
    """A validated ``hepbundle.yaml``. ``sections`` keeps the provenance/FPGA/data sections as
    written, for the layers above to interpret."""

    path: Path
    name: str
    version: str
    files: tuple[FileRule, ...]
    summary: str = ""
    description: str = ""
    authors: tuple[dict[str, str], ...] = ()
    license: str | None = None
    tags: tuple[str, ...] = ()
    framework: str | None = None
    model_card: str | None = None
    metrics: tuple[dict[str, Any], ...] = ()
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    sections: Mapping[str, Any] = field(default_factory=dict)
    lines: LineMap = field(default_factory=dict, compare=False, repr=False)

    @property
    def base_dir(self) -> Path:
        """Directory the globs are relative to."""
        return self.path.parent

    @property
    def namespace(self) -> str:
        return self.name.split("/", 1)[0]

    def where(self, *path: str | int) -> str:
        """``file:line: `` prefix for a field, for error messages of the layers above."""
        return _where(str(self.path), self.lines, tuple(path))


_SECTIONS = (
    "code",
    "environment",
    "data",
    "training",
    "parents",
    "fpga",
    "profile",
    "io",
    "validity",
    "extra",
)


def load_spec(path: str | os.PathLike[str]) -> BundleSpec:
    """Read and validate a ``hepbundle.yaml`` (a directory means its ``hepbundle.yaml``)."""
    p = Path(path)
    if p.is_dir():
        p = p / SPEC_FILENAME
    data, lines = load_yaml(p, what="spec file")
    if not isinstance(data, dict):
        raise SpecError(f"{p}: a spec file must be a YAML mapping (name:, version:, files: …)")
    if "validity" in data:  # an unquoted YAML date (since: 2024-04-01) means that date
        data["validity"] = plain_times(data["validity"])
    validate(data, "spec.schema.json", filename=str(p), lines=lines)
    rules = tuple(
        FileRule(
            pattern=f["path"],
            role=f.get("role", "other"),
            to=f.get("to"),
            optional=bool(f.get("optional", False)),
            line=lines.get(("files", i), 0),
        )
        for i, f in enumerate(data["files"])
    )
    return BundleSpec(
        path=p.resolve(),
        name=data["name"],
        version=data["version"],
        files=rules,
        summary=data.get("summary", ""),
        description=data.get("description", ""),
        authors=tuple(normalise_person(a) for a in data.get("authors", [])),
        license=data.get("license"),
        tags=tuple(data.get("tags", [])),
        framework=data.get("framework"),
        model_card=data.get("model_card"),
        metrics=normalise_metrics(data.get("metrics", {})),
        hyperparameters=data.get("hyperparameters", {}),
        sections={k: data[k] for k in _SECTIONS if k in data},
        lines=lines,
    )


def normalise_person(a: str | Mapping[str, str]) -> dict[str, str]:
    """``"Jane Doe <jane@cern.ch>"`` or a mapping → ``{"name": …, "email": …}``."""
    if isinstance(a, Mapping):
        return dict(a)
    if "<" in a and a.rstrip().endswith(">"):
        name, _, email = a.partition("<")
        return {"name": name.strip(), "email": email.rstrip().rstrip(">").strip()}
    return {"name": a.strip()}


def normalise_metrics(m: Any) -> tuple[dict[str, Any], ...]:
    """Metrics as a list of ``{name, value[, split]}`` records, sorted by name then split."""
    if isinstance(m, Mapping):
        recs = [{"name": str(k), "value": v} for k, v in m.items()]
    else:
        recs = [dict(r) for r in m]
    return tuple(sorted(recs, key=lambda r: (r["name"], r.get("split", ""))))
