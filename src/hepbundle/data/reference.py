"""A bundle's reference profile: what ``build --profile-from`` packs, and what ``drift`` reads.

The profile travels as a payload file (``profile/profile.json``, role ``data``) so the bundle's
signature covers it; the manifest's ``profile`` section points at it and summarises it::

    "profile": {"path": "profile/profile.json", "sha256": "…", "features": 17, "outputs": 0,
                "source": {"path": "train.npz", "sha256": "…", "size": …}}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..digest import sha256_bytes
from ..errors import DataError, SpecError
from ..spec import validate
from .drift import DriftReport, compare
from .profile import MEDIA_TYPE, SCHEMA, profile_bytes, profile_npz

if TYPE_CHECKING:
    from ..bundle import Bundle
    from ..load import VerifyMode
    from ..policy import TrustPolicy

__all__ = [
    "PROFILE_PATH",
    "build_extras",
    "drift_ref",
    "load_profile",
    "open_ref",
]

PROFILE_PATH = "profile/profile.json"


def build_extras(
    npz: str | os.PathLike[str],
    features: Sequence[str] | None = None,
    *,
    outputs: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, tuple[bytes, str]], dict[str, Any]]:
    """Profile ``npz`` and return ``(extra_files, extra_meta)`` for :class:`BuildOptions`."""
    prof = profile_npz(npz, features, outputs=outputs)
    data = profile_bytes(prof)
    kinds = [f["kind"] for f in prof["features"]]
    meta = {
        "profile": {
            "path": PROFILE_PATH,
            "sha256": sha256_bytes(data),
            "features": kinds.count("input"),
            "outputs": kinds.count("output"),
            "source": prof["sources"][0],
        }
    }
    return {PROFILE_PATH: (data, "data")}, meta


def open_ref(
    ref: str | os.PathLike[str],
    repos: Sequence[str | os.PathLike[str]] | None = None,
    *,
    allow_yanked: bool = False,
    policy: TrustPolicy | None = None,
    integrity_only: bool = False,
) -> Bundle:
    """The bundle a reference names (a path, or ``ns/name@version|alias`` in the repositories),
    opened by :func:`hepbundle.resolver.resolve` (search, yank and catalogue rules) with lazy
    verification under the trust policy (``policy``, else the configured one, else the
    repository's trust root); ``integrity_only`` skips signatures, logged."""
    from ..resolver import resolve

    mode: VerifyMode = "integrity" if integrity_only else "lazy"
    return resolve(ref, repos=repos, allow_yanked=allow_yanked, policy=policy, verify=mode)


def load_profile(bundle: Bundle) -> dict[str, Any]:
    """The reference profile packed in ``bundle`` (its digest checked on read)."""
    section = bundle.manifest.meta.get("profile")
    if not isinstance(section, Mapping) or "path" not in section:
        raise DataError(
            f"{bundle.ref} has no reference profile",
            hint="rebuild it with 'hepbundle build --profile-from TRAIN.npz'",
        )
    path = bundle.path(str(section["path"]))
    try:
        prof = json.loads(path.read_bytes())
        validate(prof, SCHEMA, filename=f"{bundle.ref}:{section['path']}")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{bundle.ref}: {section['path']} is not valid JSON: {e}") from None
    except SpecError as e:
        raise DataError(str(e)) from None
    if prof.get("mediaType") != MEDIA_TYPE:
        raise DataError(f"{bundle.ref}: {section['path']} is not a v1 profile")
    assert isinstance(prof, dict)
    return prof


def drift_ref(
    ref: str | os.PathLike[str],
    data: str | os.PathLike[str],
    *,
    outputs: str | os.PathLike[str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    repos: Sequence[str | os.PathLike[str]] | None = None,
    allow_yanked: bool = False,
    policy: TrustPolicy | None = None,
    integrity_only: bool = False,
) -> DriftReport:
    """Compare ``data`` with the reference profile of the bundle ``ref`` names (opened as
    :func:`open_ref` does)."""
    bundle = open_ref(
        ref, repos, allow_yanked=allow_yanked, policy=policy, integrity_only=integrity_only
    )
    return compare(
        load_profile(bundle), data, outputs=outputs, thresholds=thresholds, ref=bundle.ref
    )
