"""Catalogue operations on a repository: list versions, move an alias, yank, rebuild the index
(looking a REF up is :mod:`hepbundle.resolver`). Each is one typed function the CLI calls."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import NotFoundError
from .catalog import NameCatalog, check_alias, read_name_catalog
from .index import rebuild_index
from .layout import STAGING_DIR, read_repository
from .lock import LOCK_FILENAME, repository_lock
from .publish import default_repo, make_publisher
from .refs import Ref, parse_ref
from .tree import recover

__all__ = ["Changed", "rebuild", "set_alias", "versions", "yank"]


@dataclass(frozen=True)
class Changed:
    """The outcome of an alias or yank: the catalogue after, the version it concerned, and the
    repository serial (None for the tarball backend, which only writes a patch)."""

    catalog: NameCatalog
    version: str
    serial: int | None


def _root(repo: str | os.PathLike[str] | None) -> Path:
    return Path(repo) if repo is not None else default_repo()


def _name_ref(text: str) -> Ref:
    ref = parse_ref(text)
    if ref.name is None:
        raise NotFoundError(f"{text!r} is a path; this needs a catalogue reference ns/name@version")
    return ref


def versions(name: str, repo: str | os.PathLike[str] | None = None) -> NameCatalog:
    """The catalogue of one name (every version, aliases, history)."""
    ref = _name_ref(name)
    assert ref.name is not None
    return read_name_catalog(_root(repo), ref.name)


def set_alias(
    ref_text: str,
    alias: str,
    repo: str | os.PathLike[str] | None = None,
    *,
    backend: str = "local",
) -> Changed:
    """Point ``alias`` at the version REF names (moving it if it pointed elsewhere; the
    catalogue keeps every move in ``aliasHistory``). A malformed alias is refused before any
    backend is asked to do anything."""
    check_alias(alias)
    return _change(
        ref_text,
        repo,
        backend,
        lambda cat, v: cat.with_alias(alias, v),
        lambda ref: f"hepbundle alias {ref} as {alias}",
    )


def yank(
    ref_text: str,
    reason: str,
    repo: str | os.PathLike[str] | None = None,
    *,
    backend: str = "local",
) -> Changed:
    """Mark the version REF names as yanked with ``reason``; the bundle stays in place."""
    ref = _name_ref(ref_text)
    if ref.selector is None:
        raise NotFoundError(
            f"yank needs an explicit version or alias, not {ref_text!r}",
            hint=f"e.g. {ref.name}@1.2.0",
        )
    return _change(
        ref_text,
        repo,
        backend,
        lambda cat, v: cat.with_yank(v, reason),
        lambda ref: f"hepbundle yank {ref}: {reason}",
    )


def _change(
    ref_text: str,
    repo: str | os.PathLike[str] | None,
    backend: str,
    apply: Callable[[NameCatalog, str], NameCatalog],
    message: Callable[[str], str],
) -> Changed:
    """Resolve REF to a version in the current catalogue, then let the backend apply the change."""
    ref = _name_ref(ref_text)
    assert ref.name is not None
    publisher = make_publisher(backend, repo)
    version = read_name_catalog(publisher.root, ref.name).resolve(ref.selector).version
    cat, serial = publisher.change(
        ref.name, lambda cat: apply(cat, version), message(f"{ref.name}@{version}")
    )
    return Changed(cat, version, serial)


def rebuild(repo: str | os.PathLike[str] | None = None) -> int:
    """Rebuild ``catalog/index.sqlite`` from the per-name files of a local repository; return
    the number of versions indexed."""
    root = _root(repo).absolute()
    read_repository(root)
    with repository_lock(root / LOCK_FILENAME):
        recover(root)
        staging = root / STAGING_DIR
        staging.mkdir(exist_ok=True)
        try:
            return rebuild_index(root, work_dir=staging)
        finally:
            if not any(staging.iterdir()):
                staging.rmdir()
