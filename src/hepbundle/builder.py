"""Build a bundle directory from a spec: plan (validate and capture, write nothing), then write.

A build stages everything in a hidden sibling directory (copy + hash in one read per file,
parallel across files), writes ``hepbundle.json`` last, and renames the stage into place; any
failure removes the stage, so a failed build leaves nothing behind.

The spec's sections are interpreted through one table, :data:`CAPTURES` (section → the layer's
capture function); a caller's own sections (:attr:`BuildOptions.sections`, the command line's
``--fpga-project`` and ``--profile-from``) go through the same table.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._base import __version__, created_timestamp, write_atomic
from .bundle import Bundle
from .digest import DEFAULT_ALGORITHM, algorithm, copy_and_hash, map_files
from .errors import BuildError, PathError
from .filemodes import publish_mode
from .manifest import MANIFEST_FILENAME, FileEntry, Manifest, hashing_for
from .paths import check_collisions, check_relpath, is_reserved
from .provenance import capture as capture_provenance
from .regular import describe_mode
from .spec import BundleSpec, load_spec

if TYPE_CHECKING:
    from ._signers import Signer
    from .repository.publisher import PublishResult
    from .signing import SignResult

__all__ = [
    "CAPTURES",
    "BuildOptions",
    "BuildPlan",
    "Captured",
    "build",
    "build_from_spec",
    "capture",
    "check",
    "plan",
    "plan_files",
    "prepare_output",
    "write",
    "write_and_publish",
]

log = logging.getLogger("hepbundle")
#: an output directory named like a SemVer version (``dist/atlas/x/0.2.0``)
_VERSION_LIKE = re.compile(r"^\d+\.\d+\.\d+([-+].*)?$")


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
    #: spec sections given by the caller instead of (or beside) the spec's own, interpreted by
    #: the same capture table (``build --fpga-project`` gives ``fpga``, ``--profile-from``
    #: gives ``profile``; paths in them are absolute or relative to the spec's directory)
    sections: Mapping[str, Any] = field(default_factory=dict)
    #: digest algorithm of the manifest's file entries (``hepbundle.digest.ALGORITHMS``)
    algorithm: str = DEFAULT_ALGORITHM


@dataclass(frozen=True, slots=True)
class _Planned:
    src: Path
    dest: str
    role: str
    #: the source's size when it was planned (its one ``stat`` of the plan)
    size: int


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
    def source_bytes(self) -> int:
        """Bytes the spec's files add up to (to size a progress bar before writing)."""
        return sum(p.size for p in self.files)

    @property
    def paths(self) -> list[tuple[str, str, int]]:
        """(bundle path, role, size) of every file the bundle will hold, sorted."""
        out = [(p.dest, p.role, p.size) for p in self.files]
        out += [(d, role, len(data)) for d, (data, role) in self.generated.items()]
        return sorted(out)


def plan(spec: BundleSpec, opts: BuildOptions) -> BuildPlan:
    """Validate everything a build of ``spec`` depends on (globs, path rules, provenance capture:
    the git checkout, data references and their checksums, FPGA project, profile) and return what
    it would write. Nothing is written: ``hepbundle build --check``."""
    from .template import check_placeholders

    check_placeholders(spec)
    planned = plan_files(spec)
    unknown = sorted(set(opts.legacy_paths) - {p.dest for p in planned})
    if unknown:
        raise BuildError(f"legacy path given for {unknown[0]!r}, which the spec does not pack")
    for dest, legacy in opts.legacy_paths.items():
        try:
            check_relpath(legacy)
        except PathError as e:
            raise BuildError(f"legacy path of {dest!r}: {e}") from None
    captured = capture(spec, opts, planned)
    generated = {**captured.files, **opts.extra_files}
    clash = sorted(set(generated) & {p.dest for p in planned})
    if clash:
        raise BuildError(f"generated file {clash[0]!r} would overwrite a file of the spec")
    for dest in generated:
        check_relpath(dest)
    check_collisions([*(p.dest for p in planned), *generated])
    return BuildPlan(spec, tuple(planned), generated, _metadata(spec, opts, captured.meta))


