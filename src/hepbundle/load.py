"""Open bundles for use in jobs: by path, with a verification mode and a trust policy (a REF
is resolved to a path by :mod:`hepbundle.resolver`, which then calls :func:`open`).

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
from typing import TYPE_CHECKING, Literal

from .bundle import Bundle
from .cache import default_cache
from .errors import UsageError

if TYPE_CHECKING:
    from .policy import TrustPolicy

__all__ = ["VerifyMode", "open"]

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
        raise UsageError(f"verify must be 'lazy', 'full' or 'none', not {verify!r}")
    bundle = Bundle.load(path, verify_files=verify != "none")
    bundle.cache = default_cache()
    if verify == "none":
        log.warning("opening %s WITHOUT verification (verify='none')", bundle.ref)
        return bundle
    from .signing import check_signatures_for_open  # at use: verify='none' never loads signers

    bundle.signature = check_signatures_for_open(bundle, policy)
    if verify == "full":
        bundle.verify().raise_for_problems(bundle.ref)
    return bundle
