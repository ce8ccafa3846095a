"""Clients of the grid data services a data reference names: XRootD (``root://`` files: size
and server-side adler32 without reading the data) and Rucio (DIDs: metadata, contents,
replicas). Each client is imported only when a reference needs it, with bounded timeouts, and
every failure is one line (:class:`~hepbundle.errors.DataError`)."""

from __future__ import annotations

from ..config import value
from ..errors import DataError

__all__ = ["seconds_from_env"]


def seconds_from_env(name: str, default: int) -> int:
    """A positive whole number of seconds from environment variable ``name``, else ``default``."""
    raw = (value(name) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) == 0:
        raise DataError(f"{name}={raw!r} must be a positive number of seconds")
    return int(raw)
