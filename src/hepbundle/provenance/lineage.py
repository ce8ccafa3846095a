"""Lineage: parent bundles pinned by manifest digest at build time, and the family tree later.

A parent is named as ``fine_tuned_from: atlas/tauid@1.1.0`` (or another relation) and recorded by
the SHA-256 of its ``hepbundle.json``. The digest comes from the parent bundle's directory
(``path:``), from the repository catalogue (``HEPBUNDLE_REPO``), or is given (``manifest_digest:``);
when two of them are there they must agree. The tree is drawn from any set of known bundles: a
repository (through its catalogue, or its ``bundles/`` tree) and directories of built bundles.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import settings
from ..errors import HepbundleError, NotFoundError, SpecError
from ..manifest import MANIFEST_FILENAME, read_manifest
from ..repository.catalog import list_names, read_name_catalog
from ..resolver import read_ref

__all__ = [
    "RELATIONS",
    "KnownBundle",
    "Lineage",
    "family",
    "known_bundles",
    "lineage",
    "resolve_parents",
]

#: how a bundle can derive from a parent
RELATIONS = (
    "fine_tuned_from",
    "retrained_from",
    "distilled_from",
    "quantized_from",
    "pruned_from",
    "derived_from",
)
_HEX = re.compile(r"^(?:sha256:)?([0-9a-f]{64})$")


def resolve_parents(
    entries: Sequence[Mapping[str, Any]], base: Path, where: Any, repo: Path | None
) -> list[dict[str, Any]]:
    """The manifest's ``parents`` list; ``where(i, key)`` is the ``file:line: `` of an entry."""
    out = []
    for i, entry in enumerate(entries):
        rels = [r for r in RELATIONS if r in entry]
        if len(rels) != 1:
            raise SpecError(
                f"{where(i)}parents[{i}]: name exactly one relation "
                f"({', '.join(RELATIONS)}), not {len(rels)}"
            )
        rel, ref = rels[0], str(entry[rels[0]])
        requested = ref
        found: dict[str, str] = {}
        if "manifest_digest" in entry:
            found["spec"] = _HEX.match(str(entry["manifest_digest"])).group(1)  # type: ignore[union-attr]
        if "path" in entry:
            parent = read_manifest(base / str(entry["path"]), where(i, "path"))
            if parent[0].ref != ref:
                raise SpecError(
                    f"{where(i, 'path')}parents[{i}].path: {entry['path']} holds "
                    f"{parent[0].ref}, not {ref}"
                )
            found["path"] = parent[1]
        if repo is not None:
            # a repository that does not know the parent is only an error when nothing else pins it
            hit = _from_catalog(
                repo, ref, f"{where(i, rel)}parents[{i}].{rel}: ", missing_ok=bool(found)
            )
            if hit:
                found["repository"], version = hit
                requested, ref = ref, f"{ref.partition('@')[0]}@{version}"  # an alias → version
        if not found:
            raise SpecError(
                f"{where(i, rel)}parents[{i}]: cannot pin {ref} by digest",
                hint="add 'manifest_digest: sha256:…' or 'path: <parent bundle dir>', "
                "or set HEPBUNDLE_REPO to a repository that holds it",
            )
        if len(set(found.values())) > 1:
            seen = ", ".join(f"{k} {v[:12]}…" for k, v in found.items())
            raise SpecError(f"{where(i, rel)}parents[{i}]: {ref} digests disagree: {seen}")
        rec = {
            "relation": rel,
            "ref": ref,
            "manifestDigest": next(iter(found.values())),
            "pinnedBy": sorted(found),
        }
        if requested != ref:
            rec["requested"] = requested
        out.append(rec)
    return out


def _from_catalog(repo: Path, ref: str, where: str, *, missing_ok: bool) -> tuple[str, str] | None:
    """The catalogue's (digest, version) of ``ref``; None when the repository layer is not
    available, or the repository does not know ``ref`` and ``missing_ok``."""
    name, _, selector = ref.partition("@")
    try:
        rec = read_name_catalog(repo, name).resolve(selector or None)
        return str(rec.manifest_digest), str(rec.version)
    except NotFoundError as e:
        if missing_ok:
            return None
        raise SpecError(f"{where}{ref}: {e.message}", hint=e.hint) from None


@dataclass(frozen=True)
class KnownBundle:
    """A bundle the tree can show: identity, digest, where it lies, and its parent records."""

    ref: str
    digest: str
    location: str
    parents: tuple[Mapping[str, Any], ...] = ()


