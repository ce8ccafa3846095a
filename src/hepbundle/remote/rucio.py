"""Rucio DIDs through ``rucio-clients``: what a DID is (type, size, checksums, file count) and
where its replicas are.

Used only where a Rucio client configuration exists (:func:`configured`: ``RUCIO_CONFIG``, then
``$RUCIO_HOME/etc/rucio.cfg``, ``/opt/rucio/etc/rucio.cfg``, ``$VIRTUAL_ENV/etc/rucio.cfg`` — the
places rucio-clients itself looks). Every request is bounded (``HEPBUNDLE_RUCIO_TIMEOUT``
seconds, default 30; one retry) and every failure is one line: :class:`DidNotFound` for a DID
Rucio does not know, :class:`~hepbundle.errors.DataError` for the rest. Checksums come back
lower-case: Rucio stores them as registered, and ``C04A6076`` is the same adler32 as
``c04a6076``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..config import settings
from ..errors import DataError
from ..extras import require
from . import seconds_from_env

__all__ = [
    "DID_RE",
    "TIMEOUT_ENV",
    "DidInfo",
    "DidNotFound",
    "Replicas",
    "configured",
    "did_info",
    "is_did",
    "replicas",
    "split_did",
]

#: scope:name, as the spec schema's ``did`` pattern (scope up to 25, name up to 250 characters)
DID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,25}:[A-Za-z0-9_.+-][A-Za-z0-9_.+/-]{0,249}$")
TIMEOUT_ENV = "HEPBUNDLE_RUCIO_TIMEOUT"
_DEFAULT_TIMEOUT = 30
_T = TypeVar("_T")
# rucio-clients logs every failed request at ERROR on its own handler: we report it once
_QUIET = logging.getLogger("hepbundle.remote.rucio.client")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class DidNotFound(DataError):
    """Rucio answered, and does not know the DID."""


@dataclass(frozen=True, slots=True)
class DidInfo:
    """One DID as Rucio describes it. ``type`` is ``file``, ``dataset`` or ``container``;
    ``bytes`` is a file's size or a collection's total; ``files`` the file count (1 for a file);
    checksums exist for files only."""

    did: str
    type: str
    bytes: int | None
    files: int
    adler32: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class Replicas:
    """Where the files of a DID have replicas: ``available[rse]`` counts files in state
    AVAILABLE there, ``covered`` the files with at least one; ``pfns`` lists (rse, pfn) of each
    file replica."""

    did: str
    files: int
    covered: int = 0
    available: dict[str, int] = field(default_factory=dict)
    pfns: list[tuple[str, str]] = field(default_factory=list)

    @property
    def complete_on(self) -> list[str]:
        """RSEs holding every file."""
        return sorted(r for r, n in self.available.items() if n == self.files)


def configured() -> str | None:
    """The Rucio configuration file in effect, as rucio-clients would find it, or None."""
    s = settings()
    candidates = [s.rucio_config]
    if s.rucio_home:
        candidates.append(os.path.join(s.rucio_home, "etc", "rucio.cfg"))
    candidates += ["/opt/rucio/etc/rucio.cfg"]
    if s.virtual_env:
        candidates.append(os.path.join(s.virtual_env, "etc", "rucio.cfg"))
    return next((c for c in candidates if c and os.path.isfile(c)), None)


def is_did(text: str) -> bool:
    """True for a well-formed Rucio DID ``scope:name``."""
    return bool(DID_RE.match(text))


def split_did(did: str) -> tuple[str, str]:
    scope, sep, name = did.partition(":")
    if not sep or not scope or not name:
        raise DataError(f"{did!r} is not a Rucio DID (scope:name)")
    return scope, name


def timeout() -> int:
    """Seconds any one Rucio request may take (``HEPBUNDLE_RUCIO_TIMEOUT``, default 30)."""
    return seconds_from_env(TIMEOUT_ENV, _DEFAULT_TIMEOUT)


def did_info(did: str) -> DidInfo:
    """Type, size, checksums and file count of ``did`` (one request)."""
    scope, name = split_did(did)
    meta = _call(did, lambda c: c.get_did(scope, name, dynamic_depth="FILE"))
    kind = str(meta.get("type", "")).lower()
    if kind == "file":
        return DidInfo(
            did, kind, _int(meta.get("bytes")), 1, _hex(meta.get("adler32")), _hex(meta.get("md5"))
        )
    return DidInfo(did, kind, _int(meta.get("bytes")), _int(meta.get("length")) or 0)


def replicas(did: str, *, schemes: list[str] | None = None) -> Replicas:
    """The replicas of every file of ``did``, per RSE (one request, streamed)."""
    scope, name = split_did(did)

    def ask(c: Any) -> Replicas:
        files = covered = 0
        available: dict[str, int] = {}
        pfns: list[tuple[str, str]] = []
        for rep in c.list_replicas([{"scope": scope, "name": name}], schemes=schemes):
            files += 1
            here = [
                rse
                for rse, state in (rep.get("states") or {}).items()
                if str(state).upper() == "AVAILABLE"
            ]
            covered += bool(here)
            for rse in here:
                available[rse] = available.get(rse, 0) + 1
            for rse, urls in (rep.get("rses") or {}).items():
                pfns += [(rse, str(u)) for u in urls]
        return Replicas(did, files, covered, available, pfns)

    return _call(did, ask)


def _client() -> Any:
    Client = require("rucio.client").Client
    # rucio-clients caches the first configuration it read for the whole process: read the one
    # in effect now (RUCIO_CONFIG may differ between two builds of one process)
    require("rucio.common.config").clean_cached_config()
    return Client(timeout=timeout(), logger=_QUIET)


def _call(did: str, fn: Callable[[Any], _T]) -> _T:
    """``fn(client)`` with Rucio's and the HTTP layer's failures as one line."""
    exceptions = require("rucio.common.exception")
    DataIdentifierNotFound, RucioException = (
        exceptions.DataIdentifierNotFound,
        exceptions.RucioException,
    )
    import requests

    try:
        return fn(_client())
    except DataIdentifierNotFound:
        raise DidNotFound(f"Rucio does not know the DID {did}") from None
    except RucioException as e:
        raise DataError(f"Rucio could not answer for {did}: {_one_line(e)}") from None
    except (requests.RequestException, OSError) as e:
        raise DataError(
            f"the Rucio server did not answer for {did}: {_one_line(e)}",
            hint=f"is it up? requests wait at most {timeout()} s ({TIMEOUT_ENV}); "
            f"configuration: {configured()}",
        ) from None


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:200] or type(e).__name__


def _hex(value: Any) -> str | None:
    return str(value).lower() if value else None


def _int(value: Any) -> int | None:
    return int(value) if value is not None else None