def check(spec_path: str | os.PathLike[str], **kw: Any) -> BuildPlan:
    """What :func:`build` of ``spec_path`` would write, checked but not written."""
    return plan(load_spec(spec_path), BuildOptions(**kw))


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
        for src, rel, st in matches:
            size = _check_regular(src, f"{spec.path}:{rule.line}: files:", st)
            dest = _placement(rule.to, src, rel, spec, rule.line)
            if dest in planned and planned[dest].src != src:
                raise BuildError(
                    f"{spec.path}:{rule.line}: {src} and {planned[dest].src} both map to {dest!r}"
                )
            planned.setdefault(dest, _Planned(src, dest, rule.role, size))
    if spec.model_card:
        card = (base / spec.model_card).resolve()
        if not card.is_file():
            raise BuildError(
                f"{spec.where('model_card')}model_card: {spec.model_card} does not exist"
            )
        dest = spec.model_card if _inside(card, base) else f"docs/{card.name}"
        if dest not in planned:
            planned[dest] = _Planned(card, dest, "docs", _check_regular(card, "model_card:"))
    check_collisions(planned)
    return [planned[k] for k in sorted(planned)]


def _check_regular(src: Path, where: str, st: os.stat_result | None = None) -> int:
    """Only regular files are packed: a FIFO would block the build, a device never ends.
    ``st``: ``src``'s stat if the caller has it. Returns the size."""
    try:
        if st is None:
            st = os.stat(src)
    except OSError as e:
        raise BuildError(f"{where} cannot read {src}: {e.strerror}") from None
    mode = st.st_mode
    if not stat.S_ISREG(mode):
        raise BuildError(
            f"{where} {src} is {describe_mode(mode)}; bundles hold regular files only",
            hint="remove it from the packed directory, or exclude it from the glob",
        )
    return st.st_size


def _expand(base: Path, pattern: str) -> list[tuple[Path, str, os.stat_result | None]]:
    """Files matched by ``pattern``, each with its path relative to the pattern's anchor: the
    directory itself for a literal directory, the fixed prefix for a glob, the parent for a file.
    A matched directory contributes every file under it. A literal file (what importers give,
    one rule per file) costs one ``stat``, returned with it (None: not taken)."""
    full = pattern if os.path.isabs(pattern) else str(base / pattern)
    wild = any(c in full for c in "*?[")
    if not wild:
        try:
            st = os.stat(full)
        except OSError:
            return []  # as glob finds nothing (or a dangling link, which is no file)
        if stat.S_ISREG(st.st_mode):
            return [(Path(full), os.path.basename(full), st)]
        if not stat.S_ISDIR(st.st_mode):
            return []  # neither a file nor a directory: matches no file
        anchor, matches = Path(full), [full]
    else:
        fixed = Path(re.split(r"[*?\[]", full, maxsplit=1)[0])
        anchor = fixed if str(fixed).endswith(os.sep) or fixed.is_dir() else fixed.parent
        matches = sorted(glob.glob(full, recursive=True))
    out: list[tuple[Path, str]] = []
    for m in matches:
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
    return [(src, rel.replace(os.sep, "/"), None) for src, rel in out]


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
    alg: str,
    written: dict[str, os.stat_result],
) -> tuple[FileEntry, ...]:
    _make_dirs(stage, (p.dest for p in planned))
    try:
        digests = map_files(
            lambda p: copy_and_hash(
                p.src, stage / p.dest, alg, written=lambda st: written.__setitem__(p.dest, st)
            ),
            planned,
            [p.size for p in planned],
            progress=progress,
        )
    except OSError as e:
        raise BuildError(f"cannot copy {e.filename}: {e.strerror}") from None
    return tuple(
        FileEntry(
            path=p.dest,
            size=d.size,
            digest=d.digest,
            role=p.role,
            legacy_path=legacy.get(p.dest),
            algorithm=alg,
        )
        for p, d in zip(planned, digests, strict=True)
    )


def _write_generated(
    stage: Path,
    generated: Mapping[str, tuple[bytes, str]],
    alg: str,
    written: dict[str, os.stat_result],
) -> tuple[FileEntry, ...]:
    a = algorithm(alg)
    out = []
    _make_dirs(stage, generated)
    for dest, (content, role) in sorted(generated.items()):
        with open(stage / dest, "xb") as f:
            f.write(content)
            f.flush()
            publish_mode(f.name, fd=f.fileno())
            written[dest] = os.fstat(f.fileno())
        out.append(FileEntry(dest, len(content), a.hex(content), role, algorithm=a.name))
    return tuple(out)


def _make_dirs(stage: Path, dests: Iterable[str]) -> None:
    """Make the directories of the bundle paths ``dests`` under ``stage``, each with its public
    mode (files get theirs as they are written: no ``chmod`` after the build moves the identity
    they were recorded with)."""
    dirs: set[str] = set()
    for dest in dests:
        d = os.path.dirname(dest)
        while d and d not in dirs:
            dirs.add(d)
            d = os.path.dirname(d)
    for d in sorted(dirs):  # a parent sorts before its children
        target = stage / d
        try:
            target.mkdir()
        except FileExistsError:
            continue  # made by the other list (files or generated ones)
        publish_mode(target)


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


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def build_from_spec(spec: BundleSpec, opts: BuildOptions) -> Bundle:
    """Build from an already validated spec (importers construct specs in memory)."""
    prepare_output(spec, opts)
    return write(plan(spec, opts), opts)


