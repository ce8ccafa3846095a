"""The importer interface: a legacy model store becomes a plan of bundles to build and publish.

An :class:`Importer` reads a store and returns an :class:`ImportPlan`: one :class:`PlannedBundle`
per version to create — an in-memory :class:`~hepbundle.spec.BundleSpec`, every file with its
legacy path, the metadata and provenance found in the store, and the provenance gap report —
plus the files it left out and why. Planning reads metadata only (sizes, git refs, MLflow
records), so ``--dry-run`` is cheap; :mod:`.run` does the copying.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from .._base import utc_timestamp
from ..errors import SpecError
from ..repository.refs import NAME_RE, is_version
from ..spec import BundleSpec, FileRule, normalise_metrics, normalise_person
from ._mapping import ImportMap, glob_match

__all__ = [
    "GAP_ITEMS",
    "NO_PAYLOAD",
    "VERDICTS",
    "ImportPlan",
    "Importer",
    "InventoryEntry",
    "LegacyAlias",
    "PlannedBundle",
    "PlannedFile",
    "Skipped",
    "SourceFile",
    "make_bundle",
    "pick",
    "safe_name",
]

#: the provenance items the gap report checks, in the order it prints them (``io``: the I/O
#: signature, e.g. an MLflow model signature; ``validity``: the validity scope;
#: ``environment``: a lock of the training's environment, e.g. an MLflow model's requirements)
GAP_ITEMS = ("code", "data", "metrics", "authors", "license", "io", "validity", "environment")

#: file name the in-memory spec pretends to have (errors name it; globs are relative to its dir)
_SPEC_NAME = "hepbundle-import.yaml"


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file of the store: legacy path (``/``-separated, relative to the store root), size, and
    its modification time (ns since the epoch; None: unknown)."""

    legacy: str
    size: int
    mtime_ns: int | None = None


@dataclass(frozen=True, slots=True)
class PlannedFile:
    """One file of a planned bundle: where it is read (relative to the source root), where it
    goes in the bundle, the legacy path it keeps (None: not consumed by path), size, role, and
    the file's time in the store (ns since the epoch; None: unknown), recorded in the manifest:
    for GroupData the only date there is."""

    source: str
    dest: str
    legacy: str | None
    size: int
    role: str
    mtime_ns: int | None = None


