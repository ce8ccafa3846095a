"""Export a bundle's provenance as an in-toto Statement v1 with a SLSA provenance v1 predicate.

The statement's subject is the bundle's manifest (name ``ns/name@version``, digest the SHA-256 of
``hepbundle.json``), which lists every payload file by digest. The "build" it describes is the
training run: ``buildDefinition`` holds the code pin and command (external parameters), the
environment (internal parameters) and every input by digest (resolved dependencies: the code
commit, data references, the environment lock, parent bundles); ``runDetails`` the builder and
the run's start/end. Formats: ``slsa`` (the statement), ``intoto`` (the statement in an unsigned
DSSE envelope, ready for a signer), ``json`` (hepbundle's own provenance sections).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .._base import __version__
from ..errors import FormatError
from ..manifest import Manifest, canonical_json

__all__ = [
    "BUILDER_ID",
    "BUILD_TYPE",
    "FORMATS",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "export",
    "export_ref",
    "statement",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: what our buildDefinition means: "a model trained by running code.command on the data"
BUILD_TYPE = "https://hepbundle.cern.ch/buildtypes/model-training/v1"
BUILDER_ID = "https://hepbundle.cern.ch/builder/hepbundle-build/v1"
FORMATS = ("slsa", "intoto", "json")


def export(manifest: Manifest, manifest_digest: str, fmt: str) -> bytes:
    """The provenance of a bundle in ``fmt`` (one of :data:`FORMATS`), as canonical JSON."""
    if fmt == "slsa":
        return canonical_json(statement(manifest, manifest_digest))
    if fmt == "intoto":
        payload = json.dumps(statement(manifest, manifest_digest), sort_keys=True).encode()
        envelope = {
            "payloadType": PAYLOAD_TYPE,
            "payload": base64.b64encode(payload).decode(),
            "signatures": [],
        }
        return canonical_json(envelope)
    if fmt == "json":
        m = manifest.meta
        keep = ("provenance", "data", "parents", "metrics", "hyperparameters")
        return canonical_json(
            {
                "ref": manifest.ref,
                "manifestDigest": manifest_digest,
                **{k: m[k] for k in keep if k in m},
            }
        )
    raise FormatError(f"unknown provenance format {fmt!r} (expected one of: {', '.join(FORMATS)})")


def export_ref(
    ref: str,
    fmt: str,
    *,
    repos: Sequence[str | os.PathLike[str]] | None = None,
    allow_yanked: bool = False,
) -> bytes:
    """:func:`export` for the bundle REF names (a path, or ``ns/name@version`` found by
    :func:`hepbundle.resolver.read_ref`, under its search, yank and catalogue rules)."""
    from ..resolver import read_ref

    _, manifest, digest = read_ref(ref, repos=repos, allow_yanked=allow_yanked)
    return export(manifest, digest, fmt)


def statement(manifest: Manifest, manifest_digest: str) -> dict[str, Any]:
    """The in-toto Statement v1 (SLSA provenance v1 predicate) of a bundle."""
    meta = manifest.meta
    prov: Mapping[str, Any] = meta.get("provenance") or {}
    code: Mapping[str, Any] = prov.get("code") or {}
    env: Mapping[str, Any] = prov.get("environment") or {}
    training: Mapping[str, Any] = prov.get("training") or {}
    external: dict[str, Any] = {"bundle": {"name": manifest.name, "version": manifest.version}}
    if code:
        external["code"] = {
            k: code[k]
            for k in ("remote", "commit", "branch", "tags", "subdirectory", "entryPoint", "command")
            if k in code
        }
    if meta.get("hyperparameters"):
        external["hyperparameters"] = meta["hyperparameters"]
    if training.get("seeds"):
        external["seeds"] = training["seeds"]
    internal: dict[str, Any] = {"hepbundle": meta.get("builder", {}).get("version", __version__)}
    for key in ("host", "imported", "python", "frameworks", "cuda", "container"):
        if key in env:
            internal[f"environment.{key}"] = env[key]
    if code.get("dirty"):
        internal["dirtyTree"] = True
    if training.get("hardware"):
        internal["hardware"] = training["hardware"]
    metadata: dict[str, Any] = {"invocationId": _invocation(training, manifest_digest)}
    if training.get("start"):
        metadata["startedOn"] = training["start"]
    if training.get("end"):
        metadata["finishedOn"] = training["end"]
    build: dict[str, Any] = {
        "buildType": BUILD_TYPE,
        "externalParameters": external,
        "internalParameters": internal,
    }
    run: dict[str, Any] = {
        "builder": {
            "id": BUILDER_ID,
            "version": {"hepbundle": str(meta.get("builder", {}).get("version", ""))},
        },
        "metadata": metadata,
    }
    # empty lists are left out, as protobuf's JSON form of the SLSA messages does
    deps = _dependencies(manifest, code, env)
    if deps:
        build["resolvedDependencies"] = deps
    byproducts = _byproducts(manifest)
    if byproducts:
        run["byproducts"] = byproducts
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": manifest.ref, "digest": {"sha256": manifest_digest}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"buildDefinition": build, "runDetails": run},
    }


def _invocation(training: Mapping[str, Any], manifest_digest: str) -> str:
    run = (training.get("source") or {}).get("mlflow") or {}
    if run.get("run_id"):
        return f"mlflow:{run['run_id']}"
    return f"hepbundle-build:{manifest_digest}"


def _dependencies(
    manifest: Manifest, code: Mapping[str, Any], env: Mapping[str, Any]
) -> list[dict[str, Any]]:
    deps: list[dict[str, Any]] = []
    if code.get("commit"):
        uri = f"git+{code.get('remote', '')}"
        if code.get("branch"):
            uri += f"@refs/heads/{code['branch']}"
        deps.append({"name": "code", "uri": uri, "digest": {"gitCommit": code["commit"]}})
    if code.get("patch"):
        deps.append({"name": code["patch"]["path"], "digest": {"sha256": code["patch"]["sha256"]}})
    lock = env.get("lock") or {}
    if lock:
        deps.append(
            {
                "name": lock["path"],
                "digest": {"sha256": lock["sha256"]},
                "annotations": {"format": lock["format"], "source": lock["source"]},
            }
        )
    container = env.get("container") or {}
    if container:
        rd: dict[str, Any] = {"name": "container", "uri": f"docker://{container['image']}"}
        if container.get("digest"):
            rd["digest"] = {"sha256": container["digest"].split(":", 1)[1]}
        deps.append(rd)
    for ref in manifest.meta.get("data") or []:
        deps.append(_data_descriptor(ref))
    for p in manifest.meta.get("parents") or []:
        deps.append(
            {
                "name": p["ref"],
                "uri": f"hepbundle:{p['ref']}",
                "digest": {"sha256": p["manifestDigest"]},
                "annotations": {"relation": p["relation"]},
            }
        )
    return deps


def _data_descriptor(ref: Mapping[str, Any]) -> dict[str, Any]:
    """A ResourceDescriptor for a data reference; adler32 is not an in-toto standard algorithm
    name but the DigestSet allows others, and it is the checksum Rucio and EOS store."""
    kind = ref["type"]
    digest = {k: str(ref[k]) for k in ("sha256", "md5", "adler32") if ref.get(k)}
    rd: dict[str, Any] = {"annotations": {"type": kind}}
    if kind == "rucio":
        rd.update(name=ref["did"], uri=f"rucio:{ref['did']}")
        rd["annotations"]["resolved"] = bool(ref.get("resolved"))
    elif kind == "opendata":
        rd.update(name=ref.get("doi") or str(ref.get("record")), uri=ref["uri"])
    else:
        path = str(ref["path"])
        rd["name"] = path
        if "://" in path:
            rd["uri"] = path
        rd["annotations"]["verified"] = bool(ref.get("verified"))
    if ref.get("split"):
        rd["annotations"]["split"] = ref["split"]
    if digest:
        rd["digest"] = digest
    return rd


def _byproducts(manifest: Manifest) -> list[dict[str, Any]]:
    """The model files themselves, so a reader of the statement alone sees what was produced."""
    return [
        {"name": f.path, "digest": {f.algorithm: f.digest}}
        for f in manifest.files
        if f.role in ("model", "weights", "firmware", "bitstream")
    ]