def prepare_output(spec: BundleSpec, opts: BuildOptions) -> Path:
    """The bundle directory the build writes, refused early (before any capture) when it exists
    and ``force`` is not given, or when ``force`` would replace something that is not a bundle."""
    out = opts.out or Path("dist") / spec.name / spec.version
    if _VERSION_LIKE.match(out.name) and out.name != spec.version:
        raise BuildError(
            f"{out} names version {out.name}, but {spec.where('version')}version: is "
            f"{spec.version}",
            hint=f"set version: {out.name} in the spec, or build into {out.parent / spec.version}",
        )
    if out.exists():
        if not opts.force:
            raise BuildError(
                f"output directory {out} already exists",
                hint="replace it with --force (force=True from Python); a signed bundle then "
                "loses its signatures",
            )
        if not (out / MANIFEST_FILENAME).is_file():
            raise BuildError(f"refusing to replace {out}: it is not a bundle directory")
    return out


def write(work: BuildPlan, opts: BuildOptions) -> Bundle:
    """Write the planned bundle (stage, copy + hash, manifest, rename) and open it."""
    spec = work.spec
    out = prepare_output(spec, opts)
    alg = algorithm(opts.algorithm).name
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    written: dict[str, os.stat_result] = {}
    try:
        entries = _stage_files(stage, work.files, opts.progress, opts.legacy_paths, alg, written)
        entries += _write_generated(stage, work.generated, alg, written)
        entries = tuple(sorted(entries, key=lambda e: e.path))
        manifest = Manifest(
            name=spec.name,
            version=spec.version,
            created=created_timestamp(),
            files=entries,
            hashing=hashing_for(alg),
        ).with_meta(**work.meta)
        write_atomic(stage / MANIFEST_FILENAME, manifest.to_bytes())
        publish_mode(stage)  # mkdtemp made it 0700: a bundle is read by every account
        if opts.force and out.exists():
            signatures = sorted(p.name for p in out.glob("hepbundle*.sig"))
            if signatures:
                log.warning(
                    "replacing %s removes its signatures (%s): sign the new build again",
                    out,
                    ", ".join(signatures),
                )
            shutil.rmtree(out)
        os.rename(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    log.info("built %s (%d files) in %s", manifest.ref, len(entries), out)
    return _vouched(Bundle.load(out), written)


def write_and_publish(
    work: BuildPlan,
    opts: BuildOptions,
    repo: Path,
    *,
    signer: Signer | None,
    alias: str | None = None,
    allow_unsigned: bool = False,
) -> tuple[PublishResult, SignResult | None]:
    """Write the planned bundle straight into a work directory of the local repository
    ``repo``'s staging area (``opts.out`` is not used), sign it with ``signer`` over the digests
    just computed, and publish it by moving it into place (``hepbundle build --publish``): each
    byte is read, hashed and written once, and made durable by the publish's one sync. The
    trust policy is the one :func:`~hepbundle.repository.publish_many` finds
    (``HEPBUNDLE_POLICY``, else the repository's trust root). An identical version already
    published is ``unchanged`` (the new copy is dropped); a different one is refused."""
    from ._base import deferred_sync
    from .repository.publish import publish_many
    from .repository.tree import LiveWorkDir
    from .signing import sign

    spec = work.spec
    label = f"{spec.name.replace('/', '.')}@{spec.version}"
    with LiveWorkDir.in_staging(repo.absolute(), spec.namespace, label) as place:
        with deferred_sync():  # the publish's sync makes it durable, before it is visible
            b = write(work, replace(opts, out=place.path / "bundle", force=False))
            signed = sign(b, signer) if signer is not None else None
        result = publish_many([b], repo, alias=alias, allow_unsigned=allow_unsigned, adopt=True)[0]
    return result, signed


def _vouched(b: Bundle, written: Mapping[str, os.stat_result]) -> Bundle:
    """The built bundle, with every file the build wrote recorded as verified: its digest is of
    the bytes this process wrote, and the identity (inode, size, mtime, ctime) is the file's
    after its last write, its mode already set (:func:`~hepbundle.digest.copy_and_hash`), so
    any later write makes the record miss and the file is hashed again. Recorded in the node
    cache (a later ``sign`` or ``publish`` on this node reads no payload byte twice) or, with
    the cache off, in memory for this object only."""
    from .cache import VerificationCache, default_cache

    cache = default_cache() or VerificationCache(None)
    cache.record(
        b.manifest_digest,
        [
            (e.path, e.digest, b.root / e.path, written[e.path])
            for e in b.manifest.files
            if e.path in written
        ],
    )
    b.cache = cache
    return b


@dataclass
class Captured:
    """What the captures add to a build: manifest sections, and generated files to pack
    (bundle path → (content, role))."""

    meta: dict[str, Any] = field(default_factory=dict)
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)