@dataclass
class Lineage:
    """The family tree of one bundle: nested ``{bundle, relation, parents|children}`` nodes."""

    root: KnownBundle
    ancestors: list[dict[str, Any]] = field(default_factory=list)
    descendants: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.root.ref,
            "manifestDigest": self.root.digest,
            "location": self.root.location,
            "ancestors": self.ancestors,
            "descendants": self.descendants,
        }


def known_bundles(sources: Iterable[Path]) -> dict[str, KnownBundle]:
    """Every bundle under ``sources`` (repositories or directories of bundles), by digest.
    A repository with a catalogue is listed through it; anything else is walked for manifests."""
    out: dict[str, KnownBundle] = {}
    for src in sources:
        for mpath in _manifests(Path(src)):
            try:
                m, digest = read_manifest(mpath, "")
            except HepbundleError:
                continue  # a half-written or foreign file is not part of the family
            out.setdefault(
                digest,
                KnownBundle(m.ref, digest, str(mpath.parent), tuple(m.meta.get("parents") or ())),
            )
    return out


def _manifests(src: Path) -> Iterable[Path]:
    if (src / "catalog").is_dir():
        for name in list_names(src):
            for rec in read_name_catalog(src, name).versions.values():
                yield src / rec.path / MANIFEST_FILENAME
        return
    for dirpath, dirnames, files in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # skip stages
        if MANIFEST_FILENAME in files:
            dirnames[:] = []  # a bundle does not nest bundles
            yield Path(dirpath) / MANIFEST_FILENAME


def lineage(root: KnownBundle, known: Mapping[str, KnownBundle], *, depth: int = 20) -> Lineage:
    """Ancestors by following parent digests, descendants by scanning ``known`` for bundles
    naming a digest as parent; unknown parents appear with ``found: false``."""
    children: dict[str, list[tuple[str, KnownBundle]]] = {}
    for kb in known.values():
        for p in kb.parents:
            children.setdefault(str(p.get("manifestDigest")), []).append(
                (str(p.get("relation")), kb)
            )

    def up(kb: KnownBundle, level: int) -> list[dict[str, Any]]:
        out = []
        for p in kb.parents:
            digest = str(p.get("manifestDigest"))
            parent = known.get(digest)
            node: dict[str, Any] = {
                "relation": p.get("relation"),
                "ref": parent.ref if parent else p.get("ref"),
                "manifestDigest": digest,
                "found": parent is not None,
            }
            if parent is not None:
                node["location"] = parent.location
                if level < depth:
                    node["parents"] = up(parent, level + 1)
            out.append(node)
        return out

    def down(kb: KnownBundle, level: int) -> list[dict[str, Any]]:
        out = []
        for rel, child in sorted(children.get(kb.digest, []), key=lambda c: c[1].ref):
            node: dict[str, Any] = {
                "relation": rel,
                "ref": child.ref,
                "manifestDigest": child.digest,
                "location": child.location,
            }
            if level < depth:
                node["children"] = down(child, level + 1)
            out.append(node)
        return out

    return Lineage(root, up(root, 0), down(root, 0))


def family(
    ref: str,
    *,
    repos: Sequence[str | os.PathLike[str]] | None = None,
    search: Sequence[Path] = (),
    allow_yanked: bool = False,
) -> Lineage:
    """The family tree of REF (found by :func:`hepbundle.resolver.read_ref`: the search, yank
    and catalogue rules of every REF) among the bundles of the repository REF was found in (or
    ``repos``/``HEPBUNDLE_REPO`` for a path) and the ``search`` directories; with neither, the
    tree of built bundles REF lies in (``dist/`` for ``dist/<ns>/<name>/<version>``)."""
    where, m, digest = read_ref(ref, repos=repos, allow_yanked=allow_yanked)
    path = where.path
    sources = list(search)
    if where.repo is not None:
        sources.append(where.repo)
    elif repos:
        sources.extend(Path(r) for r in repos)
    elif settings().repo is not None:
        sources.append(settings().default_repo)
    if not sources:
        parts = path.resolve().parts
        tail = (*m.name.split("/"), m.version)
        sources.append(path.resolve().parents[2] if parts[-3:] == tail else path.parent)
    root = KnownBundle(m.ref, digest, str(path), tuple(m.meta.get("parents") or ()))
    return lineage(root, known_bundles(sources))
