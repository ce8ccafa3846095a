"""The ``cms-data`` importer: a git checkout of ``cms-data/<Subsystem>-<Package>``, one version per tag.

CMSSW finds these files through ``edm::FileInPath`` as ``<Subsystem>/<Package>/data/…`` on
``CMSSW_SEARCH_PATH``; that is the legacy path each file keeps (``cms:RecoTauTag/TrainingFiles/
data/x.root``). Every tag of the form ``VAA-BB-CC`` becomes version ``int(AA).int(BB).int(CC)``
(``V00-02-05`` → ``0.2.5``; other tags are listed as skipped). The tag's files under ``data/`` are
read from git objects (``git archive``, never the working tree, which may sit at another tag), and
the tagger (or, for a lightweight tag, the commit author), date, message and commit become the
bundle's authors, summary and ``extra.import.git`` provenance.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from ..errors import BuildError, SpecError
from ..provenance import git_output, strip_credentials
from ..repository.refs import version_key
from ._mapping import COMMON_KEYS, ImportMap
from .base import ImportPlan, PlannedBundle, PlannedFile, Skipped, make_bundle, safe_name

__all__ = ["CmsDataImporter", "tag_version"]

_TAG = re.compile(r"^V(\d+)-(\d+)-(\d+)$")
_FIELDS = (
    "%(refname:short)%00%(objectname)%00%(*objectname)%00%(taggername)%00%(taggeremail)%00"
    "%(taggerdate:iso-strict)%00%(authorname)%00%(authoremail)%00%(authordate:iso-strict)%00"
    "%(contents)%1e"
)


def tag_version(tag: str) -> str | None:
    """``V00-02-05`` → ``0.2.5``; None for a tag of another form."""
    m = _TAG.match(tag)
    return ".".join(str(int(g)) for g in m.groups()) if m else None


def _tags(repo: Path) -> list[dict[str, str]]:
    out = []
    raw = git_output(["for-each-ref", "--format", _FIELDS, "refs/tags"], repo).decode(
        errors="replace"
    )
    for rec in raw.split("\x1e"):
        parts = rec.lstrip("\n").split("\x00")
        if len(parts) != 10:
            continue
        tag, obj, peeled, tname, temail, tdate, aname, aemail, adate, message = parts
        annotated = bool(peeled)
        out.append(
            {
                "tag": tag,
                "commit": peeled or obj,
                "author": tname if annotated else aname,
                "email": (temail if annotated else aemail).strip("<>"),
                "date": tdate if annotated else adate,
                "message": message.strip(),
                "annotated": "yes" if annotated else "no",
            }
        )
    return out


def _package(repo: Path) -> tuple[str, str, str]:
    """(Subsystem/Package, repository key, origin URL or '') from the origin URL's or the
    directory's name."""
    remote = git_output(["config", "--get", "remote.origin.url"], repo, ok=(0, 1)).decode().strip()
    key = (remote.rstrip("/").rsplit("/", 1)[-1] if remote else repo.name).removesuffix(".git")
    sub, sep, pkg = key.partition("-")
    if not sep or not sub or not pkg:
        raise SpecError(
            f"cannot tell <Subsystem>-<Package> from {key!r} ({repo})",
            hint="clone it under its cms-data name, e.g. RecoTauTag-TrainingFiles",
        )
    return f"{sub}/{pkg}", key, remote


