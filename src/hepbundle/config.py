"""Configuration: every environment variable hepbundle reads, read here and nowhere else.

:data:`VARIABLES` is the one table (docs/configuration.md is checked against it by a test);
:func:`settings` reads the environment at call time into a :class:`Settings` (in the spirit of
twine's ``Settings``), so a test or a job that changes the environment is seen by the next call.
Command-line options override these; the library functions take them as arguments.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VARIABLES", "Settings", "Variable", "cache_dir", "settings", "value"]

log = logging.getLogger("hepbundle")


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, what it means, and its default."""

    name: str
    meaning: str
    default: str = ""


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "HEPBUNDLE_PATH",
        "Repositories a REF is searched in, colon-separated, first match wins (like CALIBPATH).",
        "$HEPBUNDLE_REPO",
    ),
    Variable(
        "HEPBUNDLE_REPO",
        "The repository commands publish to and change (alias, yank, records); searched for a "
        "REF when HEPBUNDLE_PATH is unset.",
        "./hepbundle-repo",
    ),
    Variable(
        "HEPBUNDLE_POLICY",
        "Trust policy YAML every verifying command and `hepbundle.open` applies.",
        "none: signatures cannot be judged (a warning)",
    ),
    Variable(
        "HEPBUNDLE_CACHE_DIR",
        "Root of hepbundle's caches: the node verification cache and the FPGA emulation builds "
        "(`fpga-emulation/`).",
        "$XDG_CACHE_HOME/hepbundle",
    ),
    Variable(
        "HEPBUNDLE_CACHE",
        "Deprecated spelling of HEPBUNDLE_CACHE_DIR (still read, with a warning).",
    ),
    Variable(
        "HEPBUNDLE_RUCIO_TIMEOUT", "Seconds a Rucio request may take (data references).", "30"
    ),
    Variable(
        "HEPBUNDLE_XROOTD_TIMEOUT", "Seconds any one XRootD step may take (root:// inputs).", "30"
    ),
    Variable(
        "HEPBUNDLE_ACTOR",
        "Who `alias` and `yank` record as the actor (a CI job sets e.g. its pipeline URL).",
        "user@host",
    ),
    Variable("HEPBUNDLE_NO_CACHE", "Set (non-empty) to hash every file on every open."),
    Variable(
        "HEPBUNDLE_HASH_THREADS",
        "Threads hashing files in a build or a full verification.",
        "min(8, CPUs)",
    ),
    Variable("HEPBUNDLE_KEY_PASSWORD", "Password of an encrypted private key given with --key."),
    Variable(
        "HEPBUNDLE_CVMFS_ROOT",
        "Where CVMFS repositories are mounted (the cvmfs publisher).",
        "/cvmfs",
    ),
    Variable(
        "HEPBUNDLE_LOCK_DIR",
        "Directory of the cvmfs publisher's local lock files.",
        "the system temporary directory",
    ),
    Variable(
        "HEPBUNDLE_CRASH_AT", "Testing only: crash a publish at this named point (crash tests)."
    ),
    Variable(
        "SOURCE_DATE_EPOCH",
        "Build time (seconds since the epoch) for reproducible builds.",
        "now",
    ),
    Variable("SIGSTORE_ID_TOKEN", "OIDC identity token for keyless signing (--identity-token)."),
    Variable("XDG_CACHE_HOME", "Base of the default cache directory.", "~/.cache"),
    Variable("MLFLOW_TRACKING_URI", "MLflow server of `build --from-mlflow` and `import mlflow`."),
    Variable(
        "RUCIO_CONFIG",
        "Rucio client configuration; with RUCIO_HOME or VIRTUAL_ENV (etc/rucio.cfg), tells "
        "whether Rucio data references can be resolved at build.",
    ),
    Variable(
        "HEPBUNDLE_TRUST_ROOT",
        "Site pin of repository trust roots: sha256:<hex> digests or trust.json copies, by commas.",
    ),
    Variable(
        "HEPBUNDLE_CONTEXT",
        "The job's context, checked against a version's validity scope at resolve "
        "(run=456789,release=CMSSW_15_0_3; what --context / context= give).",
    ),
    Variable(
        "HEPBUNDLE_LEGACY_PINS",
        "Pins of legacy-path lookups (path --legacy): PREFIX=TAG or PREFIX=VERSION entries by "
        "spaces or commas, as a release's CMSSW_DATA_PACKAGE lists them "
        "(RecoTauTag/TrainingFiles=V00-02-02); --pin overrides one prefix.",
    ),
    Variable("RUCIO_HOME", "Rucio client home (etc/rucio.cfg)."),
    Variable("VIRTUAL_ENV", "Virtual environment searched for etc/rucio.cfg."),
    Variable("CUDA_VERSION", "CUDA version recorded in the environment provenance."),
)

