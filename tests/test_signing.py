"""Signing and signature verification through the library: every signer kind, the tamper cases,
co-signatures, directories, and the trust-policy file."""

from __future__ import annotations

from pathlib import Path

import pytest

import hepbundle
from hepbundle import signing
from hepbundle.errors import PolicyError, SignatureError
from hepbundle.policy import TrustPolicy


def test_signed_fixture_verifies(signed: hepbundle.Bundle, ec_key: tuple[Path, Path]) -> None:
    policy = TrustPolicy.from_flags(keys=[ec_key[1]])
    signers = signing.verify_signatures(signed, policy)
    assert [s.kind for s in signers] == ["key"]
    assert signers[0].identity.startswith("sha256:")
    b = hepbundle.open(signed.root, policy=policy)
    assert b.signature == signers


def test_unsigned_with_policy_fails(built: hepbundle.Bundle, ec_key: tuple[Path, Path]) -> None:
    with pytest.raises(SignatureError, match="unsigned"):
        hepbundle.open(built.root, policy=TrustPolicy.from_flags(keys=[ec_key[1]]))
