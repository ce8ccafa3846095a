"""The ``cms-data`` importer: a git clone of ``cms-data/<Subsystem>-<Package>``, one version per tag.

A CMSSW release pins one tag of each cms-data package (``CMSSW_DATA_PACKAGE``:
``RecoTauTag/TrainingFiles=V00-02-02``) and installs GitHub's tarball of that tag into
``<Subsystem>/<Package>/data/``; jobs find the files through ``edm::FileInPath`` as
``<Subsystem>/<Package>/data/…`` on ``CMSSW_SEARCH_PATH``. That is the legacy path each file keeps.
Two layouts of the repository (per tag; the mapping's ``layout:`` forces one):

* ``root``, the cms-data repositories: the repository root is ``<Subsystem>/<Package>/data/``, so
  ``DeepTauId/core.pb`` keeps bundle path ``DeepTauId/core.pb`` and legacy path
  ``RecoTauTag/TrainingFiles/data/DeepTauId/core.pb``;
* ``data``, a repository laid out as a CMSSW package (the tree is ``data/`` plus README, LICENSE
  and ``.git*`` files only): ``data/x.root`` keeps ``data/x.root`` and legacy path
  ``RecoTauTag/TrainingFiles/data/x.root``.

``<Subsystem>/<Package>`` is the mapping's ``package:``, else what the checkout's directory name
and the origin URL say (``RecoTauTag-TrainingFiles``, ``cms-data-…``, ``data-…``, or a clone at
``…/RecoTauTag/TrainingFiles/data`` in a CMSSW area); when both say something and disagree it is
an error asking for ``package:``. Every tag ``VAA-BB-CC`` becomes version
``int(AA).int(BB).int(CC)`` (``V00-02-05`` → ``0.2.5``; other tags are listed as skipped; a clone
without any version tag is an error). A tag's files are read blob by blob from its tree
(``git cat-file --batch``: never the working tree, which may sit at another tag); what the tree's
``.gitattributes`` mark ``export-ignore`` is not in the release's tarball and is skipped; a tag
holding a file that cannot be imported as the release has it (a name that is not UTF-8, an LFS
pointer) is refused unless the mapping's ``skip:`` leaves that file out. The
plan's inventory lists every tag (``tag V00-02-05``) and every entry of each version tag's tree
(``V00-02-05:<path>``, as ``git ls-tree -r`` lists them) with its verdict. The
tagger (for a lightweight tag, the commit author), date and commit become the bundle's authors and
``extra.import.git``; the summary is the tag message, or the commit's subject when the message
only repeats the tag name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import BuildError, PathError, SpecError
from ..paths import check_collisions, check_relpath, is_reserved
from ..provenance import git_output, strip_credentials
from ..repository.refs import version_key
from ._mapping import COMMON_KEYS, LWTNN_MAX_BYTES, ImportMap
from .base import (
    ImportPlan,
    InventoryEntry,
    PlannedBundle,
    PlannedFile,
    Skipped,
    make_bundle,
    safe_name,
)

__all__ = ["CmsDataImporter", "package_of", "tag_version"]

_TAG = re.compile(r"^V(\d+)-(\d+)-(\d+)$")
_PART = r"[A-Za-z][A-Za-z0-9_]*"
_REPO_NAME = re.compile(rf"^(?:cms-data-|data-)?({_PART})-({_PART})$")
_FIELDS = (
    "%(refname:short)%00%(objectname)%00%(*objectname)%00%(taggername)%00%(taggeremail)%00"
    "%(taggerdate:iso-strict)%00%(authorname)%00%(authoremail)%00%(authordate:iso-strict)%00"
    "%(contents:subject)%00%(contents:body)%00%(*contents:subject)%00%(*contents:body)%1e"
)
#: the attributes that change what a tag's tarball holds
_ATTRS = ("export-ignore", "export-subst", "filter")
_CHECK_ATTR = ("--cached", "-z", "--stdin", *_ATTRS)
#: top-level files that do not make a repository a ``root`` layout one (``data`` layout test)
_REPO_FILES = re.compile(r"^(?:README|LICENSE|LICENCE|COPYING|NOTICE)(?:\.\w+)?$", re.IGNORECASE)
_CHUNK = 1 << 20
_SUBMODULE = "git submodule: its files are not in this repository"
_SYMLINK = "symlink (not imported)"


def tag_version(tag: str) -> str | None:
    """``V00-02-05`` → ``0.2.5``; None for a tag of another form."""
    m = _TAG.match(tag)
    return ".".join(str(int(g)) for g in m.groups()) if m else None


def package_of(name: str) -> str | None:
    """``RecoTauTag-TrainingFiles`` → ``RecoTauTag/TrainingFiles``, also with the ``cms-data-`` or
    ``data-`` prefix (a clone named after the GitHub organisation, the cmsdist package name) and a
    ``.git`` suffix; None for a name of another form."""
    m = _REPO_NAME.match(name.removesuffix(".git"))
    return f"{m[1]}/{m[2]}" if m else None


def _message(subject: str, body: str) -> str:
    return "\n\n".join(x for x in (subject.strip(), body.strip()) if x)


def _tags(repo: Path) -> list[dict[str, str]]:
    out = []
    raw = git_output(["for-each-ref", "--format", _FIELDS, "refs/tags"], repo).decode(
        errors="replace"
    )
    for rec in raw.split("\x1e"):
        parts = rec.lstrip("\n").split("\x00")
        if len(parts) != 13:
            continue
        tag, obj, peeled, tname, temail, tdate, aname, aemail, adate = parts[:9]
        subject, body, commit_subject, commit_body = parts[9:]
        annotated = bool(peeled)
        message = _message(subject, body)  # the tag's, or for a lightweight tag the commit's
        out.append(
            {
                "tag": tag,
                "commit": peeled or obj,
                "author": tname if annotated else aname,
                "email": (temail if annotated else aemail).strip("<>"),
                "date": tdate if annotated else adate,
                "message": message,
                "commit_message": _message(commit_subject, commit_body) if annotated else message,
                "subject": (commit_subject if annotated else subject).strip(),
                "annotated": "yes" if annotated else "no",
            }
        )
    return out


_FILLER = re.compile(r"\b(?:tag|tagged|tagging|version|release|new)\b", re.IGNORECASE)


def says_only_the_tag(message: str, tag: str) -> bool:
    """Whether a tag message is the tag name and nothing more (``V00-02-02``, ``Tag V00-02-02``,
    ``new version V00-02-02.``): then the commit says what changed."""
    rest = _FILLER.sub("", message.replace(tag, " "))
    return not re.sub(r"[\W_]+", "", rest)


def _check_repository(repo: Path) -> None:
    if (repo / ".git").exists():
        return
    if (repo / "HEAD").is_file() and (repo / "objects").is_dir() and (repo / "refs").is_dir():
        return  # a bare clone (git clone --mirror)
    raise SpecError(f"{repo} is not a git checkout", hint="clone the cms-data repository")


def _package(repo: Path, mapping: ImportMap) -> tuple[str, str, str]:
    """(``<Subsystem>/<Package>``, where it was read, origin URL or '')."""
    remote = git_output(["config", "--get", "remote.origin.url"], repo, ok=(0, 1)).decode().strip()
    if mapping.package:
        return mapping.package, "package: in the mapping", remote
    from_dir = package_of(repo.name)
    if from_dir is None and repo.name == "data":  # cloned into a CMSSW area: <Sub>/<Pkg>/data
        sub, pkg = repo.parent.parent.name, repo.parent.name
        if re.fullmatch(_PART, sub) and re.fullmatch(_PART, pkg):
            from_dir = f"{sub}/{pkg}"
    last = remote.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1] if remote else ""
    from_url = package_of(last) if last else None
    shown = strip_credentials(remote)
    if from_dir and from_url and from_dir != from_url:
        raise SpecError(
            f"{repo}: the directory name says {from_dir}, the origin URL {shown} says {from_url}",
            hint="say which: set 'package: <Subsystem>/<Package>' in the mapping (--map)",
        )
    found = from_dir or from_url
    if found is None:
        raise SpecError(
            f"cannot tell <Subsystem>/<Package> from the directory name {repo.name!r}"
            + (f" or the origin URL {shown}" if remote else " (no origin remote)"),
            hint="set 'package: RecoTauTag/TrainingFiles' (say) in the mapping (--map), or clone "
            "it under its cms-data name",
        )
    how = (
        "the directory name and the origin URL"
        if from_dir and from_url
        else "the directory name"
        if from_dir
        else "the origin URL"
    )
    return found, how, remote


def _no_version_tag(repo: Path, tags: Sequence[dict[str, str]]) -> SpecError:
    shallow = (
        git_output(["rev-parse", "--is-shallow-repository"], repo, ok=(0, 128)).strip() == b"true"
    )
    others = ", ".join(t["tag"] for t in tags[:5])
    return SpecError(
        f"{repo}: no tag of the form VAA-BB-CC, so no version to import"
        + (f" (its tags: {others})" if tags else " (the clone has no tags at all)"),
        hint=f"fetch the tags: git -C {repo} fetch "
        + ("--unshallow " if shallow else "")
        + "--tags origin (a clone made with --no-tags or --depth has none)",
    )


def _tree(repo: Path, commit: str) -> list[tuple[str, str, str, int | None, str]]:
    """(mode, type, object, size, path) of every entry of ``commit``'s tree, paths decoded with
    surrogate escapes (a name that is not UTF-8 keeps its bytes and is refused later); size
    None for a blob the clone does not have (git prints ``BAD``)."""
    raw = git_output(["ls-tree", "-r", "-l", "-z", "--full-tree", commit], repo)
    out = []
    for item in raw.split(b"\x00"):
        if not item:
            continue
        head, _, path = item.partition(b"\t")
        mode, kind, sha, size = head.decode().split()
        out.append(
            (
                mode,
                kind,
                sha,
                None if size == "BAD" else int(size) if size.isdigit() else 0,
                path.decode("utf-8", "surrogateescape"),
            )
        )
    return out


def _attributes(repo: Path, commit: str, paths: Sequence[str]) -> dict[str, dict[str, str]]:
    """The ``export-ignore``, ``export-subst`` and ``filter`` attributes ``commit``'s own
    ``.gitattributes`` files give ``paths`` and their directories (as ``dir/``: git archive
    leaves out a whole directory marked export-ignore). Read through a private index of that
    tree, so the checkout's index and working tree play no part; system and user attribute
    files are off, as on the server that makes the tarball."""
    dirs = sorted({p[: i + 1] for p in paths for i, c in enumerate(p) if c == "/"})
    with tempfile.TemporaryDirectory(prefix="hepbundle-attr-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index"), "GIT_ATTR_NOSYSTEM": "1"}
        git_output(["read-tree", commit], repo, env=env)
        raw = git_output(
            ["-c", f"core.attributesFile={os.devnull}", "check-attr", *_CHECK_ATTR],
            repo,
            env=env,
            input=b"".join(p.encode("utf-8", "surrogateescape") + b"\x00" for p in (*paths, *dirs)),
        )
    fields = raw.split(b"\x00")
    out: dict[str, dict[str, str]] = {}
    for i in range(0, len(fields) - 2, 3):
        path, attr, value = (f.decode("utf-8", "surrogateescape") for f in fields[i : i + 3])
        if value != "unspecified":
            out.setdefault(path, {})[attr] = value
    return out


def _export_ignored(path: str, attrs: dict[str, dict[str, str]]) -> bool:
    """Whether git archive leaves ``path`` out: it, or a directory above it, is export-ignore."""
    ups = [path[: i + 1] for i, c in enumerate(path) if c == "/"]
    return any(attrs.get(p, {}).get("export-ignore") == "set" for p in (path, *ups))


def _layout(paths: Sequence[str], forced: str | None) -> str:
    if forced:
        return forced
    tops = {p.split("/", 1)[0] for p in paths if "/" in p and not p.startswith(".git")}
    loose = [p for p in paths if "/" not in p and not p.startswith(".git")]
    if tops == {"data"} and all(_REPO_FILES.match(p) for p in loose):
        return "data"
    return "root"


def _materializer(repo: Path, blobs: Sequence[tuple[str, str, int]]) -> Callable[[Path], Path]:
    def materialize(into: Path) -> Path:
        """Write every planned file of the tag under ``into``, each from its blob (``git
        cat-file --batch``, one object at a time, copied in 1 MiB pieces)."""
        exe = shutil.which("git")
        if exe is None:
            raise BuildError("git is not installed")
        into.mkdir(parents=True, exist_ok=True)
        with subprocess.Popen(
            [exe, "cat-file", "--batch"],
            cwd=repo,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        ) as p:
            assert p.stdin is not None and p.stdout is not None
            try:
                for dest, sha, size in blobs:
                    p.stdin.write(sha.encode() + b"\n")
                    p.stdin.flush()
                    head = p.stdout.readline().split()
                    if head[1:] != [b"blob", str(size).encode()]:
                        raise BuildError(
                            f"cannot read {dest} (blob {sha}) from the git objects of {repo}: "
                            + (b" ".join(head).decode(errors="replace") or "git stopped")
                        )
                    target = into / dest
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with open(target, "xb") as out:
                        left = size
                        while left:
                            chunk = p.stdout.read(min(left, _CHUNK))
                            if not chunk:
                                raise BuildError(f"git cat-file stopped inside {dest} ({repo})")
                            out.write(chunk)
                            left -= len(chunk)
                    p.stdout.read(1)  # the newline after each object
            except OSError as e:
                p.kill()
                raise BuildError(f"cannot read the files of {repo} from git: {e}") from None
            except BaseException:
                p.kill()
                raise
            finally:
                p.stdin.close()
        return into

    return materialize


class CmsDataImporter:
    """cms-data git repository, one bundle version per ``VAA-BB-CC`` tag."""

    kind = "cms-data"
    mapping_keys = COMMON_KEYS | {"package", "layout"}

    def plan(self, source: str, mapping: ImportMap) -> ImportPlan:
        repo = Path(source).resolve()
        _check_repository(repo)
        prefix, how, remote = _package(repo, mapping)
        key = prefix.replace("/", "-")
        default_name = f"{mapping.namespace_or('cms')}/{safe_name(key)}"
        name = mapping.name(key) or default_name
        bundles: list[PlannedBundle] = []
        skipped: list[Skipped] = []
        refused: list[Skipped] = []
        inventory: list[InventoryEntry] = []
        tags = _tags(repo)
        if not any(tag_version(t["tag"]) for t in tags):
            raise _no_version_tag(repo, tags)
        for t in tags:
            version = tag_version(t["tag"])
            if version is None:
                skipped.append(Skipped(f"tag {t['tag']}", "not of the form VAA-BB-CC"))
                inventory.append(_tag_entry(t["tag"], skipped[-1]))
                continue
            layout, files, blobs, skip = self._files(repo, t["commit"], prefix, mapping)
            skipped += [Skipped(f"{t['tag']}:{s.what}", s.reason) for s in skip]
            ref = f"{name}@{version}"
            entries = _tree_inventory(t["tag"], ref, files, skip)
            bad = [s for s in skip if s.reason.startswith("refused:")]
            refusal = None
            if bad:
                # the release has these files: without them the version would be incomplete,
                # immutably; leaving them out takes the mapping's word (skip:)
                refusal = (
                    f"refused: {len(bad)} file(s) of the release cannot be imported "
                    f"({bad[0].what}: {bad[0].reason.removeprefix('refused: ')}); to "
                    "publish the tag without them, list them under skip: in the mapping"
                )
            else:
                try:
                    check_collisions(f.dest for f in files)
                except PathError as e:
                    refusal = f"refused: {e}"
            if refusal is not None:
                refused.append(Skipped(f"tag {t['tag']}", refusal))
                inventory += [_tag_entry(t["tag"], refused[-1]), *_withheld(entries, ref)]
                continue
            if not files:
                where = "under data/" if layout == "data" else "in the tree"
                skipped.append(Skipped(f"tag {t['tag']}", f"no file to import {where}"))
                inventory += [_tag_entry(t["tag"], skipped[-1]), *entries]
                continue
            inventory.append(
                InventoryEntry(
                    f"tag {t['tag']}",
                    "tag",
                    "imported",
                    f"version {ref}: {len(files)} files of its tree",
                    (ref,),
                )
            )
            inventory += entries
            bundles.append(
                make_bundle(
                    name=name,
                    version=version,
                    files=files,
                    meta=self._meta(t, mapping),
                    origin=f"tag {t['tag']}",
                    source_root=None,
                    extra_meta={
                        "extra": {
                            "import": {
                                "kind": "cms-data",
                                "package": prefix,
                                "layout": layout,
                                "git": self._git(t, remote),
                            }
                        }
                    },
                    materialize=_materializer(repo, blobs),
                    rule=f"tag {t['tag']} (VAA-BB-CC) → {version}; name "
                    + (
                        "from names:"
                        if name != default_name
                        else "<namespace>/<Subsystem>-<Package>"
                    )
                    + f"; legacy paths {prefix}/data/… ({prefix} from {how}; {layout} layout: "
                    + (
                        "the repository root is data/)"
                        if layout == "root"
                        else "the repository holds data/)"
                    ),
                )
            )
        bundles.sort(key=lambda b: version_key(b.spec.version))
        return ImportPlan(
            self.kind,
            str(repo),
            tuple(bundles),
            tuple(skipped),
            tuple(refused),
            inventory=tuple(inventory),
        )

    @staticmethod
    def _git(t: dict[str, str], remote: str) -> dict[str, Any]:
        git: dict[str, Any] = {
            k: t[k] for k in ("tag", "commit", "author", "email", "date", "message") if t[k]
        }
        if t["subject"]:
            git["subject"] = t["subject"]
        if remote:
            git["repository"] = strip_credentials(remote)
        return git

    @staticmethod
    def _meta(t: dict[str, str], mapping: ImportMap) -> dict[str, Any]:
        """The mapping's defaults, then what the tag says: its message (the commit's when the
        message only repeats the tag name) as summary and description, the tagger as author."""
        meta = mapping.meta_for()
        message = t["message"]
        if says_only_the_tag(message, t["tag"]):
            message = t["commit_message"]
        if message:
            meta.setdefault("summary", message.splitlines()[0][:500])
            meta.setdefault("description", message)
        if t["author"] and not meta.get("authors"):
            meta["authors"] = [
                {"name": t["author"], **({"email": t["email"]} if t["email"] else {})}
            ]
        return meta

    @staticmethod
    def _files(
        repo: Path, commit: str, prefix: str, mapping: ImportMap
    ) -> tuple[str, list[PlannedFile], list[tuple[str, str, int]], list[Skipped]]:
        """The layout of ``commit``'s tree, the files to import, their (bundle path, blob, size)
        and what is left out with the reason."""
        entries = _tree(repo, commit)
        layout = _layout([e[4] for e in entries], mapping.layout)
        attrs = (
            _attributes(repo, commit, [e[4] for e in entries])
            if any(e[4].rsplit("/", 1)[-1] == ".gitattributes" for e in entries)
            else {}
        )
        files: list[PlannedFile] = []
        blobs: list[tuple[str, str, int]] = []
        skipped: list[Skipped] = []
        for mode, kind, sha, size, path in entries:
            legacy = f"{prefix}/{path}" if layout == "data" else f"{prefix}/data/{path}"
            attr = attrs.get(path, {})
            reason = None
            if kind == "commit":
                reason = _SUBMODULE
            elif kind != "blob" or mode == "120000":
                reason = _SYMLINK
            elif size is None:
                reason = (
                    "refused: the blob is missing from the clone (damaged or partial: git fsck)"
                )
            elif _export_ignored(path, attrs):
                reason = "export-ignore (.gitattributes): not in the tag's release tarball"
            elif any(seg.startswith(".git") for seg in path.split("/")):
                reason = "git metadata"
            elif layout == "data" and not path.startswith("data/"):
                reason = "outside data/ (data layout)"
            elif mapping.skipped(legacy):
                reason = "skip: in the mapping"
            elif attr.get("filter") == "lfs":
                reason = "refused: a git LFS pointer (filter=lfs): the content is not in git"
            elif attr.get("export-subst") == "set":
                reason = (
                    "refused: export-subst: the release tarball has $Format$ placeholders "
                    "expanded, which reading the blob does not reproduce"
                )
            else:
                reason = _path_refusal(path)
            if reason is not None:
                skipped.append(Skipped(_shown(path), reason))
                continue
            assert size is not None  # refused above
            # a .json may be an lwtnn network, told by content: read from its blob, if small
            blob = None if size is None or size > LWTNN_MAX_BYTES else _blob(repo, sha)
            files.append(PlannedFile(path, path, legacy, size, mapping.role(legacy, blob)))
            blobs.append((path, sha, size))
        return layout, files, blobs, skipped


def _tag_entry(tag: str, verdict: Skipped) -> InventoryEntry:
    """The inventory entry of a tag left out (skipped, or refused: ``refused: …``)."""
    refused = verdict.reason.startswith("refused: ")
    reason = verdict.reason.removeprefix("refused: ")
    return InventoryEntry(f"tag {tag}", "tag", "refused" if refused else "skipped", reason)


def _tree_inventory(
    tag: str, ref: str, files: Sequence[PlannedFile], left: Sequence[Skipped]
) -> list[InventoryEntry]:
    """Every entry of ``tag``'s tree (``<tag>:<path>``) with its verdict: imported into
    ``ref``, skipped with the rule, or refused with the reason; sorted by path."""
    out = [
        InventoryEntry(
            f"{tag}:{f.source}",
            "file",
            "imported",
            f"into {ref} as {f.dest} (legacy path {f.legacy})",
            (ref,),
        )
        for f in files
    ]
    for s in left:
        kind = _KIND.get(s.reason, "file")
        if s.reason.startswith("refused: "):
            out.append(InventoryEntry(f"{tag}:{s.what}", kind, "refused", s.reason[9:]))
        else:
            out.append(InventoryEntry(f"{tag}:{s.what}", kind, "skipped", s.reason))
    return sorted(out, key=lambda e: e.path)


def _withheld(entries: Sequence[InventoryEntry], ref: str) -> list[InventoryEntry]:
    """``entries`` of a tag refused whole: what would have been imported is refused too."""
    why = f"its version {ref} is refused (see the tag)"
    return [
        InventoryEntry(e.path, e.kind, "refused", why) if e.verdict == "imported" else e
        for e in entries
    ]


#: the kind of a tree entry the importer leaves out for what it is
_KIND = {_SUBMODULE: "submodule", _SYMLINK: "symlink"}


def _blob(repo: Path, sha: str) -> Callable[[], bytes]:
    """A function returning the bytes of the blob ``sha`` of ``repo``."""
    return lambda: git_output(["cat-file", "blob", sha], repo)


def _shown(path: str) -> str:
    """``path`` as it can be printed: bytes that are not UTF-8 as ``\\xe9``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _path_refusal(path: str) -> str | None:
    """Why a tree path cannot be a bundle path (not UTF-8, path rules, a reserved name)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "refused: the file name is not valid UTF-8 (bundle paths are UTF-8)"
    try:
        check_relpath(path)
    except PathError as e:
        return f"refused: {e}"
    if is_reserved(path):
        return f"refused: {path} is a name reserved for the bundle's own files"
    return None
