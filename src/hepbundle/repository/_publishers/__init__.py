"""The publish backends behind :class:`hepbundle.repository.Publisher` (one module each), and
the factory that picks one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...config import settings
from ...errors import RepositoryError
from ..publisher import BACKENDS, Publisher

__all__ = ["make_publisher", "publisher_class"]


def publisher_class(backend: str) -> type[Publisher]:
    """The class of ``backend`` (imported on first use)."""
    if backend == "local":
        from .local import LocalPublisher

        return LocalPublisher
    if backend == "cvmfs":
        from .cvmfs import CvmfsServerPublisher

        return CvmfsServerPublisher
    if backend == "tarball":
        from .tarball import TarballPublisher

        return TarballPublisher
    raise RepositoryError(f"unknown backend {backend!r}", hint=f"use one of {', '.join(BACKENDS)}")


def make_publisher(
    backend: str,
    repo: str | os.PathLike[str] | None = None,
    *,
    lease: str | None = None,
    out: str | os.PathLike[str] | None = None,
) -> Publisher:
    """The publisher of ``backend``. ``repo`` is a directory for ``local`` and ``tarball`` (the
    current repository the catalogue patch is based on) and a repository name for ``cvmfs``."""
    cls: Any = publisher_class(backend)
    if backend == "cvmfs":
        if repo is None:
            raise RepositoryError(
                "the cvmfs backend needs --repo <repository name>, e.g. ml.cern.ch"
            )
        return cls(str(repo), lease=lease)  # type: ignore[no-any-return]
    base = Path(repo) if repo is not None else settings().default_repo
    if backend == "tarball":
        return cls(Path(out) if out is not None else Path("."), base)  # type: ignore[no-any-return]
    return cls(base)  # type: ignore[no-any-return]
