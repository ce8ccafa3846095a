"""Provenance capture at build time: code pin, environment, data references, training, lineage.

:func:`capture` is the one entry point the build calls. It turns the spec's declarations into
manifest sections filled from the real sources, and generated files to pack:

``code``         → ``provenance.code``        git remotes, commit, branch/tags, dirty state
                                               (+ ``provenance/dirty.patch`` with --allow-dirty)
``environment``  → ``provenance.environment`` lock (+ ``provenance/environment.lock``), container,
                                               platform, CUDA, framework versions (an importer's
                                               ``imported`` lock: no host facts)
``training``     → ``provenance.training``    seeds, start/end, hardware, source; metrics and
                                               hyperparameters go to the top-level fields
``data``         → ``data``                   typed, checked references (:mod:`.datarefs`)
``parents``      → ``parents``                parents pinned by manifest digest (:mod:`.lineage`)

``extra`` is copied as written; ``fpga`` and ``profile`` are captured by their own layers
(the build's table, :data:`hepbundle.builder.CAPTURES`).
:mod:`.slsa` exports a built bundle's provenance as an in-toto / SLSA v1 statement.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import settings
from ._environment import LOCK_PATH, capture_environment, imported_env_file
from ._git import PATCH_PATH, git_output, pin_code, strip_credentials
from ._training import capture_training, split_metric, tracking_uri, write_training_record
from .datarefs import check_data_refs
from .lineage import resolve_parents

if TYPE_CHECKING:
    from ..spec import BundleSpec

__all__ = [
    "Captured",
    "capture",
    "git_output",
    "imported_env_file",
    "split_metric",
    "strip_credentials",
    "tracking_uri",
    "write_training_record",
]


@dataclass(frozen=True)
class Captured:
    """What capture adds to a build: manifest sections, and generated files to pack
    (bundle path → (content, role)), e.g. a dirty-tree diff or an environment lock."""

    meta: dict[str, Any] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)


def capture(
    spec: BundleSpec, *, allow_dirty: bool = False, from_mlflow: str | None = None
) -> Captured:
    """Manifest sections derived from the spec's provenance and data sections (``extra`` copied
    as written); ``from_mlflow`` fills the training record from that MLflow run."""
    s = spec.sections
    base = spec.base_dir
    prov: dict[str, Any] = {}
    out: dict[str, Any] = {}
    files: dict[str, tuple[bytes, str]] = {}
    if "code" in s:
        pin = pin_code(
            s["code"], base, allow_dirty=allow_dirty, where=lambda *k: spec.where("code", *k)
        )
        prov["code"] = pin.record
        if pin.patch is not None:
            files[PATCH_PATH] = (pin.patch, "code")
    if "environment" in s:
        env, lock = capture_environment(
            s["environment"], base, lambda *k: spec.where("environment", *k)
        )
        prov["environment"] = env
        files[LOCK_PATH] = (lock, "config")
    if "training" in s or from_mlflow:
        record, metrics, hyper = capture_training(
            s.get("training", {}), base, lambda *k: spec.where("training", *k), from_mlflow
        )
        prov["training"] = record
        # the spec's own metrics/hyperparameters win over what the run recorded
        own = {(m["name"], m.get("split", "")) for m in spec.metrics}
        out["metrics"] = sorted(
            [*spec.metrics, *(m for m in metrics if (m["name"], m.get("split", "")) not in own)],
            key=lambda r: (r["name"], r.get("split", "")),
        )
        out["hyperparameters"] = {**hyper, **spec.hyperparameters}
    if prov:
        out["provenance"] = prov
    if "data" in s:
        out["data"] = check_data_refs(s["data"], base, lambda i, k=None: _where(spec, "data", i, k))
    if "parents" in s:
        out["parents"] = resolve_parents(
            s["parents"], base, lambda i, k=None: _where(spec, "parents", i, k), settings().repo
        )
    if "extra" in s:
        out["extra"] = s["extra"]
    return Captured(meta=out, files=files)


def _where(spec: BundleSpec, section: str, i: int, key: str | None) -> str:
    return spec.where(section, i, key) if key else spec.where(section, i)
