"""The public API is small and explicit (httpx asserts its export list the same way)."""

from __future__ import annotations

import inspect

import hepbundle


def test_public_names() -> None:
    assert hepbundle.__all__ == [
        "BatchError", "BuildError", "BuildPlan", "Bundle", "DataError", "DriftAlert", "FileEntry",
        "FormatError", "HepbundleError", "IOReport", "IOSignature", "IntegrityError",
        "IntegrityReport", "KeySigner", "Located", "Manifest", "MissingExtraError", "ModelIOError",
        "NotABundleError", "NotFoundError", "NotInBundleError", "PathError",
        "PolicyError", "PublishResult", "RepositoryError", "SignResult", "SignatureError", "Signer",
        "SigningError", "SigstoreSigner", "SpecError", "ToolError", "TrustPolicy", "UsageError",
        "ValidityError", "VerificationError", "VerifyResult", "X509Signer", "YankedError", "__version__", "build",
        "locate", "open", "publish", "resolve", "sign", "verify",
    ]  # fmt: skip


def test_every_public_name_resolves() -> None:
    for name in hepbundle.__all__:
        assert getattr(hepbundle, name) is not None, name


def test_errors_form_one_tree() -> None:
    errors = [getattr(hepbundle, n) for n in hepbundle.__all__ if n.endswith("Error")]
    assert all(issubclass(e, hepbundle.HepbundleError) for e in errors)
    assert hepbundle.IntegrityError.exit_code == 1 and hepbundle.SpecError.exit_code == 2


def test_entry_points_are_typed() -> None:
    for fn in (
        hepbundle.build,
        hepbundle.open,
        hepbundle.resolve,
        hepbundle.publish,
        hepbundle.sign,
    ):
        sig = inspect.signature(fn)
        assert sig.return_annotation is not inspect.Signature.empty, fn
