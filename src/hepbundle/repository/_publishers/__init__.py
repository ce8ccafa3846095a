"""The publish backends behind :class:`hepbundle.repository.Publisher` (one module each), and
the factory that picks one."""

from __future__ import annotations

import os
from pathlib import Path

from ...config import settings
from ...errors import RepositoryError
from ..publisher import BACKENDS, Publisher

__all__ = ["make_publisher"]


def make_publisher(
    backend: str,
    repo: str | os.PathLike[str] | None = None,
    *,
    lease: str | None = None,
    out: str | os.PathLike[str] | None = None,
) -> Publisher:
    """The publisher of ``backend``. ``repo`` is a directory for ``local`` and ``tarball`` (the
    current repository the catalogue patch is based on) and a repository name for ``cvmfs``."""
    if backend == "local":
        from .local import LocalPublisher

        return LocalPublisher(Path(repo) if repo is not None else settings().default_repo)
    if backend == "cvmfs":
        from .cvmfs import CvmfsServerPublisher

        if repo is None:
            raise RepositoryError(
                "the cvmfs backend needs --repo <repository name>, e.g. ml.cern.ch"
            )
        return CvmfsServerPublisher(str(repo), lease=lease)
    if backend == "tarball":
        from .tarball import TarballPublisher

        base = Path(repo) if repo is not None else settings().default_repo
        return TarballPublisher(Path(out) if out is not None else Path("."), base)
    raise RepositoryError(f"unknown backend {backend!r}", hint=f"use one of {', '.join(BACKENDS)}")
