"""Pin the training code: remotes, commit, branch/tags and dirty state of a git checkout.

Runs the real ``git`` through :mod:`subprocess` (never a shell). A dirty tree is refused unless
the build allows it; then the diff against ``HEAD``, untracked files included, is packed into
the bundle so the exact code that trained the model can still be rebuilt.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..digest import sha256_bytes
from ..errors import BuildError, SpecError
from .datarefs import Where

__all__ = ["PATCH_PATH", "CodePin", "git_output", "pin_code", "strip_credentials"]

#: where the diff of a dirty checkout is packed in the bundle
PATCH_PATH = "provenance/dirty.patch"


@dataclass(frozen=True)
class CodePin:
    """The manifest's ``provenance.code`` record and, for a dirty tree, the patch to pack."""

    record: dict[str, Any]
    patch: bytes | None = None


def pin_code(section: Mapping[str, Any], base: Path, *, allow_dirty: bool, where: Where) -> CodePin:
    """Pin ``code:`` of a spec: a checkout ``path`` (inspected with git), or a declared
    ``repository`` + ``commit`` (recorded as given). ``where`` prefixes errors (``file:line: ``)."""
    record: dict[str, Any] = {"vcs": "git"}
    patch: bytes | None = None
    if "path" in section:
        checkout = (base / str(section["path"])).resolve()
        record.update(_inspect(checkout, where))
        if record["dirty"]:
            if not allow_dirty:
                changed = ", ".join(record["changes"][:5])
                more = len(record["changes"]) - 5
                raise BuildError(
                    f"{where()}code: the checkout {checkout} has uncommitted changes "
                    f"({changed}{f' and {more} more' if more > 0 else ''})",
                    hint="commit them, or build with --allow-dirty to pack the diff",
                )
            patch = _diff(Path(record.pop("toplevel")), where)
            record["patch"] = {"path": PATCH_PATH, "sha256": sha256_bytes(patch)}
        else:
            record.pop("toplevel")
        record.pop("changes")
        declared = section.get("commit")
        if declared and not str(record["commit"]).startswith(str(declared)):
            raise SpecError(
                f"{where('commit')}code.commit: {declared} does not match the checkout's HEAD "
                f"{record['commit']}",
                hint="remove 'commit:' (it is read from the checkout) or check out that commit",
            )
    elif "repository" in section and "commit" in section:
        record["remote"] = strip_credentials(str(section["repository"]))
        record["commit"] = str(section["commit"])
        record["declared"] = True  # not inspected: nothing here proves the commit exists
        for key in ("branch", "tag"):
            if key in section:
                record[key] = str(section[key])
    else:
        raise SpecError(
            f"{where()}code: say where the training code is",
            hint="give 'path:' (a git checkout) or 'repository:' and 'commit:'",
        )
    if "command" in section:
        record["command"] = str(section["command"])
    entry = section.get("entry_point") or _entry_point(record.get("command"), section, base)
    if entry:
        record["entryPoint"] = str(entry)
    return CodePin(record=record, patch=patch)


def strip_credentials(url: str) -> str:
    """Drop ``user:token@`` from an https remote: tokens must never reach a published manifest."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("http", "https") and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urllib.parse.urlunsplit(parts._replace(netloc=host))
    return url


def git_output(
    args: list[str],
    cwd: Path,
    *,
    ok: tuple[int, ...] = (0,),
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
) -> bytes:
    """``git ARGS`` in ``cwd`` (stdout; one-line BuildError for an exit status not in ``ok``),
    with ``env`` added to the environment and ``input`` on stdin."""
    exe = shutil.which("git")
    if exe is None:
        raise BuildError("git is not installed", hint="install git to pin the training code")
    # read-only: take no locks
    full = {**os.environ, "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0", **(env or {})}
    p = subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, env=full, check=False, input=input
    )
    if p.returncode not in ok:
        msg = p.stderr.decode(errors="replace").strip().splitlines()
        raise BuildError(f"git {args[0]} failed in {cwd}: {msg[-1] if msg else p.returncode}")
    return p.stdout


def _text(args: list[str], cwd: Path) -> str:
    return git_output(args, cwd).decode(errors="replace").strip()


def _inspect(checkout: Path, where: Where) -> dict[str, Any]:
    if not checkout.is_dir():
        raise SpecError(f"{where('path')}code.path: {checkout} is not a directory")
    try:
        top = Path(_text(["rev-parse", "--show-toplevel"], checkout))
    except BuildError:
        raise SpecError(
            f"{where('path')}code.path: {checkout} is not inside a git checkout"
        ) from None
    try:
        commit = _text(["rev-parse", "--verify", "HEAD^{commit}"], top)
    except BuildError:
        raise BuildError(
            f"{where()}code: the checkout {top} has no commit yet", hint="commit the training code"
        ) from None
    out: dict[str, Any] = {"commit": commit, "toplevel": str(top)}
    remotes = {}
    for name in _text(["remote"], top).split():
        url = _text(["remote", "get-url", name], top)
        remotes[name] = strip_credentials(url)
    if remotes:
        out["remotes"] = remotes
        out["remote"] = remotes.get("origin") or remotes[sorted(remotes)[0]]
    # exit status 1: a detached HEAD (a CI checkout of a tag or commit), which is fine
    branch = (
        git_output(["symbolic-ref", "--quiet", "--short", "HEAD"], top, ok=(0, 1)).decode().strip()
    )
    if branch:
        out["branch"] = branch
    tags = _text(["tag", "--points-at", "HEAD"], top).split()
    if tags:
        out["tags"] = sorted(tags)
    out["commitTime"] = _text(["show", "-s", "--format=%cI", "HEAD"], top)
    sub = checkout.relative_to(top.resolve()).as_posix() if checkout != top.resolve() else ""
    if sub:
        out["subdirectory"] = sub
    status = git_output(["status", "--porcelain=v1", "-z", "--untracked-files=all"], top)
    changes = [e[3:].decode(errors="replace") for e in status.split(b"\0") if len(e) > 3]
    out["dirty"] = bool(changes)
    out["changes"] = changes
    return out


def _diff(top: Path, where: Where) -> bytes:
    """``git diff HEAD`` (binary-safe) plus every untracked, not ignored file as a new-file diff,
    without touching the checkout's index."""
    parts = [git_output(["diff", "--binary", "--no-color", "--no-ext-diff", "HEAD"], top)]
    untracked = git_output(["ls-files", "--others", "--exclude-standard", "-z"], top)
    for rel in sorted(p for p in untracked.decode(errors="surrogateescape").split("\0") if p):
        # --no-index exits 1 when the files differ, which is always the case against /dev/null
        parts.append(
            git_output(
                ["diff", "--binary", "--no-color", "--no-index", "--", os.devnull, rel],
                top,
                ok=(0, 1),
            )
        )
    patch = b"".join(parts)
    if not patch:
        raise BuildError(f"{where()}code: git reports changes but produced an empty diff")
    return patch


def _entry_point(command: Any, section: Mapping[str, Any], base: Path) -> str | None:
    """The script or module the command runs: ``python train.py`` → ``train.py``,
    ``python -m pkg.train`` → ``pkg.train``."""
    if not command:
        return None
    try:
        words = shlex.split(str(command))
    except ValueError:
        return None
    for i, w in enumerate(words):
        if w == "-m" and i + 1 < len(words):
            return words[i + 1]
        if w.endswith((".py", ".sh")) or (
            "path" in section and (base / str(section["path"]) / w).is_file() and i > 0
        ):
            return w
    return None
