"""The scan of a store directory, and the plan's inventory: every entry of the store with a
verdict, so that nothing is dropped without a word.

:func:`scan_tree` lists every entry below the root as ``lstat`` sees it — files, directories,
symlinks, special files — and refuses what must never be packed: an unreadable directory (its
entries cannot be listed) or file, a dangling or looping symlink, a symlink whose target leaves
the store (unless the target lies under a directory explicitly allowed), a FIFO or device, a
name that is not UTF-8. Directory symlinks are never followed: one that names the directory of
a planned version (``current -> 00-02-00``) becomes an alias of that version
(:func:`link_aliases`); any other is listed as skipped with the reason.

:func:`take_inventory` then gives each entry its verdict from the plan: ``imported`` (into which
bundle, at which path), ``skipped`` (the rule that left it out) or ``refused`` (the reason). A
directory is imported when something below it is, else skipped (empty, or nothing below it
imported).

A version holding an entry the scan refused is refused whole (:func:`refuse_incomplete`, the
rule of the cms-data importer): published without it, the version would be incomplete for good
(the later import of the entry would be a permanent conflict). The mapping's ``skip:`` says to
leave the entry out (:func:`apply_skip`); then the version is published without it.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import PathError, SpecError
from ..paths import check_collisions, check_relpath, is_reserved
from ..regular import describe_mode
from ..repository.refs import ALIAS_RE
from ._mapping import ImportMap
from .base import ImportPlan, InventoryEntry, LegacyAlias, PlannedBundle, Skipped, SourceFile

__all__ = [
    "Entry",
    "Scan",
    "apply_skip",
    "is_alias_name",
    "link_aliases",
    "path_refusal",
    "refuse_incomplete",
    "scan_tree",
    "take_inventory",
]

#: directories of version control, skipped with this reason (never bundle payload)
_VCS = "version-control metadata (.git*)"
#: characters a bundle's file rules read as glob syntax: a file named with one cannot be packed
_GLOB_CHARS = "*?["
_GLOB_REFUSAL = (
    "'*', '?' and '[' in file names are not supported (the build's file rules are globs): rename it"
)
#: files a CVMFS repository keeps for itself (seen when importing straight from a /cvmfs mount)
_CVMFS_MARKERS = (".cvmfscatalog", ".cvmfsautocatalog", ".cvmfsdirtab")


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of the store: its path (``/``-separated, relative to the root), what it is
    (``file``, ``directory``, ``symlink``, ``directory symlink``, ``special``), and what the
    scan decided on its own: ``refused`` or ``skipped`` with the reason (None: neither). A
    symlink inside the store records the path it resolves to (``inside``); a directory whose
    entries were listed is ``walked``."""

    path: str
    kind: str
    refused: str | None = None
    skipped: str | None = None
    target: str | None = None
    inside: str | None = None
    walked: bool = False


@dataclass(frozen=True)
class Scan:
    """Every entry below ``root`` (sorted by path), and the readable regular files among them
    (symlinks to files read through)."""

    root: Path
    entries: tuple[Entry, ...]
    files: tuple[SourceFile, ...]

    def left_out(self) -> list[Skipped]:
        """What the scan itself refused or skipped, for the plan's ``skipped`` list (a refusal
        starts with ``refused:``)."""
        out = []
        for e in self.entries:
            if e.refused:
                out.append(Skipped(e.path, f"refused: {e.refused}"))
            elif e.skipped:
                out.append(Skipped(e.path, e.skipped))
        return out