def _provenance(spec: BundleSpec, opts: BuildOptions, planned: Sequence[_Planned]) -> Captured:
    cap = capture_provenance(spec, allow_dirty=opts.allow_dirty, from_mlflow=opts.from_mlflow)
    return Captured(cap.meta, cap.files)


# the fpga and data layers are imported at use: a build without those sections never imports
# hls4ml readers or numpy


def _fpga(spec: BundleSpec, opts: BuildOptions, planned: Sequence[_Planned]) -> Captured:
    from .fpga.capture import capture_section

    meta, files = capture_section(spec.sections["fpga"], spec.base_dir)
    return Captured({"fpga": meta}, files)


def _profile(spec: BundleSpec, opts: BuildOptions, planned: Sequence[_Planned]) -> Captured:
    from .data.reference import build_extras

    profile = spec.sections["profile"]
    outputs = profile.get("outputs")
    files, meta = build_extras(
        spec.base_dir / profile["from"],
        profile.get("features"),
        outputs=spec.base_dir / outputs if outputs else None,
    )
    return Captured(meta, files)


def _io(spec: BundleSpec, opts: BuildOptions, planned: Sequence[_Planned]) -> Captured:
    from .errors import FormatError
    from .iosig import IOSignature
    from .iosig.capture import capture_io

    if "io" in opts.extra_meta:  # an importer's signature (MLflow's), recorded as given
        try:
            IOSignature.from_json(opts.extra_meta["io"], source=f"{spec.name}: io")
        except FormatError as e:
            raise BuildError(e.message) from None
        return Captured()
    files = {p.dest: (p.src, p.role) for p in planned}  # the plan's own list: no second glob
    section = capture_io(spec, files)
    return Captured({"io": section} if section else {})


def _validity(spec: BundleSpec, opts: BuildOptions, planned: Sequence[_Planned]) -> Captured:
    """The validity scope as written, checked beyond the schema (a run range's last before its
    first, a time range that ends before it starts) and recorded in its normal form."""
    from .errors import FormatError
    from .validity import Scope

    try:
        scope = Scope.from_json(spec.sections["validity"])
    except FormatError as e:
        raise BuildError(f"{spec.where('validity')}{e.message}") from None
    return Captured({"validity": scope.to_json()})


#: The one table of spec sections → the capture that interprets them, in the order they run
#: (a later capture's manifest keys win). Provenance always runs (``--from-mlflow`` fills the
#: training record without a ``training:`` section; ``extra:`` is copied as written), and so
#: does the I/O signature (read from the model without an ``io:`` section).
#: Each capture gets the spec, the options and the planned files (source, bundle path, role).
CAPTURES: tuple[
    tuple[tuple[str, ...], Callable[[BundleSpec, BuildOptions, Sequence[_Planned]], Captured]], ...
] = (
    (("code", "environment", "training", "data", "parents", "extra"), _provenance),
    (("fpga",), _fpga),
    (("profile",), _profile),
    (("io",), _io),
    (("validity",), _validity),
)
_ALWAYS = (_provenance, _io)


def capture(
    spec: BundleSpec, opts: BuildOptions, planned: Sequence[_Planned] | None = None
) -> Captured:
    """Run :data:`CAPTURES` over the spec's sections overlaid with the caller's
    (:attr:`BuildOptions.sections`). A section the caller already filled in ``extra_meta``
    (``fpga``, ``profile``) is not captured again. ``planned``: the spec's files, when the
    caller has planned them (else they are planned here)."""
    if planned is None:
        planned = plan_files(spec)
    if opts.sections:
        spec = replace(spec, sections={**spec.sections, **opts.sections})
    out = Captured()
    for sections, fn in CAPTURES:
        wanted = [s for s in sections if s in spec.sections and s not in opts.extra_meta]
        if wanted or fn in _ALWAYS:
            got = fn(spec, opts, planned)
            out.meta.update(got.meta)
            out.files.update(got.files)
    return out
