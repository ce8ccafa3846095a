"""Publishing: verify a bundle, then hand it to one :class:`Publisher` backend.

The interface (:class:`Publisher`, :class:`PublishRequest`, :class:`PublishResult`) lives in
:mod:`.publisher`, below the backends that implement it (``_publishers/``), whose factory
:func:`make_publisher` sits beside them in ``_publishers/__init__``.

The backends (``local``: a directory, the embedded default; ``cvmfs``: ``cvmfs_server
transaction/publish/abort`` on a Stratum-0; ``tarball``: files for ``cvmfs_server ingest``) share
one interface, so the verification and the catalogue logic are written once::

    import hepbundle.repository as repo
    result = repo.publish("dist/atlas/tauid/1.2.0", "./hepbundle-repo", alias="prod")
    print(result.status, result.serial)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..bundle import Bundle
from ..config import settings
from ..errors import HepbundleError, RepositoryError, SignatureError
from ._move import check_movable
from ._publishers import make_publisher, publisher_class
from .catalog import VersionRecord, check_alias
from .publisher import Publisher, PublishRequest, PublishResult
from .tree import copy_bytes, in_batch

if TYPE_CHECKING:
    from .._signers import Signer
    from ..policy import TrustPolicy

__all__ = [
    "check_publishable",
    "default_repo",
    "publish",
    "publish_bytes",
    "publish_many",
    "verify_for_publish",
]

log = logging.getLogger("hepbundle")


def default_repo() -> Path:
    """``HEPBUNDLE_REPO``, else ``./hepbundle-repo``."""
    return settings().default_repo


def verify_for_publish(
    bundle: Bundle,
    *,
    policy: TrustPolicy | None = None,
    allow_unsigned: bool = False,
    progress: Callable[[int], None] | None = None,
    contents: bool = True,
) -> tuple[str, ...]:
    """Check the files, then the signatures under ``policy``; return signer identities.

    ``contents=True`` checks every file digest (reading each byte once); ``contents=False``
    checks everything but the content (path rules, missing/extra files, symlinks, sizes) for a
    publisher that verifies each byte as it copies it. An unsigned bundle is refused unless
    ``allow_unsigned``; a signed one is always verified.
    """
    if contents:
        bundle.verify(progress=progress).raise_for_problems(bundle.ref)
    else:
        bundle.check_layout().raise_for_problems(bundle.ref)
    return _signers(bundle, policy, allow_unsigned)


def _signers(bundle: Bundle, policy: TrustPolicy | None, allow_unsigned: bool) -> tuple[str, ...]:
    """The signature part of :func:`verify_for_publish`: the signers' identities under
    ``policy``; an unsigned bundle refused unless ``allow_unsigned``."""
    from .. import signing  # the signing layer: only publishers pay for importing it

    if not signing.is_signed(bundle):
        if not allow_unsigned:
            raise SignatureError(
                f"{bundle.ref} is unsigned; refusing to publish it",
                hint="sign it with 'hepbundle sign', or pass --allow-unsigned (local/tarball only)",
            )
        log.warning("publishing UNSIGNED bundle %s (allow_unsigned)", bundle.ref)
        bundle.signature_files = {}
        return ()
    return tuple(s.identity for s in signing.verify_signatures(bundle, policy))


def publish(
    bundle: str | os.PathLike[str] | Bundle,
    repo: str | os.PathLike[str] | None = None,
    *,
    backend: str = "local",
    alias: str | None = None,
    allow_unsigned: bool = False,
    policy: TrustPolicy | None = None,
    lease: str | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: Callable[[int], None] | None = None,
    statement_signer: Signer | None = None,
    expires_days: float | None = None,
    move: bool = False,
) -> PublishResult:
    """Verify ``bundle`` (digests, signature, policy) and publish it with ``backend``.

    Nothing is made visible before the verification passed: every backend checks layout and
    signatures first and every digest on the copy into the repository or the tar (one read of
    each byte). See :func:`make_publisher`, and
    :func:`publish_many` for the policy, the trust root, ``statement_signer`` and ``move``."""
    return publish_many(
        [bundle],
        repo,
        backend=backend,
        alias=alias,
        allow_unsigned=allow_unsigned,
        policy=policy,
        lease=lease,
        out=out,
        progress=progress,
        statement_signer=statement_signer,
        expires_days=expires_days,
        move=move,
    )[0]


def publish_many(
    bundles: Sequence[str | os.PathLike[str] | Bundle],
    repo: str | os.PathLike[str] | None = None,
    *,
    backend: str = "local",
    alias: str | None = None,
    allow_unsigned: bool = False,
    policy: TrustPolicy | None = None,
    lease: str | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: Callable[[int], None] | None = None,
    statement_signer: Signer | None = None,
    expires_days: float | None = None,
    aliases: Sequence[Sequence[str]] | None = None,
    stage: Callable[[str], None] | None = None,
    adopt: bool = False,
    move: bool = False,
) -> list[PublishResult]:
    """Verify every bundle, then publish them all in one step of ``backend``: all or nothing.

    Every bundle is verified (digests, signature, policy) and checked against the catalogue
    before anything is written; the first refusal raises, naming the bundle, and nothing is
    published. Then the backend publishes the batch at once: one lock and one index transaction
    (local), ONE ``cvmfs_server transaction`` … ``publish`` (cvmfs), one catalogue patch
    (tarball). ``alias`` points that alias of every name at its bundle (a name given twice
    with an alias is refused); ``aliases`` (one sequence per bundle) points more aliases at
    each bundle, applied in order. The results are in the order of ``bundles``. This is the API
    importers publish through::

        results = repo.publish_many(["dist/a/x/1.0.0", "dist/a/y/2.1.0"], "ml.cern.ch",
                                    backend="cvmfs", policy=policy)

    The policy is ``policy``, else ``HEPBUNDLE_POLICY``, else the repository's trust root; a
    signed bundle with none is refused. The first publish into a new local repository writes
    that policy as the trust root (as given: ``hepbundle repo init`` also has the catalogue
    signed). ``statement_signer`` signs the catalogue statements, required when the policy
    signs a name's catalogue; ``expires_days`` puts an expiry in them. ``stage`` is told what
    is being done (``verifying <ref>``, ``publishing into <repo>``); ``progress`` is given
    :func:`publish_bytes` bytes in all. ``adopt`` (local backend; importers): every bundle was
    built by this process in a :class:`~.tree.LiveWorkDir` of this repository and is moved into
    place after the same checks, from the build's records, instead of copied. ``move`` (local
    backend; ``hepbundle publish --move``): every bundle directory, on the repository's file
    system, is renamed into the staging area, checked there (the build's records in the node
    cache, else one hash of each file; see ``repository/_move.py``) and moved into place: it is
    gone from where it was, or put back when nothing is published. A version already published
    with the same content (``unchanged``) is not moved.
    """
    say = stage or (lambda _text: None)
    if (adopt or move) and backend != "local":
        raise ValueError("adopt and move publish into a local repository")
    if adopt and move:
        raise ValueError("adopt and move exclude each other")
    if not bundles:
        raise RepositoryError("nothing to publish: no bundle given")
    if aliases is not None and len(aliases) != len(bundles):
        raise ValueError("aliases needs one sequence of aliases per bundle")
    for names_ in aliases or ():
        for a in names_:
            check_alias(a)
    publisher = make_publisher(backend, repo, lease=lease, out=out)
    requests: list[PublishRequest] = []
    loaded = [
        b if isinstance(b, Bundle) else _load(b, i, len(bundles)) for i, b in enumerate(bundles)
    ]
    names = [b.name for b in loaded]
    if alias is not None and len(set(names)) < len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise RepositoryError(
            f"--alias {alias} with two versions of {dup} in one batch is ambiguous",
            hint="publish the version the alias should name on its own, or set it afterwards",
        )
    from .trust import accept_trust_root

    fresh, given = _publish_policy(publisher, backend, policy)
    root_policy = given if fresh else None
    for i, b in enumerate(loaded):
        more = tuple(aliases[i]) if aliases is not None else ()
        try:
            if move:
                check_movable(b, publisher.root)
            say(f"verifying {b.ref}")
            signers = _check_bundle(
                b, publisher, given, ((alias,) if alias is not None else ()) + more,
                allow_unsigned=allow_unsigned, progress=progress, adopt=adopt,
            )  # fmt: skip
        except HepbundleError as e:
            raise in_batch(e, b.ref, i, len(loaded)) from None
        record = VersionRecord.from_bundle(b, signers=signers)
        requests.append(
            PublishRequest(
                b,
                record,
                alias,
                progress,
                more_aliases=more,
                trust_root=root_policy,
                statement_signer=statement_signer,
                policy=given,
                expires_days=expires_days,
                adopt=adopt,
                move=move,
            )
        )
    say(f"publishing into {publisher.root} ({backend})")
    results = publisher.publish_batch(requests)
    if fresh and given is not None and backend == "local":
        accept_trust_root(publisher.root)  # the operator's own first publish, on this node
    return results


def check_publishable(
    bundles: Sequence[Bundle],
    repo: str | os.PathLike[str],
    *,
    backend: str = "local",
    policy: TrustPolicy | None = None,
    allow_unsigned: bool = False,
    aliases: Sequence[Sequence[str]] | None = None,
    adopt: bool = False,
) -> list[HepbundleError | None]:
    """What :func:`publish_many` would refuse of each bundle on its own (None: nothing), writing
    nothing: the checks of its verification (layout, signatures under the policy it would use,
    approvals its ``aliases`` need), then the repository's catalogue — the version published
    with other content, a directory in its place the catalogue does not know, an alias it
    cannot take. For a caller that publishes the others (``hepbundle import --keep-going``);
    :func:`publish_many` checks everything again, under the repository's lock. ``adopt``: as
    for :func:`publish_many` (the layout is checked when the bundle is staged)."""
    from .catalog import read_name_catalog
    from .tree import check_not_conflicting, check_place_free

    publisher = make_publisher(backend, repo)
    _fresh, given = _publish_policy(publisher, backend, policy)
    out: list[HepbundleError | None] = []
    for i, b in enumerate(bundles):
        more = tuple(aliases[i]) if aliases is not None else ()
        try:
            _check_bundle(b, publisher, given, more, allow_unsigned=allow_unsigned, adopt=adopt)
            rec = VersionRecord.from_bundle(b)
            # (no repository yet: an empty catalogue, and a directory in the way still refused)
            cat = read_name_catalog(publisher.root, b.name, missing_ok=True)
            if not check_not_conflicting(cat, rec):
                check_place_free(publisher.root, b.name, b.version)
                cat = cat.with_version(rec)
            for a in more:
                cat = cat.with_alias(a, rec.version)
        except HepbundleError as e:
            out.append(e)
        else:
            out.append(None)
    return out


def _publish_policy(
    publisher: Publisher, backend: str, policy: TrustPolicy | None
) -> tuple[bool, TrustPolicy | None]:
    """Whether the publish creates the repository, and the policy it verifies under: a new
    repository gets its trust root from the first publish (written by the local backend,
    carried in the catalogue patch by the tarball backend; cvmfs publishes into an existing
    one) from ``policy`` or ``HEPBUNDLE_POLICY``; an existing one's policy is its trust root's
    (:func:`.trust.repository_policy`)."""
    from ..policy import policy_from_env
    from .layout import is_repository
    from .trust import repository_policy

    fresh = backend in ("local", "tarball") and not is_repository(publisher.root)
    given = (policy or policy_from_env()) if fresh else repository_policy(publisher.root, policy)
    return fresh, given


def _check_bundle(
    b: Bundle,
    publisher: Publisher,
    given: TrustPolicy | None,
    aliases: Sequence[str],
    *,
    allow_unsigned: bool,
    progress: Callable[[int], None] | None = None,
    adopt: bool = False,
) -> tuple[str, ...]:
    """Refuse ``b`` unless ``publisher`` may publish it under ``given`` with ``aliases`` pointed
    at it (approvals, a policy for a signed bundle, unsigned bundles, its verification); the
    signer identities. ``adopt``: ``b`` was built in the local repository's staging area, and
    its files are checked where they will be moved, under the lock, just before the move (every
    file against the build's records, the extras scan: the backend's staging step), so only its
    signatures are checked here (a layout check would be a third pass over its files)."""
    from ..policy import no_policy_error

    for a in aliases:
        if given is not None and given.required_approvals(b.name, a):
            raise RepositoryError(
                f"the trust policy requires approvals to point {b.name}@{a} at a version",
                hint=f"publish without --alias, have each role run 'hepbundle approve "
                f"{b.ref} --as ROLE', then 'hepbundle alias {b.ref} {a}'",
            )
    if given is None and _is_signed(b):
        raise no_policy_error(f"publishing {b.ref} into {publisher.root}")
    if allow_unsigned and not publisher.accepts_unsigned and not _is_signed(b):
        raise SignatureError(
            f"{b.ref} is unsigned and the {publisher.backend} backend never publishes unsigned "
            "bundles",
            hint="sign it with 'hepbundle sign' first",
        )
    if adopt:
        return _signers(b, given, allow_unsigned)
    return verify_for_publish(
        b,
        policy=given,
        allow_unsigned=allow_unsigned,
        progress=progress,
        contents=not publisher.verifies_on_copy,
    )


def publish_bytes(bundles: Sequence[Bundle], backend: str = "local") -> int:
    """The bytes :func:`publish_many` reports to its ``progress`` callback: every file it
    copies (payload, manifest, signatures) once where the backend verifies as it copies
    (every backend here); the payload verified first, then the copy, for one that does not."""
    verify = not publisher_class(backend).verifies_on_copy
    return sum(
        copy_bytes(b) + (sum(f.size for f in b.manifest.files) if verify else 0) for b in bundles
    )


def _load(path: str | os.PathLike[str], i: int, n: int) -> Bundle:
    try:
        return Bundle.load(path)
    except HepbundleError as e:
        raise in_batch(e, str(path), i, n) from None


def _is_signed(bundle: Bundle) -> bool:
    from ..signing import is_signed

    return is_signed(bundle)
