"""Provenance capture at build time: code pin, environment, data references, training, lineage.

This first version copies the declared sections into the manifest as written; the provenance
issue replaces it with real capture (git, environment lock, checked data references).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bundle import BuildOptions
    from .spec import BundleSpec

__all__ = ["Captured", "capture"]


@dataclass(frozen=True)
class Captured:
    """What capture adds to a build: manifest sections, and generated files to pack
    (bundle path → (content, role)), e.g. a dirty-tree diff or an environment lock."""

    meta: dict[str, Any] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)


def capture(spec: BundleSpec, opts: BuildOptions) -> Captured:
    """Manifest sections derived from the spec's provenance, data, FPGA and profile sections."""
    del opts
    out: dict[str, Any] = {}
    for key in ("code", "environment", "training"):
        if key in spec.sections:
            out.setdefault("provenance", {})[key] = spec.sections[key]
    for key in ("data", "parents", "fpga", "profile", "extra"):
        if key in spec.sections:
            out[key] = spec.sections[key]
    return Captured(meta=out)
