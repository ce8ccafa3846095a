"""Build a bundle directory from a spec, and open one: the :class:`Bundle` object jobs hold.

A build stages everything in a hidden sibling directory (copy + hash in one read per file,
parallel across files), writes ``hepbundle.json`` last, and renames the stage into place; any
failure removes the stage, so a failed build leaves nothing behind.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .digest import copy_and_hash, map_files, sha256_bytes
from .errors import BuildError, HepbundleError, IntegrityError, PathError, VerificationError
from .filemodes import publish_tree
from .integrity import IntegrityReport, check_entry, check_tree
from .manifest import MANIFEST_FILENAME, FileEntry, Manifest, canonical_json
from .paths import check_collisions, check_relpath, is_reserved
from .spec import BundleSpec, load_spec

if TYPE_CHECKING:
    from .cache import VerificationCache
    from .provenance import Captured

__all__ = [
    "BuildOptions",
    "BuildPlan",
    "Bundle",
    "build",
    "build_from_spec",
    "check",
    "created_timestamp",
    "plan",
    "source_bytes",
]

log = logging.getLogger("hepbundle")


@dataclass(frozen=True)
class BuildOptions:
    """Knobs of a build that are not part of the spec."""

    out: Path | None = None
    force: bool = False
    allow_dirty: bool = False
    from_mlflow: str | None = None
    progress: Callable[[int], None] | None = None
    #: extra metadata merged into the manifest by callers (importers, FPGA capture, …)
    extra_meta: Mapping[str, Any] = field(default_factory=dict)
    #: generated files to pack, bundle path → (content, role) (profiles, reports, …)
    extra_files: Mapping[str, tuple[bytes, str]] = field(default_factory=dict)
    #: bundle path → the path the file had in a legacy store (importers; manifest ``legacyPath``)
    legacy_paths: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Planned:
    src: Path
    dest: str
    role: str


def created_timestamp() -> str:
    """UTC build time, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    sde = os.environ.get("SOURCE_DATE_EPOCH")
    if sde is not None:
        try:
            t = int(sde)
        except ValueError:
            raise BuildError(f"SOURCE_DATE_EPOCH={sde!r} is not an integer") from None
    else:
        t = int(time.time())
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def build(
    spec_path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, **kw: Any
) -> Bundle:
    """Build the bundle described by ``spec_path`` into ``out`` (default
    ``./dist/<namespace>/<name>/<version>``) and return it opened with full verification."""
    opts = BuildOptions(out=Path(out) if out is not None else None, **kw)
    return build_from_spec(load_spec(spec_path), opts)


@dataclass(frozen=True)
class BuildPlan:
    """Everything a build will write, worked out without writing anything: the spec's files
    (source, bundle path, role), generated files, and the manifest metadata."""

    spec: BundleSpec
    files: tuple[_Planned, ...]
    generated: Mapping[str, tuple[bytes, str]]
    meta: Mapping[str, Any]

    @property
    def paths(self) -> list[tuple[str, str, int]]:
        """(bundle path, role, size) of every file the bundle will hold, sorted."""
        out = [(p.dest, p.role, p.src.stat().st_size) for p in self.files]
        out += [(d, role, len(data)) for d, (data, role) in self.generated.items()]
        return sorted(out)


def plan(spec: BundleSpec, opts: BuildOptions) -> BuildPlan:
    """Validate everything a build of ``spec`` depends on (globs, path rules, provenance capture:
    the git checkout, data references and their checksums, FPGA project, profile) and return what
    it would write. Nothing is written: ``hepbundle build --check``."""
    planned = plan_files(spec)
    unknown = sorted(set(opts.legacy_paths) - {p.dest for p in planned})
    if unknown:
        raise BuildError(f"legacy path given for {unknown[0]!r}, which the spec does not pack")
    captured = _capture(spec, opts)
    generated = {**captured.files, **opts.extra_files}
    clash = sorted(set(generated) & {p.dest for p in planned})
    if clash:
        raise BuildError(f"generated file {clash[0]!r} would overwrite a file of the spec")
    for dest in generated:
        check_relpath(dest)
    check_collisions([*(p.dest for p in planned), *generated])
    return BuildPlan(spec, tuple(planned), generated, _metadata(spec, opts, captured.meta))


