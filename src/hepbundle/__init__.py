"""hepbundle: signed, versioned, provenance-carrying bundles of trained ML models for HEP.

The layers, bottom to top (each imports only those below it):

``spec``        load + validate ``hepbundle.yaml`` and manifests against ``bundle-spec/``
``digest``      streaming, parallel SHA-256
``provenance``  code pin, environment, data references, training record
``bundle``      build a bundle directory; :class:`Bundle` with per-file lazy verification
``signing``     sign / verify (sigstore keyless, X.509 incl. RSA, EC keys) under a trust policy
``repository``  publish (local, cvmfs, tarball), the catalogue, aliases, yank
``load``        ``open`` / ``resolve`` for production jobs, verification cache, framework loaders
``cli``         the ``hepbundle`` command, a thin layer over the above

Example::

    import hepbundle
    b = hepbundle.build("hepbundle.yaml", "out/atlas/tauid/1.0.0")
    b = hepbundle.open("out/atlas/tauid/1.0.0")          # lazy: each file checked on first use
    session_path = b.path("model/model.onnx")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import __version__
from .bundle import Bundle
from .errors import (
    BuildError,
    FormatError,
    HepbundleError,
    IntegrityError,
    MissingExtraError,
    NotFoundError,
    PathError,
    PolicyError,
    RepositoryError,
    SignatureError,
    SigningError,
    SpecError,
    VerificationError,
)
from .load import open
from .manifest import FileEntry, Manifest

if TYPE_CHECKING:
    from .builder import build
    from .policy import TrustPolicy
    from .repository.publish import publish
    from .resolver import resolve
    from .signing import sign, verify

__all__ = [
    "BuildError",
    "Bundle",
    "FileEntry",
    "FormatError",
    "HepbundleError",
    "IntegrityError",
    "Manifest",
    "MissingExtraError",
    "NotFoundError",
    "PathError",
    "PolicyError",
    "RepositoryError",
    "SignatureError",
    "SigningError",
    "SpecError",
    "TrustPolicy",
    "VerificationError",
    "__version__",
    "build",
    "open",
    "publish",
    "resolve",
    "sign",
    "verify",
]

# building, signing and publishing are imported when first used: a job that only opens bundles
# never loads the build's provenance capture or the signers, and model_signing/sigstore load only
# inside the functions that sign
_LAZY = {
    "build": "builder",
    "resolve": "resolver",
    "sign": "signing",
    "verify": "signing",
    "TrustPolicy": "policy",
    "publish": "repository",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'hepbundle' has no attribute {name!r}")
