"""Legacy paths after an import: resolve ``atlas:tauRecTools/R22/model.json`` to the bundle file,
and write a compat tree of relative symlinks with the legacy layout.

Both read the ``legacy_paths`` table of ``catalog/index.sqlite``, filled from the manifests'
``legacyPath`` at publish (and by ``catalog rebuild``). A legacy path that several versions carry
(a cms-data file across tags) resolves to the highest released version that is not yanked.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..bundle import Bundle
from ..errors import NotFoundError, RepositoryError
from ..load import VerifyMode, resolve, search_path
from ..policy import TrustPolicy
from ..repository.index import LegacyHit, find_legacy
from ..repository.layout import INDEX_FILE, bundle_dir

__all__ = ["best_per_legacy", "resolve_legacy", "write_compat_tree"]


def resolve_legacy(
    key: str,
    *,
    verify: VerifyMode = "lazy",
    policy: TrustPolicy | None = None,
    repos: Sequence[str | os.PathLike[str]] | None = None,
) -> tuple[Bundle, str]:
    """The opened bundle holding the file recorded under ``key`` (``<namespace>:<legacy
    path>``) and that file's bundle path; the first repository of the search path that knows
    the key wins. The bundle is opened like :func:`hepbundle.resolve` (signature, catalogue
    digest), so ``bundle.path(file)`` hands back a verified file."""
    ns, sep, rest = key.partition(":")
    if not sep or not ns or not rest:
        raise NotFoundError(
            f"{key!r} is not a legacy reference",
            hint="write <experiment>:<legacy path>, e.g. atlas:tauRecTools/R22_preprod/model.json",
        )
    roots = search_path(repos)
    for root in roots:
        if not (root / INDEX_FILE).is_file():
            continue
        hits = find_legacy(root, f"{ns}:{rest.lstrip('/')}")
        if hits:
            best = hits[0]
            b = resolve(f"{best.name}@{best.version}", verify=verify, policy=policy, repos=[root])
            return b, best.path
    raise NotFoundError(
        f"no imported file is recorded under {key!r} in {', '.join(map(str, roots))}",
        hint="legacy paths are case-sensitive and relative to the old root (CALIBPATH entry or "
        "CMSSW src area)",
    )


def best_per_legacy(hits: Iterable[LegacyHit]) -> dict[str, LegacyHit]:
    """The first (best) hit of every legacy path, from :func:`find_legacy`'s ordering."""
    out: dict[str, LegacyHit] = {}
    for h in hits:
        out.setdefault(h.legacy, h)
    return out


def write_compat_tree(repo: Path, out: Path, namespaces: Iterable[str]) -> int:
    """Make ``out/<legacy path>`` a relative symlink to the bundle file for every legacy path of
    ``namespaces`` in ``repo``; return the number of links. Existing links are re-pointed (by an
    atomic rename), anything else in the way is an error."""
    repo = repo.absolute()
    out = out.absolute()
    count = 0
    for ns in sorted(set(namespaces)):
        for legacy, hit in sorted(best_per_legacy(find_legacy(repo, namespace=ns)).items()):
            link = out / legacy.partition(":")[2]
            target = bundle_dir(repo, hit.name, hit.version) / hit.path
            rel = os.path.relpath(target, link.parent)
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink():
                if os.readlink(link) == rel:
                    count += 1
                    continue
            elif link.exists():
                raise RepositoryError(
                    f"compat tree: {link} exists and is not a symlink",
                    hint="point --compat-tree at a new directory or one written by hepbundle",
                )
            tmp = link.with_name(f".{link.name}.hepbundle-tmp")
            tmp.unlink(missing_ok=True)
            os.symlink(rel, tmp)
            os.replace(tmp, link)
            count += 1
    return count
