"""Open bundles for use in jobs: by path, with a verification mode.

``lazy`` (default) checks each file's digest the first time the job asks for it; ``full``
checks everything up front; ``none`` must be asked for explicitly and is logged.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

from .bundle import Bundle
from .errors import HepbundleError

__all__ = ["VerifyMode", "open"]

log = logging.getLogger("hepbundle")

VerifyMode = Literal["lazy", "full", "none"]


def open(path: str | os.PathLike[str], verify: VerifyMode = "lazy") -> Bundle:
    """Open the bundle directory at ``path``."""
    if verify not in ("lazy", "full", "none"):
        raise HepbundleError(f"verify must be 'lazy', 'full' or 'none', not {verify!r}")
    bundle = Bundle.load(path, verify_files=verify != "none")
    if verify == "none":
        log.warning("opening %s WITHOUT verification (verify='none')", bundle.ref)
    elif verify == "full":
        bundle.verify().raise_for_problems(bundle.ref)
    return bundle
