"""hepbundle: signed, versioned, provenance-carrying bundles of trained ML models for HEP.

The public API is this namespace (``__all__``) and the public modules listed in
docs/reference/api.md; the layer order of the modules is written once, in docs/design.md, and
enforced by the import-linter contract in pyproject.toml.

Example::

    import hepbundle
    b = hepbundle.build("hepbundle.yaml", "out/atlas/tauid/1.0.0")
    b = hepbundle.open("out/atlas/tauid/1.0.0")          # lazy: each file checked on first use
    session_path = b.path("model/model.onnx")
    b = hepbundle.resolve("atlas/tauid@prod")            # search path, yank and catalogue rules
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._base import __version__
from ._base import lazy_exports as _lazy_exports
from .bundle import Bundle
from .errors import (
    BatchError,
    BuildError,
    DataError,
    DriftAlert,
    FormatError,
    HepbundleError,
    IntegrityError,
    MissingExtraError,
    ModelIOError,
    NotABundleError,
    NotFoundError,
    NotInBundleError,
    PathError,
    PolicyError,
    RepositoryError,
    SignatureError,
    SigningError,
    SpecError,
    ToolError,
    UsageError,
    ValidityError,
    VerificationError,
    YankedError,
)
from .integrity import IntegrityReport
from .iosig import IOReport, IOSignature
from .load import open
from .manifest import FileEntry, Manifest

if _TYPE_CHECKING:
    from .builder import BuildPlan, build
    from .policy import TrustPolicy
    from .repository import PublishResult, publish
    from .resolver import Located, locate, resolve
    from .signing import (
        KeySigner,
        Signer,
        SignResult,
        SigstoreSigner,
        VerifyResult,
        X509Signer,
        sign,
        verify,
    )

__all__ = [
    "BatchError",
    "BuildError",
    "BuildPlan",
    "Bundle",
    "DataError",
    "DriftAlert",
    "FileEntry",
    "FormatError",
    "HepbundleError",
    "IOReport",
    "IOSignature",
    "IntegrityError",
    "IntegrityReport",
    "KeySigner",
    "Located",
    "Manifest",
    "MissingExtraError",
    "ModelIOError",
    "NotABundleError",
    "NotFoundError",
    "NotInBundleError",
    "PathError",
    "PolicyError",
    "PublishResult",
    "RepositoryError",
    "SignResult",
    "SignatureError",
    "Signer",
    "SigningError",
    "SigstoreSigner",
    "SpecError",
    "ToolError",
    "TrustPolicy",
    "UsageError",
    "ValidityError",
    "VerificationError",
    "VerifyResult",
    "X509Signer",
    "YankedError",
    "__version__",
    "build",
    "locate",
    "open",
    "publish",
    "resolve",
    "sign",
    "verify",
]

# building, resolving, signing and publishing are imported when first used: a job that only
# opens bundles never loads the build's provenance capture or the signers, and
# model_signing/sigstore load only inside the functions that sign
_LAZY = {
    "BuildPlan": "builder",
    "build": "builder",
    "Located": "resolver",
    "locate": "resolver",
    "resolve": "resolver",
    "KeySigner": "signing",
    "Signer": "signing",
    "SigstoreSigner": "signing",
    "SignResult": "signing",
    "VerifyResult": "signing",
    "X509Signer": "signing",
    "sign": "signing",
    "verify": "signing",
    "TrustPolicy": "policy",
    "PublishResult": "repository",
    "publish": "repository",
}


__getattr__, __dir__ = _lazy_exports(__name__, _LAZY, __all__)
