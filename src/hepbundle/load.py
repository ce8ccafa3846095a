"""Open bundles for use in jobs: by path, with a verification mode and a trust policy.

``lazy`` (default) checks the signatures once at open (no payload hashing) and each file's digest
the first time the job asks for it; ``full`` checks everything up front; ``none`` must be asked
for explicitly and is logged.

The signature rule: with a trust policy (the ``policy`` argument, else the file named by
``HEPBUNDLE_POLICY``) the bundle must be signed by a signer the policy allows for its name, or
opening fails (``unsigned``, ``not allowed``…). Without any policy, signatures cannot be judged:
a signed bundle is opened with a warning ("no trust policy configured: signatures not checked")
and integrity checks only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .bundle import Bundle
from .cache import default_cache
from .errors import HepbundleError, NotFoundError, VerificationError

if TYPE_CHECKING:
    from .policy import TrustPolicy

__all__ = ["VerifyMode", "open", "resolve", "search_path"]

log = logging.getLogger("hepbundle")

VerifyMode = Literal["lazy", "full", "none"]


def open(
    path: str | os.PathLike[str],
    verify: VerifyMode = "lazy",
    policy: TrustPolicy | None = None,
) -> Bundle:
    """Open the bundle directory at ``path``; ``bundle.signature`` holds the signers that
    satisfied the policy (None when signatures were not checked)."""
    if verify not in ("lazy", "full", "none"):
        raise HepbundleError(f"verify must be 'lazy', 'full' or 'none', not {verify!r}")
    bundle = Bundle.load(path, verify_files=verify != "none")
    bundle.cache = default_cache()
    if verify == "none":
        log.warning("opening %s WITHOUT verification (verify='none')", bundle.ref)
        return bundle
    from .signing import check_signatures_for_open  # signing sits above bundle: import at use

    bundle.signature = check_signatures_for_open(bundle, policy)
    if verify == "full":
        bundle.verify().raise_for_problems(bundle.ref)
    return bundle


def search_path(repos: Sequence[str | os.PathLike[str]] | None = None) -> list[Path]:
    """Repositories to search, in order: ``repos``, else ``HEPBUNDLE_PATH`` (colon-separated,
    like ``CALIBPATH``), else ``HEPBUNDLE_REPO``, else ``./hepbundle-repo`` if it exists."""
    if repos:
        return [Path(r) for r in repos]
    env = os.environ.get("HEPBUNDLE_PATH")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    if os.environ.get("HEPBUNDLE_REPO"):
        return [Path(os.environ["HEPBUNDLE_REPO"])]
    if Path("hepbundle-repo").is_dir():
        return [Path("hepbundle-repo")]
    raise NotFoundError(
        "no repository to search",
        hint="set HEPBUNDLE_PATH=/cvmfs/<repo>:<other> or pass --repo",
    )


def resolve(
    ref: str,
    *,
    verify: VerifyMode = "lazy",
    policy: TrustPolicy | None = None,
    allow_yanked: bool = False,
    repos: Sequence[str | os.PathLike[str]] | None = None,
) -> Bundle:
    """Open the bundle a reference names: a path, or ``ns/name@1.2.0``, ``ns/name@prod``,
    ``ns/name`` (the latest release), searching the repositories of :func:`search_path` in
    order; the first repository that knows the name and the version or alias wins.

    Reads only the small per-name catalogue file of each repository, then checks that the
    bundle's manifest digest equals the one the catalogue recorded: a bundle swapped behind the
    catalogue's back is refused. Yanked versions are refused unless ``allow_yanked``.
    """
    from .repository.catalog import read_name_catalog
    from .repository.layout import bundle_dir, catalog_file
    from .repository.refs import parse_ref, shadowing_hint

    parsed = parse_ref(ref)
    if parsed.path is not None:
        return open(parsed.path, verify=verify, policy=policy)
    assert parsed.name is not None
    roots = search_path(repos)
    first_error: NotFoundError | None = None
    for root in roots:
        if not catalog_file(root, parsed.name).is_file():
            continue
        try:
            record = read_name_catalog(root, parsed.name).resolve(parsed.selector)
        except NotFoundError as e:
            first_error = first_error or e
            continue
        if record.yanked is not None:
            msg = f"{parsed.name}@{record.version} is yanked: {record.yanked}"
            if not allow_yanked:
                raise NotFoundError(
                    msg, hint="pin another version, or pass allow_yanked=True / --allow-yanked"
                )
            log.warning("%s (allowed)", msg)
        if parsed.selector != record.version:
            log.info("resolved %s to %s@%s in %s", ref, parsed.name, record.version, root)
        bundle = open(bundle_dir(root, parsed.name, record.version), verify=verify, policy=policy)
        if bundle.manifest_digest != record.manifest_digest:
            raise VerificationError(
                f"{bundle.ref} in {root}: manifest digest sha256:{bundle.manifest_digest[:16]}… differs "
                f"from the catalogue's sha256:{record.manifest_digest[:16]}…",
                hint="the bundle directory was changed behind the catalogue; do not use it",
            )
        if (bundle.name, bundle.version) != (parsed.name, record.version):
            raise VerificationError(
                f"{root}: catalogue entry {parsed.name}@{record.version} holds {bundle.ref}"
            )
        return bundle
    if first_error is not None:
        hint = shadowing_hint(parsed)
        if hint is not None:
            raise NotFoundError(first_error.message, hint=hint)
        raise first_error
    raise NotFoundError(
        f"no bundle named {parsed.name!r} in {', '.join(map(str, roots))}",
        hint="check HEPBUNDLE_PATH, or search with: hepbundle find",
    )