def source_bytes(spec_path: str | os.PathLike[str]) -> int:
    """Bytes the spec's files add up to (globs and stat only), to size a progress bar; 0 when
    the spec is not valid (the build then reports why)."""
    try:
        return sum(p.src.stat().st_size for p in plan_files(load_spec(spec_path)))
    except (HepbundleError, OSError):
        return 0


def check(spec_path: str | os.PathLike[str], **kw: Any) -> BuildPlan:
    """What :func:`build` of ``spec_path`` would write, checked but not written."""
    return plan(load_spec(spec_path), BuildOptions(**kw))


def build_from_spec(spec: BundleSpec, opts: BuildOptions) -> Bundle:
    """Build from an already validated spec (importers construct specs in memory)."""
    out = opts.out or Path("dist") / spec.name / spec.version
    if out.exists():
        if not opts.force:
            raise BuildError(
                f"output directory {out} already exists", hint="use --force to replace it"
            )
        if not (out / MANIFEST_FILENAME).is_file():
            raise BuildError(f"refusing to replace {out}: it is not a bundle directory")
    work = plan(spec, opts)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    try:
        entries = _stage_files(stage, work.files, opts.progress, opts.legacy_paths)
        entries += _write_generated(stage, work.generated)
        entries = tuple(sorted(entries, key=lambda e: e.path))
        manifest = Manifest(
            name=spec.name, version=spec.version, created=created_timestamp(), files=entries
        ).with_meta(**work.meta)
        _write_atomic(stage / MANIFEST_FILENAME, manifest.to_bytes())
        publish_tree(stage)  # mkdtemp made it 0700: a bundle is read by every account
        if opts.force and out.exists():
            shutil.rmtree(out)
        os.rename(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    log.info("built %s (%d files) in %s", manifest.ref, len(entries), out)
    return Bundle.load(out)


def plan_files(spec: BundleSpec) -> list[_Planned]:
    """Expand the spec's globs into (source, bundle path, role), checking the path rules."""
    base = spec.base_dir
    planned: dict[str, _Planned] = {}
    for rule in spec.files:
        matches = _expand(base, rule.pattern)
        if not matches and not rule.optional:
            raise BuildError(
                f"{spec.path}:{rule.line}: files: {rule.pattern!r} matches no file",
                hint="fix the glob or mark the entry 'optional: true'",
            )
        for src, rel in matches:
            dest = _placement(rule.to, src, rel, spec, rule.line)
            if dest in planned and planned[dest].src != src:
                raise BuildError(
                    f"{spec.path}:{rule.line}: {src} and {planned[dest].src} both map to {dest!r}"
                )
            planned.setdefault(dest, _Planned(src, dest, rule.role))
    if spec.model_card:
        card = (base / spec.model_card).resolve()
        if not card.is_file():
            raise BuildError(
                f"{spec.where('model_card')}model_card: {spec.model_card} does not exist"
            )
        dest = spec.model_card if _inside(card, base) else f"docs/{card.name}"
        if dest not in planned:
            planned[dest] = _Planned(card, dest, "docs")
    check_collisions(planned)
    return [planned[k] for k in sorted(planned)]


def _expand(base: Path, pattern: str) -> list[tuple[Path, str]]:
    """Files matched by ``pattern``, each with its path relative to the pattern's anchor: the
    directory itself for a literal directory, the fixed prefix for a glob, the parent for a file.
    A matched directory contributes every file under it."""
    full = pattern if os.path.isabs(pattern) else str(base / pattern)
    wild = any(c in full for c in "*?[")
    if wild:
        fixed = Path(re.split(r"[*?\[]", full, maxsplit=1)[0])
        anchor = fixed if str(fixed).endswith(os.sep) or fixed.is_dir() else fixed.parent
    else:
        anchor = Path(full) if Path(full).is_dir() else Path(full).parent
    out: list[tuple[Path, str]] = []
    for m in sorted(glob.glob(full, recursive=True)):
        mp = Path(m)
        if mp.is_dir():
            for dirpath, dirnames, names in os.walk(mp):
                dirnames.sort()
                out.extend(
                    (Path(dirpath) / n, os.path.relpath(Path(dirpath) / n, anchor))
                    for n in sorted(names)
                )
        elif mp.is_file():
            out.append((mp, os.path.relpath(mp, anchor)))
    return [(src, rel.replace(os.sep, "/")) for src, rel in out]


def _placement(to: str | None, src: Path, rel_to_anchor: str, spec: BundleSpec, line: int) -> str:
    if to is not None:
        to = to.rstrip("/")
        if to:
            try:
                check_relpath(to)
            except PathError as e:
                raise BuildError(f"{spec.path}:{line}: files: to: {e}") from None
        dest = f"{to}/{rel_to_anchor}" if to else rel_to_anchor
    else:
        # keep the path relative to the spec file
        dest = os.path.relpath(src, spec.base_dir).replace(os.sep, "/")
        if dest.startswith("../"):
            raise BuildError(
                f"{spec.path}:{line}: files: {src} lies outside the spec directory",
                hint="say where it goes in the bundle with 'to: <dir>'",
            )
    try:
        check_relpath(dest)
    except PathError as e:
        raise BuildError(f"{spec.path}:{line}: files: {e}") from None
    if is_reserved(dest):
        raise BuildError(f"{spec.path}:{line}: files: {dest!r} is a reserved bundle file name")
    return dest


def _inside(p: Path, base: Path) -> bool:
    try:
        p.relative_to(base.resolve())
        return True
    except ValueError:
        return False


def _stage_files(
    stage: Path,
    planned: Sequence[_Planned],
    progress: Callable[[int], None] | None,
    legacy: Mapping[str, str],
) -> tuple[FileEntry, ...]:
    for d in sorted({str(Path(p.dest).parent) for p in planned}):
        (stage / d).mkdir(parents=True, exist_ok=True)
    try:
        digests = map_files(
            lambda p: copy_and_hash(p.src, stage / p.dest),
            planned,
            [p.src.stat().st_size for p in planned],
            progress=progress,
        )
    except OSError as e:
        raise BuildError(f"cannot copy {e.filename}: {e.strerror}") from None
    return tuple(
        FileEntry(
            path=p.dest, size=d.size, sha256=d.sha256, role=p.role, legacy_path=legacy.get(p.dest)
        )
        for p, d in zip(planned, digests, strict=True)
    )


def _write_generated(
    stage: Path, generated: Mapping[str, tuple[bytes, str]]
) -> tuple[FileEntry, ...]:
    out = []
    for dest, (content, role) in sorted(generated.items()):
        target = stage / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        out.append(FileEntry(path=dest, size=len(content), sha256=sha256_bytes(content), role=role))
    return tuple(out)


def _metadata(spec: BundleSpec, opts: BuildOptions, captured: Mapping[str, Any]) -> dict[str, Any]:
    """Manifest metadata from the spec; provenance sections are filled by the provenance layer."""
    meta: dict[str, Any] = {
        "summary": spec.summary,
        "description": spec.description,
        "authors": list(spec.authors),
        "license": spec.license,
        "tags": list(spec.tags),
        "framework": spec.framework,
        "modelCard": _card_path(spec),
        "metrics": list(spec.metrics),
        "hyperparameters": dict(spec.hyperparameters),
        "builder": {"name": "hepbundle", "version": __version__},
    }
    meta.update(captured)
    meta.update(opts.extra_meta)
    return meta


def _card_path(spec: BundleSpec) -> str | None:
    if not spec.model_card:
        return None
    card = (spec.base_dir / spec.model_card).resolve()
    return spec.model_card if _inside(card, spec.base_dir) else f"docs/{card.name}"


def _capture(spec: BundleSpec, opts: BuildOptions) -> Captured:
    """Provenance and data references (the provenance layer), then the spec's ``fpga:`` and
    ``profile:`` sections, each interpreted by its own domain layer. Those are imported here, at
    use, so a build without them never imports hls4ml or the NPZ tools, and so a library caller
    of :func:`build` gets exactly what the command line gets. A caller that already supplied the
    section (``extra_meta``, e.g. ``build --fpga-project``) wins."""
    from .provenance import capture

    cap = capture(spec, opts)
    fpga = spec.sections.get("fpga")
    if fpga and "fpga" not in opts.extra_meta:
        from .fpga.capture import capture_section

        meta, files = capture_section(fpga, spec.base_dir)
        cap.meta["fpga"] = meta
        cap.files.update(files)
    profile = spec.sections.get("profile")
    if profile and "profile" not in opts.extra_meta:
        from .data.reference import build_extras

        outputs = profile.get("outputs")
        files, meta = build_extras(
            spec.base_dir / profile["from"],
            profile.get("features"),
            outputs=spec.base_dir / outputs if outputs else None,
        )
        cap.meta.update(meta)
        cap.files.update(files)
    return cap


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Bundle:
    """An opened bundle directory: its manifest, and its files, each verified on first use.

    ``Bundle.path(relpath)`` returns a path only after that file matched its manifest digest (once
    per process; thread-safe). Signature checks are added by :func:`hepbundle.open`.
    """

    def __init__(
        self, root: Path, manifest: Manifest, manifest_digest: str, *, verify_files: bool = True
    ) -> None:
        self.root = root
        self.manifest = manifest
        self.manifest_digest = manifest_digest
        self.verify_files = verify_files
        self._verified: set[str] = set()
        self._lock = threading.Lock()
        #: set by the signing layer once the signature over this manifest has been checked
        self.signature: Any = None
        #: node-local verification cache (set by hepbundle.open); None hashes every time
        self.cache: VerificationCache | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, verify_files: bool = True) -> Bundle:
        """Read ``hepbundle.json`` of the bundle at ``path`` (no payload hashing)."""
        root = Path(path).absolute()
        mpath = root / MANIFEST_FILENAME
        if not root.is_dir():
            why = "it does not exist" if not root.exists() else "it is not a directory"
            raise BuildError(f"{root} is not a bundle directory ({why})")
        try:
            data = mpath.read_bytes()
        except FileNotFoundError:
            raise IntegrityError(
                f"{root} is not a bundle: {MANIFEST_FILENAME} is missing"
            ) from None
        manifest = Manifest.from_bytes(data, source=str(mpath))
        return cls(root, manifest, sha256_bytes(data), verify_files=verify_files)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

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
            raise HepbundleError(f"{self.ref} has no file {relpath!r}", hint=hint) from None
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
            raise IntegrityError(f"{self.ref}: {problem}")

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

    # framework loaders (imported at use: a job that never asks for TensorFlow never imports it)

    def onnx_session(self, relpath: str | None = None, **kwargs: Any) -> Any:
        """An onnxruntime ``InferenceSession`` on the verified ONNX model (``hepbundle[onnx]``)."""
        from .loaders import onnx_session

        return onnx_session(self, relpath, **kwargs)

    def keras_model(self, relpath: str | None = None, *, compile: bool = False) -> Any:
        """The verified Keras model (``hepbundle[fpga]`` brings TensorFlow)."""
        from .loaders import keras_model

        return keras_model(self, relpath, compile=compile)

    def hls4ml_model(self, project: str | None = None, **kwargs: Any) -> Any:
        """The compiled bit-accurate emulation of the packed hls4ml project (``hepbundle[fpga]``)."""
        from .loaders import hls4ml_model

        return hls4ml_model(self, project, **kwargs)

    def manifest_bytes(self) -> bytes:
        """The exact bytes of hepbundle.json, checked against the digest read at open."""
        data = (self.root / MANIFEST_FILENAME).read_bytes()
        if sha256_bytes(data) != self.manifest_digest:
            raise VerificationError(
                f"{self.ref}: {MANIFEST_FILENAME} changed after the bundle was opened"
            )
        return data


def json_dump(obj: Any) -> bytes:
    """Canonical JSON bytes (re-exported for the layers above)."""
    return canonical_json(obj)
