"""Open bundles for use in jobs: by path, with a verification mode and a trust policy (a REF
is resolved to a path by :mod:`hepbundle.resolver`, which then calls :func:`open`).

``lazy`` (default) checks the signatures once at open (no payload hashing) and each file's digest
the first time the job asks for it; ``full`` checks everything up front. ``integrity`` (file
digests only, signatures not checked) and ``none`` must be asked for by name and are logged; a
bundle opened so is never reported as verified (``bundle.signature`` stays None).

Trust by default: the bundle must be signed by a signer the trust policy allows for its name, or
opening fails. The policy is, in order, the ``policy`` argument, the file named by
``HEPBUNDLE_POLICY`` (set but empty or unreadable is an error), or the trust root of the
repository the bundle is published in (:mod:`hepbundle.repository.trust`). Without any of them
the bundle is refused, with a message that says how to configure trust.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .bundle import Bundle
from .cache import default_cache
from .errors import UsageError

if TYPE_CHECKING:
    from .policy import TrustPolicy
    from .signing import VerifyResult

__all__ = ["VerifyMode", "open", "trust_policy_for", "verify"]

log = logging.getLogger("hepbundle")

VerifyMode = Literal["lazy", "full", "integrity", "none"]
_MODES = ("lazy", "full", "integrity", "none")


def open(
    path: str | os.PathLike[str],
    verify: VerifyMode = "lazy",
    policy: TrustPolicy | None = None,
) -> Bundle:
    """Open the bundle directory at ``path``; ``bundle.signature`` holds the signers that
    satisfied the policy (None when signatures were not checked: ``integrity`` or ``none``)."""
    return _open(path, verify, policy, None)


def _open(
    path: str | os.PathLike[str], verify: str, policy: TrustPolicy | None, repo: Path | None
) -> Bundle:
    if verify not in _MODES:
        raise UsageError(f"verify must be one of {', '.join(map(repr, _MODES))}, not {verify!r}")
    if verify in ("lazy", "full"):
        return _open_verified(Path(path).absolute(), verify, policy, repo)
    bundle = Bundle.load(path, verify_files=verify != "none")
    bundle.cache = default_cache()
    if verify == "none":
        log.warning("opening %s WITHOUT verification (verify='none')", bundle.ref)
        return bundle
    if verify == "integrity":
        log.warning(
            "opening %s with INTEGRITY CHECKS ONLY (verify='integrity'): signatures not "
            "checked, the bundle is not verified",
            bundle.ref,
        )
        return bundle
    raise AssertionError(verify)  # lazy and full are _open_verified's


def _open_verified(
    root: Path, verify: str, policy: TrustPolicy | None, repo: Path | None
) -> Bundle:
    """Signatures first: over the manifest's bytes before its entries are parsed (the signed
    statement names the bundle, so the policy and the repository's trust root are known
    before parsing), then every payload digest against the parsed entries."""
    from .bundle import read_manifest_data
    from .signing import verify_manifest_signature, verify_signatures  # above bundle

    data = read_manifest_data(root)
    pre = verify_manifest_signature(
        root, data, lambda name, version: _policy_for(root, name, version, policy, repo)
    )
    bundle = Bundle.load(root, data=data)
    bundle.cache = default_cache()
    if pre is not None:
        verify_signatures(bundle, pre.policy, prechecked=pre)
    else:  # the signatures name no bundle (plain model_signing): judged after parsing
        verify_signatures(bundle, trust_policy_for(bundle, policy, repo))
    if verify == "full":
        bundle.verify().raise_for_problems(bundle.ref)
    return bundle


def trust_policy_for(
    bundle: Bundle, policy: TrustPolicy | None = None, repo: Path | None = None
) -> TrustPolicy:
    """The policy that judges ``bundle``: ``policy``, else ``HEPBUNDLE_POLICY``, else the trust
    root of ``repo`` (default: the repository ``bundle`` is published in); else refused."""
    return _policy_for(bundle.root, bundle.name, bundle.version, policy, repo)


def _policy_for(
    where: Path, name: str, version: str, policy: TrustPolicy | None, repo: Path | None
) -> TrustPolicy:
    """:func:`trust_policy_for` the bundle ``name@version`` in directory ``where``."""
    from .policy import no_policy_error, policy_from_env

    chosen = policy or policy_from_env()
    if chosen is not None:
        return chosen
    from .repository.layout import repository_of_dir
    from .repository.trust import trust_root_for

    ref = f"{name}@{version}"
    root = repo or repository_of_dir(where, name, version)
    found = trust_root_for(root) if root is not None else None
    if found is None:
        at = f" (repository {root} has no trust root)" if root is not None else ""
        raise no_policy_error(f"{ref}{at}")
    log.debug("%s judged by the trust root of %s (%s)", ref, root, found.authenticated_by)
    return found.policy


def verify(
    path: str | os.PathLike[str],
    policy: TrustPolicy | None = None,
    *,
    integrity_only: bool = False,
    files: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerifyResult:
    """What ``hepbundle verify`` does: signatures under :func:`trust_policy_for` (refused
    without a policy), then file digests. ``integrity_only`` skips signatures, logged; the
    result then says ``verified: false``."""
    from .signing import verify as _verify

    b = Bundle.load(path)
    if integrity_only:
        # the result says so itself (verified: false); the log line is for -v
        log.info("%s: INTEGRITY CHECKS ONLY (--integrity-only): signatures not checked", b.ref)
        return _verify(b, integrity_only=True, files=files, progress=progress)
    return _verify(b, trust_policy_for(b, policy), files=files, progress=progress)
