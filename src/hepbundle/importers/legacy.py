"""Legacy paths after an import: resolve ``atlas:tauRecTools/R22/model.json`` to the bundle file,
and write a compat tree of relative symlinks with the legacy layout.

Both read the ``legacy_paths`` table of search index (the namespace's shard), filled from the manifests'
``legacyPath`` at publish (and by ``catalog rebuild``). A legacy path that several versions carry
(a cms-data file across tags) resolves to the highest released version that is not yanked.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..bundle import Bundle
from ..errors import NotFoundError, PathError, RepositoryError, VerificationError
from ..load import VerifyMode
from ..paths import check_relpath
from ..policy import TrustPolicy
from ..repository.index import LegacyHit, find_legacy
from ..repository.layout import bundle_dir, index_file
from ..resolver import resolve, search_path

__all__ = ["best_per_legacy", "resolve_legacy", "write_compat_tree"]

log = logging.getLogger("hepbundle")


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
        if not index_file(root, ns).is_file():
            continue
        legacy = f"{ns}:{rest.lstrip('/')}"
        hits = find_legacy(root, legacy)
        if hits:
            best = _owned(legacy, hits, root)
            b = resolve(f"{best.name}@{best.version}", verify=verify, policy=policy, repos=[root])
            _check_signed_entry(b, best, rest.lstrip("/"), root)
            return b, best.path
    raise NotFoundError(
        f"no imported file is recorded under {key!r} in {', '.join(map(str, roots))}",
        hint="legacy paths are case-sensitive and relative to the old root (CALIBPATH entry or "
        "CMSSW src area)",
    )


def _owned(legacy: str, hits: Sequence[LegacyHit], root: Path) -> LegacyHit:
    """The best hit, when every hit is of one bundle name. A legacy path belongs to one name:
    when several names declare it (a signer allowed for one name claiming another's files at a
    higher version), none of them gets it, so no name can take over another's legacy path."""
    names = sorted({h.name for h in hits})
    if len(names) > 1:
        raise RepositoryError(
            f"{legacy} is declared by several bundle names in {root}: {', '.join(names[:5])}",
            hint="a legacy path must belong to one name; ask the repository maintainers, or use "
            "the bundle file directly (hepbundle path NAME@VERSION FILE)",
        )
    return hits[0]


def _check_signed_entry(b: Bundle, hit: LegacyHit, legacy: str, root: Path) -> None:
    """The index is not signed: the file it points to must carry that ``legacyPath`` in the
    (signature-checked) manifest of the bundle it names, under that bundle's namespace."""
    ns = b.name.split("/", 1)[0]
    entry = next((f for f in b.manifest.files if f.path == hit.path), None)
    if (
        entry is None
        or entry.legacy_path != legacy
        or f"{ns}:{legacy}" != hit.legacy
        or b.name != hit.name
    ):
        raise VerificationError(
            f"{root}: the catalogue index maps {hit.legacy} to {b.ref}:{hit.path}, but that "
            "bundle's manifest does not declare this legacy path there",
            hint=f"the index was altered or is stale; run: hepbundle catalog rebuild --repo {root}",
        )


def best_per_legacy(hits: Iterable[LegacyHit]) -> dict[str, LegacyHit]:
    """The first (best) hit of every legacy path, from :func:`find_legacy`'s ordering; legacy
    paths declared by several bundle names are left out (see :func:`_owned`)."""
    out: dict[str, LegacyHit] = {}
    names: dict[str, set[str]] = {}
    for h in hits:
        out.setdefault(h.legacy, h)
        names.setdefault(h.legacy, set()).add(h.name)
    for legacy, owners in names.items():
        if len(owners) > 1:
            log.warning("%s is declared by several names (%s): left out", legacy, sorted(owners))
            del out[legacy]
    return out


def write_compat_tree(repo: Path, out: Path, namespaces: Iterable[str]) -> int:
    """Make ``out/<legacy path>`` a relative symlink to the bundle file for every legacy path of
    ``namespaces`` in ``repo``; return the number of links. Existing links are re-pointed (by an
    atomic rename), anything else in the way is an error."""
    repo = repo.absolute()
    out = out.absolute()
    count = 0
    manifests: dict[tuple[str, str], Bundle] = {}
    for ns in sorted(set(namespaces)):
        for legacy, hit in sorted(best_per_legacy(find_legacy(repo, namespace=ns)).items()):
            link = _link_inside(out, legacy.partition(":")[2])
            key = (hit.name, hit.version)
            if key not in manifests:
                manifests[key] = Bundle.load(bundle_dir(repo, hit.name, hit.version))
            _check_signed_entry(manifests[key], hit, legacy.partition(":")[2], repo)
            target = manifests[key].root / check_relpath(hit.path)
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


def _link_inside(out: Path, legacy: str) -> Path:
    """``out/legacy`` after checking the path rules on ``legacy`` and that no directory on the
    way is a symlink leading out of ``out``: the compat tree never writes outside itself."""
    try:
        check_relpath(legacy)
    except PathError as e:
        raise RepositoryError(f"compat tree: legacy path refused: {e}") from None
    link = out / legacy
    real_out = os.path.realpath(out)
    existing = link.parent
    while not os.path.lexists(existing) and existing != out:
        existing = existing.parent
    real = os.path.realpath(existing)
    if real != real_out and not real.startswith(real_out + os.sep):
        raise RepositoryError(f"compat tree: {existing} leads outside {out}; not writing there")
    return link
