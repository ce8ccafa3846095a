"""The exception tree of hepbundle: one base class the CLI catches, one subclass per failure kind.

HepbundleError                 any failure hepbundle reports to a person (exit code 2 by default)
├── SpecError                  a hepbundle.yaml / mapping / policy file is malformed (names line + field)
├── PathError                  a path breaks the bundle path rules (``..``, absolute, NUL, collisions…)
├── BuildError                 a build could not complete (missing inputs, empty globs…)
├── FormatError                a manifest or catalogue of an unknown or malformed format version
├── VerificationError          exit code 1: the artifact is not what it claims to be
│   ├── IntegrityError         missing, extra or modified files
│   ├── SignatureError         unsigned, malformed or invalid signature
│   ├── PolicyError            signature valid, but the signer is not allowed
│   └── ModelIOError           the model's real inputs/outputs differ from its recorded I/O signature
├── SigningError               a signature could not be made (unreadable or unsupported key/cert)
├── NotABundleError            a path given as a bundle is not one (missing, no hepbundle.json)
├── NotInBundleError           the bundle has no file / model / project of that name (or several)
├── UsageError                 a call's arguments do not fit together or name an unknown mode
├── RepositoryError            publishing / catalogue failures (conflicts, locks, backends)
│   └── NotFoundError          an unknown bundle reference, name, version or alias
│       ├── YankedError        the reference names a yanked version
│       └── ValidityError      the version's validity scope excludes the job's context
├── MissingExtraError          an optional framework is not installed (names the extra)
├── ToolError                  a domain tool failed (FPGA, data, reproduce)
│   └── DataError              unreadable/unsuitable input data (ROOT, NPZ, profile)
│       └── BatchError         a batch does not fit the bundle's I/O signature (io.check)
└── DriftAlert                 exit code 3: new data drifted past an alert threshold
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .limits import clip

__all__ = [
    "BatchError",
    "BuildError",
    "DataError",
    "DriftAlert",
    "FormatError",
    "HepbundleError",
    "IntegrityError",
    "MissingExtraError",
    "ModelIOError",
    "NotABundleError",
    "NotFoundError",
    "NotInBundleError",
    "PathError",
    "PolicyError",
    "RepositoryError",
    "SignatureError",
    "SigningError",
    "SpecError",
    "ToolError",
    "UsageError",
    "ValidityError",
    "VerificationError",
    "YankedError",
]


class HepbundleError(Exception):
    """Base of every error hepbundle raises on purpose. ``str()`` is a one-line message for people."""

    #: process exit code the CLI uses for this kind of error
    exit_code: int = 2

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        ref: str | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        # one line a person can read: a message built from hostile input (a million mismatching
        # file names…) is cut to MAX_MESSAGE_CHARS, saying how much was left out
        message = clip(message)
        super().__init__(message)
        self.message = message
        self.hint = clip(hint, 500) if hint is not None else None
        #: the bundle reference (``ns/name@version``) the error is about, when known
        self.ref = ref
        #: the file or directory the error is about, when known
        self.path = Path(path) if path is not None else None

    def __str__(self) -> str:
        return self.diagnostics()

    def diagnostics(self) -> str:
        """The message plus, when known, what to do next."""
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class SpecError(HepbundleError):
    """An authoring file is malformed; the message names the file, line and field."""


class PathError(HepbundleError):
    """A path breaks the bundle path rules."""


class BuildError(HepbundleError):
    """A bundle build could not complete."""


class FormatError(HepbundleError):
    """A manifest or catalogue file is malformed or of an unknown format version."""


class VerificationError(HepbundleError):
    """The artifact is not what it claims to be."""

    exit_code = 1


class IntegrityError(VerificationError):
    """Files are missing, extra or modified with respect to the manifest; ``report`` is the
    :class:`~hepbundle.integrity.IntegrityReport` listing every problem, when one was made."""

    def __init__(self, message: str, *, report: Any = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.report = report


class SignatureError(VerificationError):
    """The signature is absent, malformed or does not verify."""


class PolicyError(VerificationError):
    """The signature verifies, but the trust policy does not allow its signer."""


class ModelIOError(VerificationError):
    """The model file's real inputs or outputs (names, dtypes, shapes) differ from the I/O
    signature its manifest records: the bundle does not hold the model it describes."""


class SigningError(HepbundleError):
    """A signature could not be made: unreadable or unsupported key, certificate or identity."""


class RepositoryError(HepbundleError):
    """A repository operation failed."""


class NotFoundError(RepositoryError):
    """A bundle reference, name, version or alias does not exist."""


class YankedError(NotFoundError):
    """The reference names a yanked version (refused unless ``allow_yanked``/``--allow-yanked``)."""


class ValidityError(NotFoundError):
    """The version's validity scope (``bundle-spec/validity.md``) excludes the context the job
    gave (``context=``, ``--context``, ``HEPBUNDLE_CONTEXT``)."""


class NotABundleError(HepbundleError):
    """A path given as a bundle is not one: missing, not a directory, or no ``hepbundle.json``."""


class NotInBundleError(HepbundleError):
    """The bundle has no file (model file, hls4ml project) of the name or kind asked for, or
    several where one was expected."""


class UsageError(HepbundleError):
    """A call's arguments do not fit together or name an unknown mode."""