def _files_only(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """Regular files and directories only: symlinks and hard links under ``data/`` are left out
    (the plan lists them as skipped), so none can point the extraction outside ``dest``."""
    if not (member.isfile() or member.isdir()):
        return None
    return tarfile.data_filter(member, dest)


def _materializer(repo: Path, commit: str) -> Any:
    def materialize(into: Path) -> Path:
        """Write ``data/`` of ``commit`` under ``into`` straight from git objects."""
        exe = shutil.which("git")
        if exe is None:
            raise BuildError("git is not installed")
        into.mkdir(parents=True, exist_ok=True)
        with subprocess.Popen(
            [exe, "archive", "--format=tar", commit, "--", "data"],
            cwd=repo,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        ) as p:
            assert p.stdout is not None
            try:
                with tarfile.open(fileobj=p.stdout, mode="r|") as tar:
                    tar.extractall(into, filter=_files_only)
            except (tarfile.TarError, OSError) as e:
                p.kill()
                raise BuildError(f"cannot unpack data/ of {commit} in {repo}: {e}") from None
        if p.returncode != 0:
            raise BuildError(f"git archive {commit} failed in {repo}")
        return into

    return materialize


class CmsDataImporter:
    """cms-data git repository, one bundle version per ``VAA-BB-CC`` tag."""

    kind = "cms-data"
    mapping_keys = COMMON_KEYS

    def plan(self, source: str, mapping: ImportMap) -> ImportPlan:
        repo = Path(source).resolve()
        if not (repo / ".git").exists():
            raise SpecError(f"{repo} is not a git checkout", hint="clone the cms-data repository")
        prefix, key, remote = _package(repo)
        name = mapping.name(key) or f"{mapping.namespace_or('cms')}/{safe_name(key)}"
        bundles: list[PlannedBundle] = []
        skipped: list[Skipped] = []
        for t in _tags(repo):
            version = tag_version(t["tag"])
            if version is None:
                skipped.append(Skipped(f"tag {t['tag']}", "not of the form VAA-BB-CC"))
                continue
            files, skip = self._files(repo, t["commit"], prefix, mapping)
            skipped += [Skipped(f"{t['tag']}:{s.what}", s.reason) for s in skip]
            if not files:
                skipped.append(Skipped(f"tag {t['tag']}", "no file under data/"))
                continue
            git: dict[str, Any] = {
                k: t[k] for k in ("tag", "commit", "author", "email", "date", "message") if t[k]
            }
            if remote:
                git["repository"] = strip_credentials(remote)
            meta = mapping.meta_for()
            meta.setdefault("summary", (t["message"].splitlines() or [""])[0][:500])
            if t["message"]:
                meta.setdefault("description", t["message"])
            if t["author"] and not meta.get("authors"):
                meta["authors"] = [
                    {"name": t["author"], **({"email": t["email"]} if t["email"] else {})}
                ]
            bundles.append(
                make_bundle(
                    name=name,
                    version=version,
                    files=files,
                    meta=meta,
                    origin=f"tag {t['tag']}",
                    source_root=None,
                    extra_meta={"extra": {"import": {"kind": "cms-data", "git": git}}},
                    materialize=_materializer(repo, t["commit"]),
                    rule=f"tag {t['tag']} (VAA-BB-CC) → {version}; name "
                    + (
                        "from names:"
                        if name != f"{mapping.namespace_or('cms')}/{safe_name(key)}"
                        else "<namespace>/<repository>"
                    ),
                )
            )
        bundles.sort(key=lambda b: version_key(b.spec.version))
        return ImportPlan(self.kind, str(repo), tuple(bundles), tuple(skipped))

    @staticmethod
    def _files(
        repo: Path, commit: str, prefix: str, mapping: ImportMap
    ) -> tuple[list[PlannedFile], list[Skipped]]:
        raw = git_output(["ls-tree", "-r", "-l", "-z", commit, "--", "data"], repo)
        files, skipped = [], []
        for item in raw.decode("utf-8", errors="surrogateescape").split("\x00"):
            if not item:
                continue
            head, _, path = item.partition("\t")
            mode, kind, _sha, size = head.split()
            legacy = f"{prefix}/{path}"
            if kind != "blob" or mode == "120000":
                skipped.append(Skipped(path, "symlink or submodule"))
            elif mapping.skipped(legacy):
                skipped.append(Skipped(path, "skip: in the mapping"))
            else:
                files.append(PlannedFile(path, path, legacy, int(size), mapping.role(legacy)))
        return files, skipped