@dataclass(frozen=True)
class PlannedBundle:
    """One version to create. ``source_root`` is None when the files exist only after
    ``materialize(dir)`` writes them (e.g. a git tag), which returns the root to read from."""

    spec: BundleSpec
    files: tuple[PlannedFile, ...]
    origin: str
    source_root: Path | None
    extra_meta: Mapping[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    materialize: Callable[[Path], Path] | None = None
    #: which rule of the importer produced the name and the version (shown in the plan)
    rule: str = ""
    #: what the importer says of a gap item (``authors``: why the store's user is no author)
    notes: Mapping[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.spec.name}@{self.spec.version}"

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def legacy_paths(self) -> dict[str, str]:
        """Bundle path → legacy path (what ``BuildOptions.legacy_paths`` takes)."""
        return {f.dest: f.legacy for f in self.files if f.legacy}

    def gaps(self) -> dict[str, bool]:
        """Provenance gap report: for each of :data:`GAP_ITEMS`, whether the store (or the
        mapping) supplied it."""
        s = self.spec.sections
        return {
            "code": "code" in s,
            "data": bool(s.get("data")),
            "metrics": bool(self.spec.metrics),
            "authors": bool(self.spec.authors),
            "license": bool(self.spec.license),
            "io": "io" in self.extra_meta or "io" in s,
            "validity": "validity" in s,
            "environment": "environment" in s,
        }

    def gap_notes(self) -> dict[str, str]:
        """What the gap report adds to an item: Rucio DIDs that the build will record
        unresolved because no Rucio client configuration is present here; the fields of the
        I/O signature the store did not know."""
        notes = {"io": io_gap_note(self.extra_meta.get("io") or self.spec.sections.get("io"))}
        return {**self.notes, **self._data_note(), **notes}

    def _data_note(self) -> dict[str, str]:
        dids = [
            str(r.get("did"))
            for r in self.spec.sections.get("data") or []
            if isinstance(r, Mapping) and r.get("type") == "rucio"
        ]
        if not dids:
            return {}
        from ..remote.rucio import configured

        if configured() is not None:
            return {"data": f"Rucio DIDs resolved at build time: {', '.join(dids)}"}
        return {
            "data": f"Rucio DIDs not resolved (no Rucio server configured: RUCIO_CONFIG): "
            f"{', '.join(dids)}"
        }

    def with_migration(self, importer: Mapping[str, str], source: str) -> PlannedBundle:
        """This plan with the migration's record in ``extra.import`` of the manifest, next to
        what the importer put there: the importer (kind, class, distribution, version), the
        store (``source``), and each file's original modification time (``fileTimes``:
        bundle path → UTC; a GroupData area has no other dates)."""
        extra = dict(self.extra_meta.get("extra") or {})
        record = dict(extra.get("import") or {})
        record.update(kind=importer["kind"], importer=dict(importer), source=source)
        times = {
            f.dest: utc_timestamp(f.mtime_ns / 1e9) for f in self.files if f.mtime_ns is not None
        }
        if times:
            record["fileTimes"] = dict(sorted(times.items()))
        return replace(self, extra_meta={**self.extra_meta, "extra": {**extra, "import": record}})

    def metadata_changes(self, published: Mapping[str, Any]) -> list[str]:
        """The metadata fields the store now gives differently from the published manifest's
        ``published`` metadata (empty: none): summary, description, license, tags, authors,
        and what the importer recorded in ``extra.import`` (an MLflow run's tags and params,
        a git tag's message…), but not the migration's own record (importer, source, file
        times), which says how, not what."""
        spec = self.spec
        now = {
            "summary": spec.summary,
            "description": spec.description,
            "license": spec.license,
            "tags": list(spec.tags),
            "authors": list(spec.authors),
        }
        record = (self.extra_meta.get("extra") or {}).get("import") or {}
        was = (published.get("extra") or {}).get("import") or {}
        for key in sorted(set(record) | set(was)):
            if key not in _MIGRATION_KEYS:
                now[f"extra.import.{key}"] = record.get(key)
        changed = []
        for key, value in now.items():
            old = (
                was.get(key.removeprefix("extra.import."))
                if key.startswith("extra.")
                else (published.get(key))
            )
            if _plain(value) != _plain(old):
                changed.append(key)
        return changed

    def with_root(self, root: Path) -> PlannedBundle:
        """This plan reading its files from ``root`` (after materialising them there)."""
        return replace(self, source_root=root, spec=replace(self.spec, path=root / _SPEC_NAME))

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "origin": self.origin,
            "rule": self.rule,
            "files": [
                {"path": f.dest, "legacyPath": f.legacy, "size": f.size, "role": f.role}
                for f in self.files
            ],
            "size": self.size,
            "aliases": list(self.aliases),
            "gaps": {k: ("found" if v else "missing") for k, v in self.gaps().items()},
            "gapNotes": self.gap_notes(),
        }


#: keys of ``extra.import`` that describe the migration itself (not compared on a re-run)
_MIGRATION_KEYS = frozenset({"kind", "importer", "source", "fileTimes"})


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples as lists), with empty values as None."""
    import json

    if value in (None, "", [], {}, ()):
        return None
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def io_gap_note(io: Any) -> str:
    """What an imported I/O signature lacks (feature names, units, normalisation, ranges,
    output classes), or what the build will know without one."""
    if not isinstance(io, Mapping):
        return (
            "none in the store: the build reads names, dtypes and shapes from a packed ONNX or "
            "Keras model; feature units, normalisation, ranges and output classes stay unknown"
        )
    inputs = [t for t in io.get("inputs") or () if isinstance(t, Mapping)]
    outputs = [t for t in io.get("outputs") or () if isinstance(t, Mapping)]
    features = [f for t in inputs for f in t.get("features") or () if isinstance(f, Mapping)]
    # a 1-D input (a column of a table) is its own feature
    named = all(t.get("features") or len(t.get("shape") or ()) <= 1 for t in inputs)
    lacking = [
        what
        for what, have in (
            ("feature names", named),
            ("units", any("unit" in f for f in features)),
            ("normalisation", any("normalisation" in f for f in features)),
            ("allowed ranges", any("range" in f for f in features)),
            ("output classes", bool(outputs) and all(t.get("classes") for t in outputs)),
        )
        if not have
    ]
    source = {"mlflow": "the MLflow model signature"}.get(str(io.get("framework")), "the store")
    found = f"{len(inputs)} inputs, {len(outputs)} outputs from {source}"
    return found + (f"; missing: {', '.join(lacking)}" if lacking else "")


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something of the store the plan leaves out, with the reason."""

    what: str
    reason: str


