"""The opened bundle: :class:`Bundle`, the object jobs hold.

A :class:`Bundle` is a bundle directory with its manifest read; each payload file is verified
against the manifest on first use. Building lives in :mod:`hepbundle.builder`; framework loaders
(onnxruntime, Keras) in :mod:`hepbundle.loaders`, the hls4ml emulation in
:mod:`hepbundle.fpga.emulation`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .digest import algorithm, sha256_bytes
from .errors import (
    FormatError,
    HepbundleError,
    IntegrityError,
    NotABundleError,
    NotInBundleError,
    VerificationError,
)
from .integrity import IntegrityReport, check_entry, check_layout, check_tree
from .iosig import IOSignature
from .iosig import of as io_signature_of
from .limits import MAX_MANIFEST_BYTES
from .manifest import MANIFEST_FILENAME, FileEntry, Manifest
from .regular import read_regular

if TYPE_CHECKING:
    from .cache import VerificationCache

__all__ = ["Bundle", "check_bundle_dir", "read_manifest_data"]


def check_bundle_dir(root: Path) -> None:
    """Refuse a path that cannot be a bundle: missing, or not a directory."""
    if not root.is_dir():
        why = "it does not exist" if not root.exists() else "it is not a directory"
        raise NotABundleError(f"{root} is not a bundle directory ({why})", path=root)


def read_manifest_data(root: Path) -> bytes:
    """The bytes of ``root/hepbundle.json`` (a bundle directory; size-capped, regular file only),
    unparsed."""
    mpath = root / MANIFEST_FILENAME
    check_bundle_dir(root)
    try:
        return read_regular(mpath, limit=MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise NotABundleError(
            f"{root} is not a bundle: {MANIFEST_FILENAME} is missing", path=root
        ) from None
    except HepbundleError as e:  # not a regular file, or over the size limit
        raise FormatError(e.message, hint=e.hint) from None
    except OSError as e:
        raise IntegrityError(f"cannot read {mpath}: {e.strerror or e}") from None


class Bundle:
    """An opened bundle directory: its manifest, and its files, each verified on first use.

    ``Bundle.path(relpath)`` returns a path only after that file matched its manifest digest (once
    per process; thread-safe). Signature checks are added by :func:`hepbundle.open`.
    """

    def __init__(
        self,
        root: Path,
        manifest: Manifest,
        manifest_digest: str,
        *,
        verify_files: bool = True,
        manifest_data: bytes | None = None,
    ) -> None:
        self.root = root
        self.manifest = manifest
        self.manifest_digest = manifest_digest
        self._manifest_data = manifest_data
        self.verify_files = verify_files
        self._verified: set[str] = set()
        self._lock = threading.Lock()
        #: set by the signing layer once the signature over this manifest has been checked
        self.signature: Any = None
        #: signature file name → SHA-256 of the bytes checked (set with :attr:`signature`);
        #: a publisher copies exactly these (repository/tree.py)
        self.signature_files: dict[str, str] | None = None
        #: node-local verification cache (set by hepbundle.open); None hashes every time
        self.cache: VerificationCache | None = None
        self._io: IOSignature | None = None

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, verify_files: bool = True, data: bytes | None = None
    ) -> Bundle:
        """Read ``hepbundle.json`` of the bundle at ``path`` (no payload hashing); ``data``: its
        bytes, already read by :func:`read_manifest_data` (e.g. to check their signature before
        the entries are parsed)."""
        root = Path(path).absolute()
        mpath = root / MANIFEST_FILENAME
        if data is None:
            data = read_manifest_data(root)
        manifest = Manifest.from_bytes(data, source=str(mpath))
        b = cls(root, manifest, sha256_bytes(data), verify_files=verify_files, manifest_data=data)
        # a malformed io member refuses the bundle at open, as the native library does (the
        # manifest reader has checked it against the schema; this checks the other rules)
        b._io = io_signature_of(manifest.meta, source=f"{mpath}: io", schema_checked=True)
        return b

    def relocated(self, root: Path) -> Bundle:
        """This bundle after its directory was renamed to ``root`` (``publish --move``): the
        same manifest (as read at open), checked signature and signature files and node cache;
        no file counts as verified in the new place."""
        b = Bundle(
            root,
            self.manifest,
            self.manifest_digest,
            verify_files=self.verify_files,
            manifest_data=self._manifest_data,
        )
        b.signature, b.signature_files, b.cache, b._io = (
            self.signature,
            self.signature_files,
            self.cache,
            self._io,
        )
        return b

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def algorithm(self) -> str:
        """The digest algorithm of the manifest's file entries."""
        return self.manifest.algorithm

    def manifest_digest_as(self, alg: str | None = None) -> str:
        """Digest of ``hepbundle.json`` as read at open, in ``alg`` (default: the bundle's own
        algorithm, as the signed statement lists it). :attr:`manifest_digest` is its SHA-256."""
        a = algorithm(alg or self.algorithm)
        if a.name == "sha256":
            return self.manifest_digest
        data = self._manifest_data
        if data is None:
            data = self.manifest_bytes()
        return a.hex(data)

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def io(self) -> IOSignature:
        """The model's I/O signature (manifest ``io``): ``b.io.check(batch)``,
        ``b.io.normalise(batch)``. :class:`NotInBundleError` when the manifest records none."""
        sig = self._io
        if sig is None:
            sig = io_signature_of(self.manifest.meta, source=f"{self.ref}: io")
            if sig is None:
                raise NotInBundleError(
                    f"{self.ref} records no I/O signature (no io section in its manifest)",
                    hint="rebuild it with a model hepbundle can read or an io: section in "
                    "hepbundle.yaml (bundle-spec/io.md)",
                    ref=self.ref,
                )
            self._io = sig
        return sig

    @property
    def ref(self) -> str:
        return self.manifest.ref

    def __repr__(self) -> str:
        return f"<Bundle {self.ref} at {self.root}>"

    def files(self, role: str | None = None) -> list[FileEntry]:
        """Payload entries, optionally of one role."""
        return [f for f in self.manifest.files if role is None or f.role == role]

    def path(self, relpath: str | None = None) -> Path:
        """Absolute path of the bundle (no argument) or of one payload file, verified first."""
        if relpath is None:
            return self.root
        try:
            entry = self.manifest.file(relpath)
        except KeyError:
            import difflib

            close = difflib.get_close_matches(relpath, [f.path for f in self.manifest.files], n=1)
            hint = f"did you mean {close[0]!r}?" if close else None
            raise NotInBundleError(
                f"{self.ref} has no file {relpath!r}", hint=hint, ref=self.ref
            ) from None
        if self.verify_files and relpath not in self._verified:
            with self._lock:
                if relpath not in self._verified:
                    self._check_one(entry)
                    self._verified.add(relpath)
        return self.root / relpath

    def _check_one(self, entry: FileEntry) -> None:
        problem = check_entry(
            self.root, entry, cache=self.cache, manifest_digest=self.manifest_digest
        )
        if problem is not None:
            raise IntegrityError(
                f"{self.ref}: {problem}", ref=self.ref, path=self.root / entry.path
            )

    def verify(
        self, files: Sequence[str] | None = None, *, progress: Callable[[int], None] | None = None
    ) -> IntegrityReport:
        """Check payload files against the manifest (all, plus a scan for extras, when ``files``
        is None). Returns the report; call ``raise_for_problems()`` to turn it into an error."""
        report = check_tree(
            self.root,
            self.manifest,
            files=files,
            progress=progress,
            cache=self.cache,
            manifest_digest=self.manifest_digest,
        )
        if report.ok:
            with self._lock:
                self._verified.update(
                    files if files is not None else (f.path for f in self.manifest.files)
                )
        return report

    def check_layout(self) -> IntegrityReport:
        """Every check of :meth:`verify` that reads no file content (see
        :func:`hepbundle.integrity.check_layout`)."""
        return check_layout(self.root, self.manifest)

    def manifest_bytes(self) -> bytes:
        """The exact bytes of hepbundle.json, checked against the digest read at open."""
        data = read_regular(self.root / MANIFEST_FILENAME, limit=MAX_MANIFEST_BYTES)
        if sha256_bytes(data) != self.manifest_digest:
            raise VerificationError(
                f"{self.ref}: {MANIFEST_FILENAME} changed after the bundle was opened"
            )
        return data
