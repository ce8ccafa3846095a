"""The limits hepbundle enforces on what it reads, so that no input can hang it, exhaust its
memory or make it print without end. Normative values: ``bundle-spec/README.md`` § Limits, and
``docs/reference/errors.md`` § Limits for what a user sees when one is hit.

Every limit is far above what a real bundle, catalogue or authoring file needs (the largest
real manifests hold a few thousand entries; a catalogue gains one entry per published version).
"""

from __future__ import annotations

__all__ = [
    "MAX_CATALOG_BYTES",
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_MANIFEST_BYTES",
    "MAX_MANIFEST_FILES",
    "MAX_MESSAGE_CHARS",
    "MAX_SIGNATURE_BYTES",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "clip",
]

#: hepbundle.json: bytes and file entries (a 100,000-file manifest is about 15 MB). The byte
#: limit is checked before the JSON is parsed, the entry limit before any entry is examined, so
#: the work done on an unverified manifest is bounded by parsing 32 MB of JSON.
MAX_MANIFEST_BYTES = 32 * 1024 * 1024
MAX_MANIFEST_FILES = 100_000
#: a signature file (hepbundle.sig, hepbundle.<who>.sig, a sigstore bundle)
MAX_SIGNATURE_BYTES = 4 * 1024 * 1024
#: one per-name catalogue file (catalog/<ns>/<name>.json)
MAX_CATALOG_BYTES = 32 * 1024 * 1024
#: any other JSON document hepbundle reads (repository.json, records, profiles, caches)
MAX_JSON_BYTES = 64 * 1024 * 1024
#: nesting of arrays/objects in any JSON document
MAX_JSON_DEPTH = 64
#: authoring YAML (spec, trust policy, import map): bytes, nesting, values after alias expansion
MAX_YAML_BYTES = 4 * 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 200_000
#: one error or report line
MAX_MESSAGE_CHARS = 2000


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 40]}… [{len(text) - limit + 40:,} more characters]"