class MissingExtraError(HepbundleError):
    """An optional framework is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"{module} is not installed",
            hint=f"install it with: {install_command(extra)} (hepbundle's {extra!r} extra)",
        )
        self.module = module
        self.extra = extra


class ToolError(HepbundleError):
    """A domain tool (FPGA, data, reproduce) failed."""


class DataError(ToolError):
    """Input data cannot be used: missing file, tree or branch, corrupt ROOT file, bad NPZ."""


class BatchError(DataError):
    """A batch does not fit the bundle's I/O signature (missing input, dtype, shape, a feature
    outside its range); ``report`` is the :class:`~hepbundle.iosig.IOReport`."""

    def __init__(self, message: str, *, report: Any = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.report = report


class DriftAlert(HepbundleError):
    """New data drifted from the bundle's reference profile past an alert threshold."""

    exit_code = 3


_EXTRA_MARKER = re.compile(r"""extra\s*==\s*['"]([^'"]+)['"]""")


def install_command(extra: str, requires: Sequence[str] | None = None) -> str:
    """A pip command that installs hepbundle's ``extra`` where this hepbundle runs.

    hepbundle is installed from a checkout or a wheel, not from a package index, so
    ``pip install 'hepbundle[x]'`` would not work: the command names the extra's own packages
    as the installed metadata declares them (``requires``, default: this installation's), else
    the checkout this module comes from."""
    if requires is None:
        import importlib.metadata as md

        try:
            requires = md.requires("hepbundle") or []
        except md.PackageNotFoundError:
            requires = []
    packages = _extra_packages(extra, requires, set())
    if packages:
        return "pip install " + " ".join(f"'{p}'" for p in packages)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return f"pip install '{checkout}[{extra}]'"
    return f"pip install 'hepbundle[{extra}]' from the hepbundle checkout or wheel"


def _extra_packages(extra: str, requires: Sequence[str], seen: set[str]) -> list[str]:
    seen.add(extra)
    out: list[str] = []
    for line in requires:
        req, _, marker = line.partition(";")
        m = _EXTRA_MARKER.search(marker)
        if m is None or m.group(1) != extra:
            continue
        req = req.strip().replace(" ", "")
        if req.startswith("hepbundle["):
            for sub in req[len("hepbundle[") :].rstrip("]").split(","):
                if sub not in seen:
                    out += [p for p in _extra_packages(sub, requires, seen) if p not in out]
        elif req not in out:
            out.append(req)
    return out