def _shown(name: str) -> str:
    """A file name as text that can always be printed and written as JSON (undecodable bytes
    as ``\\xNN``)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _under(path: str, dirs: Sequence[str]) -> str | None:
    return next((d for d in dirs if path == d or path.startswith(d.rstrip(os.sep) + os.sep)), None)


def scan_tree(
    root: Path,
    *,
    allow_outside: Iterable[str | os.PathLike[str]] = (),
    outside_hint: str | None = "allow its target with --allow-links-outside DIR",
) -> Scan:
    """The scan of the store at ``root`` (see the module docstring). ``allow_outside``: the
    directories a file symlink may point into from inside the store (by default none: a link
    leaving the store would copy, say, ``/etc/passwd`` into a signed bundle); ``outside_hint``
    ends the refusal of any other such link (None: nothing to say)."""
    if not root.is_dir():
        raise SpecError(f"import source {root} is not a directory")
    real_root = os.path.realpath(root)
    allowed = [os.path.realpath(d) for d in allow_outside]
    entries: list[Entry] = []
    files: list[SourceFile] = []

    def inside(target: str) -> str | None:
        if target == real_root:
            return ""
        if target.startswith(real_root + os.sep):
            return os.path.relpath(target, real_root).replace(os.sep, "/")
        return None

    def listing(directory: str) -> list[os.DirEntry[str]] | str:
        try:
            with os.scandir(directory) as it:
                return sorted(it, key=lambda d: d.name)
        except OSError as e:
            why = os.strerror(e.errno or errno.EACCES).lower()
            return f"unreadable directory ({why}): its entries cannot be listed"

    def visit(d: os.DirEntry[str], legacy: str) -> str | None:
        """Record one entry; the directory to list next, if it is one to walk."""
        full = d.path
        try:
            st = os.lstat(full)
        except OSError as e:
            entries.append(Entry(legacy, "file", refused=f"cannot stat: {e.strerror}"))
            return None
        if _shown(d.name) != d.name:
            kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
            entries.append(Entry(legacy, kind, refused="the name is not valid UTF-8"))
        elif stat.S_ISLNK(st.st_mode):
            _link(full, legacy)
        elif stat.S_ISDIR(st.st_mode):
            if d.name.startswith(".git"):
                entries.append(Entry(legacy, "directory", skipped=_VCS))
                return None
            return full
        elif not stat.S_ISREG(st.st_mode):
            entries.append(Entry(legacy, "special", refused=describe_mode(st.st_mode)))
        elif any(c in d.name for c in _GLOB_CHARS):
            entries.append(Entry(legacy, "file", refused=_GLOB_REFUSAL))
        elif d.name in _CVMFS_MARKERS:
            entries.append(Entry(legacy, "file", skipped="CVMFS catalogue marker (not data)"))
        else:
            _file(full, legacy, st)
        return None

    def _file(
        full: str,
        legacy: str,
        st: os.stat_result,
        target: str | None = None,
        where: str | None = None,
    ) -> None:
        kind = "file" if target is None else "symlink"
        if not os.access(full, os.R_OK):
            why = "unreadable file (permission denied)"
            entries.append(Entry(legacy, kind, refused=why, target=target, inside=where))
            return
        entries.append(Entry(legacy, kind, target=target, inside=where))
        files.append(SourceFile(legacy, st.st_size, st.st_mtime_ns))

    def _link(full: str, legacy: str) -> None:
        written = os.readlink(full)
        target = os.path.realpath(full)
        try:
            st = os.stat(full)
        except OSError as e:
            why = {errno.ELOOP: "looping symlink", errno.ENOENT: "dangling symlink"}.get(
                e.errno or 0, f"symlink whose target cannot be read ({e.strerror})"
            )
            entries.append(
                Entry(legacy, "symlink", refused=f"{why} (to {written})", target=written)
            )
            return
        where = inside(target)
        if stat.S_ISDIR(st.st_mode):
            if where is None:
                entries.append(
                    Entry(
                        legacy,
                        "directory symlink",
                        refused=f"symlinked directory leaving the store (to {target}): never "
                        "followed",
                        target=written,
                    )
                )
            else:
                entries.append(Entry(legacy, "directory symlink", target=written, inside=where))
            return
        if not stat.S_ISREG(st.st_mode):
            why = f"symlink to {describe_mode(st.st_mode)} ({written})"
            entries.append(Entry(legacy, "symlink", refused=why, target=written))
            return
        if where is None and _under(target, allowed) is None:
            entries.append(
                Entry(
                    legacy,
                    "symlink",
                    refused=f"symlink leaving the store (to {target})"
                    + (f"; {outside_hint}" if outside_hint else ""),
                    target=written,
                )
            )
            return
        _file(full, legacy, st, written, where)

    top = listing(str(root))
    if isinstance(top, str):
        raise SpecError(f"cannot read import source {root}: {top}")
    stack: list[tuple[str, list[os.DirEntry[str]]]] = [("", top)]
    while stack:  # depth first, without recursion (a deep tree cannot exhaust the stack)
        prefix, children = stack.pop()
        for d in reversed(children):
            legacy = prefix + _shown(d.name)
            sub = visit(d, legacy)
            if sub is None:
                continue
            listed = listing(sub)
            if isinstance(listed, str):
                entries.append(Entry(legacy, "directory", refused=listed))
            else:
                entries.append(Entry(legacy, "directory", walked=True))
                stack.append((legacy + "/", listed))
    entries.sort(key=lambda e: e.path)
    return Scan(root, tuple(entries), tuple(sorted(files, key=lambda f: f.legacy)))


def apply_skip(scan: Scan, mapping: ImportMap) -> Scan:
    """``scan`` with every refused entry that the mapping's ``skip:`` matches listed as skipped
    instead, the scan's reason kept (a directory is matched by its path, or by a pattern over
    what lies below it: ``dir/``, ``dir/**``): the person importing said to leave it out."""
    entries = []
    for e in scan.entries:
        if e.refused and (
            mapping.skipped(e.path) or (e.kind == "directory" and mapping.skipped(e.path + "/"))
        ):
            why = f"skip: in the mapping (the scan refuses it: {e.refused})"
            e = replace(e, refused=None, skipped=why)
        entries.append(e)
    return replace(scan, entries=tuple(entries))


def refuse_incomplete(
    scan: Scan,
    bundles: Sequence[tuple[PlannedBundle, Callable[[Entry], bool]]],
) -> tuple[list[PlannedBundle], list[Skipped], dict[str, str]]:
    """Each planned version of ``bundles`` (with the test of which store entries it holds)
    that holds an entry the scan refused is refused whole (the module docstring). Returns the
    bundles kept, the refusals (for the plan's ``refused``), and for each file of a refused
    version the reason it is not imported (its verdict in the inventory)."""
    refusals = [e for e in scan.entries if e.refused]
    kept: list[PlannedBundle] = []
    refused: list[Skipped] = []
    withheld: dict[str, str] = {}
    for b, holds in bundles:
        bad = [(e.path, str(e.refused)) for e in refusals if holds(e)]
        # a file the build would refuse where the version puts it (hepbundle.json at the top)
        placed = [(f.source, why) for f in b.files if (why := path_refusal(f.dest)) is not None]
        bad += placed
        try:  # two names one on a case-insensitive file system (Model.onnx and model.onnx)
            check_collisions(f.dest for f in b.files)
        except PathError as e:
            bad.append((b.origin, f"two of its files' bundle paths collide: {e.message}"))
        if not bad:
            kept.append(b)
            continue
        n = f"{len(bad)} entr{'y' if len(bad) == 1 else 'ies'}"
        refused.append(
            Skipped(
                f"{b.ref} [{b.origin}]",
                f"refused: {n} of this version cannot be imported ({bad[0][0]}: "
                f"{bad[0][1]}); to publish it without them, list them under skip: in "
                "the mapping",
            )
        )
        for f in b.files:
            withheld[f.source] = f"its version {b.ref} is refused ({n} cannot be imported)"
        withheld.update(placed)
    return kept, refused, withheld


def path_refusal(dest: str) -> str | None:
    """Why the build would refuse a file at the bundle path ``dest`` (None: it would not): a
    name the bundle reserves for itself (at the top: the manifest, a signature, a CVMFS
    marker) or one the path rules refuse (a control character, …)."""
    if is_reserved(dest):
        return (
            f"its bundle path {dest!r} is a name the bundle reserves (the manifest's, a "
            "signature's, a CVMFS marker's)"
        )
    try:
        check_relpath(dest)
    except PathError as e:
        return f"its bundle path is refused: {e.message}"
    return None


def is_alias_name(name: str) -> bool:
    """Whether a directory link named ``name`` (lower-cased) can be kept as an alias."""
    return ALIAS_RE.match(name) is not None and name not in ("latest", "valid")


def link_aliases(
    scan: Scan, bundles: Sequence[PlannedBundle]
) -> tuple[list[PlannedBundle], list[LegacyAlias], list[Skipped]]:
    """Each directory symlink of the store inside it that names the directory of exactly one
    planned version (every file of that bundle lies below it, and nothing below it went to
    another bundle) becomes an alias of that version named after the link (``current ->
    00-02-00`` → ``@current``). Returns the bundles with those aliases added, the legacy
    aliases, and the links that could not be aliases (skipped, with the reason)."""
    out = list(bundles)
    aliases: list[LegacyAlias] = []
    skipped: list[Skipped] = []
    for e in scan.entries:
        if e.kind != "directory symlink" or e.refused or e.inside is None:
            continue
        base = e.inside + "/" if e.inside else ""
        holders = [i for i, b in enumerate(out) if any(f.source.startswith(base) for f in b.files)]
        owner = out[holders[0]] if len(holders) == 1 else None
        alias = e.path.rsplit("/", 1)[-1].lower()
        not_followed = f"directory symlink to {e.inside or '.'}/ (not followed: its files are "
        if owner is None or not all(f.source.startswith(base) for f in owner.files):
            what = "no planned version" if not holders else "not the directory of one version"
            skipped.append(Skipped(e.path, f"{not_followed}listed there): {what}"))
            continue
        if not is_alias_name(alias):
            skipped.append(
                Skipped(
                    e.path,
                    f"{not_followed}imported as {owner.ref}): {alias!r} cannot be an alias "
                    "(lowercase, starting with a letter; not latest or valid)",
                )
            )
            continue
        taken = next(
            (
                b.ref
                for b in out
                if b.spec.name == owner.spec.name and b is not owner and alias in b.aliases
            ),
            None,
        )
        if taken is not None:
            skipped.append(
                Skipped(
                    e.path,
                    f"{not_followed}imported as {owner.ref}): alias {alias!r} is already {taken}",
                )
            )
            continue
        if alias not in owner.aliases:
            out[holders[0]] = replace(owner, aliases=(*owner.aliases, alias))
        aliases.append(LegacyAlias(e.path, e.inside, owner.ref, alias))
    return out, aliases, skipped


def take_inventory(
    scan: Scan, plan: ImportPlan, withheld: Mapping[str, str] | None = None
) -> tuple[InventoryEntry, ...]:
    """Every entry of ``scan`` with its verdict in ``plan`` (see the module docstring); the
    files of versions refused whole (``withheld``: path → reason) are refused. An entry that
    neither the scan nor the importer decided on is listed as skipped, saying so."""
    withheld = withheld or {}
    into: dict[str, list[tuple[str, str]]] = {}
    for b in plan.bundles:
        for f in b.files:
            into.setdefault(f.source, []).append((b.ref, f.dest))
    skipped = {s.what: s.reason for s in plan.skipped}
    aliased = {a.link: a for a in plan.legacy_aliases}
    verdicts: dict[str, InventoryEntry] = {}
    walked: list[Entry] = []
    for e in scan.entries:
        v: InventoryEntry
        if e.refused:
            v = InventoryEntry(e.path, e.kind, "refused", e.refused)
        elif e.path in aliased:
            a = aliased[e.path]
            v = InventoryEntry(
                e.path,
                e.kind,
                "imported",
                f"legacy alias: {e.path} -> {a.target} is alias {a.alias!r} of {a.ref}",
                (a.ref,),
            )
        elif e.walked:
            walked.append(e)
            continue
        elif e.path in withheld:
            v = InventoryEntry(e.path, e.kind, "refused", withheld[e.path])
        elif e.path in into:
            dests = into[e.path]
            through = ""
            if e.target is not None:
                allowed = ", allowed by --allow-links-outside" if e.inside is None else ""
                through = f" (symlink to {e.target}, read through{allowed})"
            v = InventoryEntry(
                e.path,
                e.kind,
                "imported",
                "; ".join([f"into {ref} as {dest}" for ref, dest in dests]) + through,
                tuple(ref for ref, _ in dests),
            )
        elif e.path in skipped or e.skipped:
            v = InventoryEntry(e.path, e.kind, "skipped", skipped.get(e.path) or e.skipped or "")
        else:
            v = InventoryEntry(
                e.path, e.kind, "skipped", "no rule of the importer took it (no reason given)"
            )
        verdicts[e.path] = v
    below: dict[str, int] = {}  # directory → entries below it
    imported: dict[str, int] = {}  # directory → imported entries below it
    refs: dict[str, set[str]] = {}

    def parent(path: str) -> str:
        return path[: max(path.rfind("/"), 0)]

    for path, v in verdicts.items():  # each entry counts in its own directory…
        up = parent(path)
        below[up] = below.get(up, 0) + 1
        if v.verdict == "imported":
            imported[up] = imported.get(up, 0) + 1
            refs.setdefault(up, set()).update(v.into)
    for d in sorted(walked, key=lambda e: e.path.count("/"), reverse=True):
        up = parent(d.path)  # …and a directory's counts in its parent's, deepest first
        below[up] = below.get(up, 0) + 1 + below.get(d.path, 0)
        if d.path in imported:
            imported[up] = imported.get(up, 0) + imported[d.path]
            refs.setdefault(up, set()).update(refs[d.path])
    for d in walked:
        if d.path in refs:
            verdicts[d.path] = InventoryEntry(
                d.path,
                d.kind,
                "imported",
                f"directory: {imported[d.path]} entries below it imported",
                tuple(sorted(refs[d.path])),
            )
        else:
            why = "directory: nothing below it is imported" if below.get(d.path) else ""
            verdicts[d.path] = InventoryEntry(d.path, d.kind, "skipped", why or "empty directory")
    return tuple(verdicts[p] for p in sorted(verdicts))