@dataclass(frozen=True, slots=True)
class InventoryEntry:
    """One entry of the store in the plan's inventory: its path, what it is (``file``,
    ``directory``, ``symlink``, ``directory symlink``, ``special``), the verdict —
    ``imported``, ``skipped`` or ``refused`` — with the rule or reason, and the bundles it goes
    into (imported entries)."""

    path: str
    kind: str
    verdict: str
    reason: str
    into: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "verdict": self.verdict,
            "reason": self.reason,
            "bundles": list(self.into),
        }


@dataclass(frozen=True, slots=True)
class LegacyAlias:
    """A directory symlink of the store (``tauRecTools/current -> 00-02-00``) kept as the alias
    ``alias`` of the version ``ref`` that the directory it names (``target``) became."""

    link: str
    target: str
    ref: str
    alias: str


#: the verdicts of the inventory, in the order they are counted
VERDICTS = ("imported", "skipped", "refused")


@dataclass(frozen=True)
class ImportPlan:
    """What an importer found: the bundles to create, what it skipped, and the versions it
    refused to create (``refused``: e.g. a registered model whose artifacts are gone — an
    importer never publishes a bundle without payload; the real import exits non-zero).

    An importer that scans a directory tree also gives the ``inventory``: every entry of the
    store with its verdict (:func:`.scan.take_inventory`), and the directory symlinks it kept
    as aliases (``legacy_aliases``); the cms-data importer gives every tag and every entry of each
    version tag's tree. None: the importer gives none (MLflow)."""

    kind: str
    source: str
    bundles: tuple[PlannedBundle, ...]
    skipped: tuple[Skipped, ...] = ()
    refused: tuple[Skipped, ...] = ()
    inventory: tuple[InventoryEntry, ...] | None = None
    legacy_aliases: tuple[LegacyAlias, ...] = ()

    def inventory_counts(self) -> dict[str, int]:
        """Entries of the inventory per verdict (empty without an inventory)."""
        if self.inventory is None:
            return {}
        return {v: sum(e.verdict == v for e in self.inventory) for v in VERDICTS}

    def without_empty(self) -> ImportPlan:
        """This plan with every bundle that has no file moved to ``refused``."""
        empty = [b for b in self.bundles if not b.files]
        if not empty:
            return self
        return replace(
            self,
            bundles=tuple(b for b in self.bundles if b.files),
            refused=self.refused
            + tuple(
                Skipped(f"{b.ref} [{b.origin}]", NO_PAYLOAD + "no file to import") for b in empty
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "bundles": [b.to_json() for b in self.bundles],
            "files": sum(len(b.files) for b in self.bundles),
            "size": sum(b.size for b in self.bundles),
            "skipped": [{"what": s.what, "reason": s.reason} for s in self.skipped],
            "refused": [{"what": s.what, "reason": s.reason} for s in self.refused],
            "inventory": None
            if self.inventory is None
            else {
                "entries": len(self.inventory),
                **self.inventory_counts(),
                "items": [e.to_json() for e in self.inventory],
            },
            "legacyAliases": [
                {"link": a.link, "target": a.target, "ref": a.ref, "alias": a.alias}
                for a in self.legacy_aliases
            ],
        }


#: how a refusal for want of payload starts (an empty bundle would be signed and immutable)
NO_PAYLOAD = "refused: no payload: "


class Importer(Protocol):
    """A kind of legacy store. Register more under the ``hepbundle.importers`` entry-point
    group (name = the KIND of ``hepbundle import KIND``; value = a class taking no arguments)."""

    kind: str
    #: Optional (``frozenset[str]``): the mapping keys this importer reads (top-level keys, and
    #: ``defaults.version`` if it uses it). When declared, any other key of the mapping file is
    #: an error, and so is a ``names:`` key never looked up with ``ImportMap.name``.
    #: Optional (``bool``) ``scans_tree``: the importer plans from a directory tree with
    #: :func:`.scan.scan_tree` (honouring ``ImportMap.links_outside``) and gives the plan's
    #: ``inventory`` (:func:`.scan.take_inventory`); only then is ``--allow-links-outside``
    #: accepted.

    def plan(self, source: str, mapping: ImportMap) -> ImportPlan:
        """Read the store at ``source`` and plan its bundles (no file is copied)."""
        ...


def pick(
    files: Sequence[SourceFile], include: Sequence[str], exclude: Sequence[str] = ()
) -> list[SourceFile]:
    """The files matching any of ``include`` and none of ``exclude``."""
    return [
        f
        for f in files
        if any(glob_match(p, f.legacy) for p in include)
        and not any(glob_match(p, f.legacy) for p in exclude)
    ]


_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def safe_name(text: str) -> str:
    """A name part as the catalogue allows it: lowercase ``[a-z0-9._-]``, starting alphanumeric."""
    return _UNSAFE.sub("-", text.lower()).strip("-._") or "unnamed"


_META_KEYS = ("summary", "description", "license", "framework", "hyperparameters")


def make_bundle(
    *,
    name: str,
    version: str,
    files: Sequence[PlannedFile],
    meta: Mapping[str, Any],
    origin: str,
    source_root: Path | None,
    extra_meta: Mapping[str, Any] | None = None,
    aliases: Sequence[str] = (),
    materialize: Callable[[Path], Path] | None = None,
    where: str = "",
    rule: str = "",
    notes: Mapping[str, str] | None = None,
) -> PlannedBundle:
    """A :class:`PlannedBundle` from files and metadata (mapping defaults and entry fields, or
    what the store recorded), checking the name, the version and the file names."""
    if NAME_RE.match(name) is None:
        raise SpecError(
            f"{where}{origin}: {name!r} is not a bundle name (namespace/name, lowercase)",
            hint="set it in the mapping file's 'names:'",
        )
    if not is_version(version):
        raise SpecError(f"{where}{origin}: version {version!r} is not SemVer (e.g. 1.0.0)")
    rules = []
    for f in files:
        if any(c in f.source for c in "*?["):
            raise SpecError(
                f"{origin}: cannot import {f.source!r}: '*', '?' and '[' in file names are not "
                "supported",
                hint="rename the file, or leave it out with 'skip:' in the mapping",
            )
        to = f.dest.rsplit("/", 1)[0] if "/" in f.dest else ""
        rules.append(FileRule(pattern=f.source, role=f.role, to=to))
    sections = {
        k: meta[k] for k in ("code", "data", "training", "validity", "environment") if meta.get(k)
    }
    spec = BundleSpec(
        path=(source_root or Path.cwd()) / _SPEC_NAME,
        name=name,
        version=version,
        files=tuple(rules),
        authors=tuple(normalise_person(a) for a in meta.get("authors") or ()),
        tags=tuple(meta.get("tags") or ()),
        metrics=normalise_metrics(meta.get("metrics") or {}),
        sections=sections,
        **{k: meta[k] for k in _META_KEYS if meta.get(k) is not None},
    )
    return PlannedBundle(
        spec=spec,
        files=tuple(files),
        origin=origin,
        source_root=source_root,
        extra_meta=dict(extra_meta or {}),
        aliases=tuple(aliases),
        materialize=materialize,
        rule=rule,
        notes=dict(notes or {}),
    )