_KNOWN = {v.name for v in VARIABLES}


def value(name: str) -> str | None:
    """The raw value of the declared variable ``name`` (None when unset or empty); an undeclared
    name is a ``KeyError``, so every variable read is in :data:`VARIABLES`."""
    if name not in _KNOWN:
        raise KeyError(name)
    return os.environ.get(name) or None


_get = value


def is_set(name: str) -> bool:
    """Whether the declared variable ``name`` is set at all, even to the empty string (for the
    variables where set-but-empty is an error, not an absence: HEPBUNDLE_POLICY)."""
    if name not in _KNOWN:
        raise KeyError(name)
    return name in os.environ


@dataclass(frozen=True)
class Settings:
    """The environment, read once by :func:`settings`."""

    search_path: tuple[Path, ...]
    repo: Path | None
    policy_file: Path | None
    cache_dir: Path
    no_cache: bool
    #: a positive integer, else None (the CPUs this process may use)
    hash_threads: int | None
    key_password: str | None
    cvmfs_root: Path
    lock_dir: Path | None
    crash_at: str | None
    actor: str | None
    #: as written; the remote clients check them (a positive number of seconds)
    rucio_timeout: str | None
    xrootd_timeout: str | None
    #: as written; the build parses it (an invalid value fails the build, nothing else)
    source_date_epoch: str | None
    sigstore_id_token: str | None
    mlflow_tracking_uri: str | None
    rucio_config: str | None
    rucio_home: str | None
    virtual_env: str | None
    cuda_version: str | None
    #: as written; the resolver parses it (bundle-spec/validity.md)
    context: str | None = None
    #: as written; the legacy lookup parses it (importers.legacy.parse_pins)
    legacy_pins: str | None = None

    @property
    def default_repo(self) -> Path:
        """``HEPBUNDLE_REPO``, else ``./hepbundle-repo``."""
        return self.repo or Path("hepbundle-repo")


_warned: set[str] = set()


def cache_dir() -> Path:
    """``HEPBUNDLE_CACHE_DIR``, else the deprecated ``HEPBUNDLE_CACHE``, else
    ``$XDG_CACHE_HOME/hepbundle`` (``~/.cache/hepbundle``)."""
    new, old = _get("HEPBUNDLE_CACHE_DIR"), _get("HEPBUNDLE_CACHE")
    if new:
        return Path(new)
    if old:
        if "HEPBUNDLE_CACHE" not in _warned:
            _warned.add("HEPBUNDLE_CACHE")
            log.warning("HEPBUNDLE_CACHE is deprecated: set HEPBUNDLE_CACHE_DIR instead")
        return Path(old)
    xdg = _get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "hepbundle"


def _positive(name: str) -> int | None:
    text = _get(name)
    return int(text) if text and text.isdigit() and int(text) > 0 else None


def settings() -> Settings:
    """The configuration the environment gives now."""
    path = _get("HEPBUNDLE_PATH")
    repo = _get("HEPBUNDLE_REPO")
    policy = _get("HEPBUNDLE_POLICY")
    lock_dir = _get("HEPBUNDLE_LOCK_DIR")
    return Settings(
        search_path=tuple(Path(p) for p in (path or "").split(os.pathsep) if p),
        repo=Path(repo) if repo else None,
        policy_file=Path(policy) if policy else None,
        cache_dir=cache_dir(),
        no_cache=bool(_get("HEPBUNDLE_NO_CACHE")),
        hash_threads=_positive("HEPBUNDLE_HASH_THREADS"),
        key_password=_get("HEPBUNDLE_KEY_PASSWORD"),
        cvmfs_root=Path(_get("HEPBUNDLE_CVMFS_ROOT") or "/cvmfs"),
        lock_dir=Path(lock_dir) if lock_dir else None,
        crash_at=_get("HEPBUNDLE_CRASH_AT"),
        actor=(_get("HEPBUNDLE_ACTOR") or "").strip() or None,
        rucio_timeout=_get("HEPBUNDLE_RUCIO_TIMEOUT"),
        xrootd_timeout=_get("HEPBUNDLE_XROOTD_TIMEOUT"),
        source_date_epoch=_get("SOURCE_DATE_EPOCH"),
        sigstore_id_token=_get("SIGSTORE_ID_TOKEN"),
        mlflow_tracking_uri=_get("MLFLOW_TRACKING_URI"),
        rucio_config=_get("RUCIO_CONFIG"),
        rucio_home=_get("RUCIO_HOME"),
        virtual_env=_get("VIRTUAL_ENV"),
        cuda_version=_get("CUDA_VERSION"),
        context=_get("HEPBUNDLE_CONTEXT"),
        legacy_pins=_get("HEPBUNDLE_LEGACY_PINS"),
    )
