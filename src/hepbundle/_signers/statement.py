"""The OMS v1.0 signing payload and the sigstore bundle around it, written with json alone.

model_signing builds its in-toto statement from protobuf and pydantic models (about 0.3 s of
imports). The statement is small and specified (model_signing's ``signing.Payload``; the
in-toto Statement v1), so it is written here as JSON: the same members and values upstream
writes for the same digests, the subject's SHA-256 over the resource digests in upstream's
order, and the same sigstore bundle v0.3 document around the DSSE envelope.
``tests/test_signing_imports.py`` holds the statement equal to upstream's and has the upstream
``model_signing`` verifier accept what is written here.

A signer that must go through upstream (sigstore keyless; X.509 with a chain) reads
:attr:`Payload.statement` ``.pb``, the protobuf Statement parsed from the same JSON, as
model_signing's own payload offers it.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, cast

from . import IN_TOTO_PAYLOAD_TYPE

if TYPE_CHECKING:
    from model_signing._signing import signing as _oms

__all__ = ["BUNDLE_MEDIA_TYPE", "PREDICATE_TYPE", "Payload", "bundle_json", "oms_payload"]

#: the in-toto statement type and OMS predicate type model_signing writes
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
#: the sigstore bundle media type of an OMS signature file (model_signing's _BUNDLE_MEDIA_TYPE)
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


class _Statement:
    """What upstream signers read of a payload: ``pb``, the in-toto Statement protobuf."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    @property
    def pb(self) -> Any:
        from google.protobuf import json_format  # type: ignore[import-untyped]
        from in_toto_attestation.v1 import statement_pb2

        return json_format.Parse(self._raw, statement_pb2.Statement())


@dataclass(frozen=True)
class Payload:
    """An in-toto statement to sign: ``raw`` is the JSON text the DSSE signature covers."""

    raw: bytes

    @property
    def statement(self) -> _Statement:
        """For signers that go through model_signing: the statement as its protobuf."""
        return _Statement(self.raw)

    def upstream(self) -> _oms.Payload:
        """This payload where model_signing's signers take theirs (they read only
        ``statement.pb``)."""
        return cast("_oms.Payload", self)

    @property
    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.raw)
        return doc


def _path_key(path: str) -> tuple[str, ...]:
    """Upstream's resource order: by ``PurePosixPath`` (component by component), not by text
    (``a/b`` sorts before ``a-b/c``, whose text sorts first)."""
    return PurePosixPath(path).parts


def oms_payload(
    name: str,
    digests: Mapping[str, str],
    ignore: Sequence[str],
    extra: Mapping[str, Any],
    alg: str,
    *,
    extra_key: str,
) -> Payload:
    """The OMS v1.0 statement over ``digests`` (path → hex digest in ``alg``) of a file
    serialization that ignores ``ignore``, with ``extra`` under the predicate's ``extra_key``
    (OMS v1.0: "verifiers ignore other fields"), as model_signing's ``Payload`` of a
    ``Manifest(name, items, _FileSerialization(alg, allow_symlinks=False, ignore_paths))``."""
    root = hashlib.sha256()
    resources = []
    for path in sorted(digests, key=_path_key):
        digest = bytes.fromhex(digests[path])
        root.update(digest)
        resources.append(
            {"name": str(PurePosixPath(path)), "algorithm": alg, "digest": digest.hex()}
        )
    serialization: dict[str, Any] = {"method": "files", "hash_type": alg, "allow_symlinks": False}
    if ignore:
        serialization["ignore_paths"] = [str(PurePosixPath(p)) for p in ignore]
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": root.hexdigest()}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": serialization,
            "resources": resources,
            extra_key: dict(extra),
        },
    }
    # protobuf's MessageToJson layout (indent 2, UTF-8 as is), which upstream signs
    return Payload(json.dumps(statement, indent=2, ensure_ascii=False).encode("utf-8"))


def bundle_json(payload: Payload, signature: bytes, material: Mapping[str, Any]) -> str:
    """The signature file: a sigstore bundle v0.3 whose DSSE envelope carries ``payload`` and
    ``signature`` (over its PAE), with ``material`` as its verification material (``publicKey``
    or ``x509CertificateChain``; no transparency-log entries), laid out as sigstore-models'
    ``Bundle.to_json`` writes it."""
    doc = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {**material, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload.raw).decode("ascii"),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode("ascii"), "keyid": ""}],
        },
    }
    return json.dumps(doc, separators=(",", ":"))
