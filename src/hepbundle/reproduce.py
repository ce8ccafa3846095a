"""Retrain-ability of a bundle: check that everything needed to re-train is at hand, and re-run it.

:func:`check` reads the manifest's provenance and answers, item by item: is the pinned commit
reachable (in a mirror or checkout the caller names, the git checkout of the current
directory, or — only when network use is allowed — the recorded remote), is the environment
lock packed and intact, does every data reference resolve to a file with the recorded checksum,
is the training command recorded. :func:`run` then checks out the commit into a work directory, creates the environment
from the lock (or reuses the current one), links the data where the command expects it, runs
the command, and compares the metrics it writes with the recorded ones.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .digest import hash_file
from .errors import HepbundleError, ToolError

if TYPE_CHECKING:
    from .bundle import Bundle

__all__ = ["CheckItem", "CheckReport", "RunReport", "check", "run"]

Status = Literal["ok", "missing", "unchecked"]
_URL_PREFIXES = ("http://", "https://", "ssh://", "git://", "git@", "file://")
_GIT_TIMEOUT = 120


@dataclass(frozen=True)
class CheckItem:
    """One requirement of a re-training and whether it is met."""

    what: str
    name: str
    status: Status
    detail: str = ""
    #: where it was found (a git source, a data file), for :func:`run`
    found: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "name": self.name, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class CheckReport:
    """All items and the verdict: ``ready`` when every item was checked and found,
    ``unconfirmed`` when none is missing but some could not be checked here (a Rucio DID with
    no Rucio to ask, a DOI), ``not reproducible`` when one is missing. :attr:`ready` is "nothing
    missing"; :attr:`confirmed` also needs nothing unchecked."""

    ref: str
    items: tuple[CheckItem, ...]

    @property
    def missing(self) -> list[CheckItem]:
        return [i for i in self.items if i.status == "missing"]

    @property
    def unchecked(self) -> list[CheckItem]:
        return [i for i in self.items if i.status == "unchecked"]

    @property
    def ready(self) -> bool:
        return not self.missing

    @property
    def confirmed(self) -> bool:
        return self.ready and not self.unchecked

    @property
    def verdict(self) -> str:
        if not self.ready:
            return "not reproducible"
        return "ready" if self.confirmed else "unconfirmed"

    def item(self, what: str) -> CheckItem | None:
        return next((i for i in self.items if i.what == what), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "verdict": self.verdict,
            "missing": [f"{i.what}: {i.name}" for i in self.missing],
            "unchecked": [f"{i.what}: {i.name}" for i in self.unchecked],
            "items": [i.to_json() for i in self.items],
        }


def check(
    bundle: Bundle,
    *,
    mirrors: Sequence[str] = (),
    data_dirs: Sequence[str | os.PathLike[str]] = (),
    network: bool = False,
) -> CheckReport:
    """What a re-training of ``bundle`` needs, and whether each piece is available here."""
    prov = bundle.manifest.meta.get("provenance") or {}
    code = prov.get("code") or {}
    items = [_check_code(code, mirrors, network)]
    items += _check_patch(bundle, code)
    items.append(_check_lock(bundle, prov.get("environment") or {}))
    data = bundle.manifest.meta.get("data") or []
    items += [_check_data(ref, data_dirs) for ref in data]
    if not data:
        items.append(
            CheckItem("data", "(none recorded)", "missing", "the manifest has no data refs")
        )
    command = code.get("command") or (prov.get("training") or {}).get("command")
    items.append(
        CheckItem("command", str(command), "ok")
        if command
        else CheckItem(
            "command", "(none)", "missing", "no training command recorded (code.command)"
        )
    )
    return CheckReport(bundle.ref, tuple(items))


def _check_code(code: Mapping[str, Any], mirrors: Sequence[str], network: bool) -> CheckItem:
    commit = code.get("commit")
    if not commit:
        return CheckItem("code", "(no pin)", "missing", "no code commit recorded (spec 'code:')")
    # the manifest does not record local paths; a checkout the user stands in is worth a try
    here = _git(["rev-parse", "--show-toplevel"], Path.cwd())
    cwd_repo = here.stdout.decode().strip() if here.returncode == 0 else None
    sources = [*mirrors, code.get("toplevel"), cwd_repo, code.get("remote")]
    tried = []
    for src in dict.fromkeys(s for s in sources if s):
        remote = str(src).startswith(_URL_PREFIXES)
        if remote and not network and src not in mirrors:
            tried.append(f"{src} (remote, not tried without --network)")
            continue
        if _has_commit(str(src), str(commit)):
            return CheckItem(
                "code", str(commit)[:12], "ok", f"commit found in {src}", found=str(src)
            )
        tried.append(str(src))
    return CheckItem(
        "code",
        str(commit)[:12],
        "missing",
        f"commit not found in: {'; '.join(tried) or 'no source (give --mirror)'}",
    )


def _has_commit(source: str, commit: str) -> bool:
    if Path(source).is_dir():
        return _git(["cat-file", "-e", f"{commit}^{{commit}}"], Path(source)).returncode == 0
    with tempfile.TemporaryDirectory(prefix="hepbundle-fetch-") as tmp:
        _git(["init", "-q", "--bare"], Path(tmp))
        return _git(["fetch", "-q", "--depth=1", source, commit], Path(tmp)).returncode == 0


def _git(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, env=env, capture_output=True, timeout=_GIT_TIMEOUT
        )
    except FileNotFoundError:
        raise ToolError("git is not installed", hint="install git to check code pins") from None
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, b"", b"timeout")


def _check_patch(bundle: Bundle, code: Mapping[str, Any]) -> list[CheckItem]:
    if not code.get("dirty"):
        return []
    patch = next((f.path for f in bundle.files() if f.path.endswith("dirty.patch")), None)
    if patch is None:
        return [CheckItem("code", "dirty diff", "missing", "built from a dirty tree, no patch")]
    return [_packed("code", patch, bundle)]


def _check_lock(bundle: Bundle, env: Mapping[str, Any]) -> CheckItem:
    lock = env.get("lock") or {}
    path = lock.get("path")
    if not path:
        return CheckItem("environment", "(no lock)", "missing", "no environment lock recorded")
    item = _packed("environment", str(path), bundle)
    if item.status != "ok" or not env.get("imported"):
        return item
    # taken from the legacy store: the packages are known, the training host is not
    python = f"Python {env['python']}, " if env.get("python") else ""
    how = (
        "the pip environment can be recreated from it"
        if str(lock.get("format", "")).startswith("pip")
        else "a conda environment file (conda env create -f)"
    )
    detail = (
        f"{item.detail}; imported from {lock.get('source', env['imported'])}: {how} "
        f"({python}training host OS, machine and CUDA unknown)"
    )
    return replace(item, detail=detail)


def _packed(what: str, path: str, bundle: Bundle) -> CheckItem:
    try:
        return CheckItem(what, path, "ok", "packed, digest verified", found=str(bundle.path(path)))
    except (HepbundleError, OSError) as e:  # absent or modified: the re-training lacks it
        return CheckItem(what, path, "missing", str(e))


def _check_data(ref: Mapping[str, Any], data_dirs: Sequence[str | os.PathLike[str]]) -> CheckItem:
    kind = str(ref.get("type"))
    name = str(ref.get("path") or ref.get("did") or ref.get("doi") or ref.get("record") or kind)
    if kind == "rucio":
        return _check_rucio(name)
    if kind not in ("file", "npz"):
        return CheckItem("data", name, "unchecked", f"{kind} reference: not resolvable offline")
    want = ref.get("sha256")
    path = Path(name)
    candidates = [path] if path.is_absolute() else [Path(d) / name for d in (*data_dirs, ".")]
    in_checkout = ref.get("checkoutPath")
    if in_checkout and not path.is_absolute():
        # recorded at build: where the file lies in the training checkout, found from the
        # checkout the user stands in (any directory of it) or under a --data-dir
        here = _git(["rev-parse", "--show-toplevel"], Path.cwd())
        top = here.stdout.decode().strip() if here.returncode == 0 else None
        candidates += [Path(d) / str(in_checkout) for d in (*([top] if top else []), *data_dirs)]
    candidates += [] if path.is_absolute() else [Path(d) / path.name for d in data_dirs]
    for c in candidates:
        if not c.is_file():
            continue
        got = hash_file(c).sha256
        if want and got != want:
            return CheckItem(
                "data", name, "missing", f"{c} has sha256 {got[:12]}…, recorded {str(want)[:12]}…"
            )
        return CheckItem(
            "data", name, "ok", f"{c} matches" if want else f"{c} (no checksum)", found=str(c)
        )
    where = ", ".join(str(c.parent) for c in candidates) or "-"
    return CheckItem("data", name, "missing", f"not found in {where} (give --data-dir)")


def _check_rucio(did: str) -> CheckItem:
    """Ask Rucio (where a client configuration exists) whether every file of ``did`` still has
    an AVAILABLE replica, and on which RSEs."""
    from .errors import DataError, MissingExtraError
    from .remote import rucio

    if rucio.configured() is None:
        return CheckItem(
            "data", did, "unchecked", "Rucio DID: no Rucio server configured (RUCIO_CONFIG)"
        )
    try:
        reps = rucio.replicas(did)
    except MissingExtraError as e:
        return CheckItem("data", did, "unchecked", f"Rucio DID: {e}")
    except rucio.DidNotFound:
        return CheckItem("data", did, "missing", "Rucio no longer knows this DID")
    except DataError as e:
        return CheckItem("data", did, "unchecked", str(e))
    where = ", ".join(f"{r} {n}/{reps.files}" for r, n in sorted(reps.available.items()))
    if reps.files == 0:
        return CheckItem("data", did, "missing", "Rucio lists no files for this DID")
    if reps.covered < reps.files:
        return CheckItem(
            "data",
            did,
            "missing",
            f"{reps.files - reps.covered} of {reps.files} files have no available replica"
            + (f" (available: {where})" if where else ""),
        )
    return CheckItem(
        "data", did, "ok", f"{reps.files} file(s) with replicas on: {where}", found=None
    )


@dataclass
class RunReport:
    """A re-training: where it ran, how it ended, and how its metrics compare."""

    workdir: Path
    check: CheckReport
    returncode: int
    log: Path
    environment: str
    metrics: dict[str, float] = field(default_factory=dict)
    comparison: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            self.returncode == 0
            and bool(self.comparison)
            and all(c["within"] for c in self.comparison)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "workdir": str(self.workdir),
            "check": self.check.to_json(),
            "returncode": self.returncode,
            "log": str(self.log),
            "environment": self.environment,
            "metrics": self.metrics,
            "comparison": self.comparison,
            "passed": self.passed,
        }


def run(
    bundle: Bundle,
    workdir: str | os.PathLike[str],
    *,
    mirrors: Sequence[str] = (),
    data_dirs: Sequence[str | os.PathLike[str]] = (),
    network: bool = False,
    environment: Literal["lock", "current"] = "lock",
    metrics_file: str | None = None,
    tolerance: float = 0.01,
    timeout: float | None = None,
) -> RunReport:
    """Re-train ``bundle`` in ``workdir`` (must be empty or absent) and compare metrics."""
    report = check(bundle, mirrors=mirrors, data_dirs=data_dirs, network=network)
    if not report.ready:
        first = report.missing[0]
        raise ToolError(
            f"{bundle.ref} cannot be re-trained: {first.what} {first.name}: {first.detail}",
            hint="run 'hepbundle reproduce REF --check' for the full list",
        )
    work = Path(workdir).absolute()
    if work.exists() and any(work.iterdir()):
        raise ToolError(f"work directory {work} is not empty", hint="give a new directory")
    work.mkdir(parents=True, exist_ok=True)
    prov = bundle.manifest.meta.get("provenance") or {}
    code = prov.get("code") or {}
    src = _checkout(report, str(code["commit"]), work / "src")
    patch = next((i for i in report.items if i.name.endswith("dirty.patch") and i.found), None)
    if patch is not None and patch.found and _git(["apply", patch.found], src).returncode != 0:
        raise ToolError(f"the packed dirty diff does not apply to {code['commit'][:12]}")
    command = str(code.get("command") or (prov.get("training") or {}).get("command"))
    in_checkout = {
        str(d.get("path")): str(d["checkoutPath"])
        for d in bundle.manifest.meta.get("data") or []
        if isinstance(d, dict) and d.get("checkoutPath")
    }
    for item in report.items:
        if item.what == "data" and item.found:
            found = Path(item.found).absolute()
            _link_data(src, item.name, found, shlex.split(command))
            if item.name in in_checkout:  # where the training checkout had it
                _link_data(src, in_checkout[item.name], found, ())
    lock_item = report.item("environment")
    env_desc, path_prefix = _environment(environment, work, lock_item.found if lock_item else None)
    log = work / "train.log"
    env = {**os.environ}  # the training inherits the environment, its venv first on PATH
    env["PATH"] = f"{path_prefix}{os.pathsep}{env.get('PATH', '')}"
    with open(log, "wb") as f:
        try:
            rc = subprocess.run(
                shlex.split(command),
                cwd=src,
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            ).returncode
        except FileNotFoundError as e:
            raise ToolError(f"cannot run the recorded command {command!r}: {e.strerror}") from None
        except subprocess.TimeoutExpired:
            rc = 124
    out = RunReport(work, report, rc, log, env_desc)
    if rc == 0:
        out.metrics = _read_metrics(src, metrics_file or _record_name(prov))
        out.comparison = _compare(bundle.manifest.meta.get("metrics") or [], out.metrics, tolerance)
    return out


def _link_data(src: Path, recorded: str, found: Path, argv: Sequence[str]) -> None:
    """Link ``found`` where the command will look: the recorded path (relative to the spec,
    which usually lies in the checkout) and every relative command argument with that file
    name (``--data data/jets.npz``); never outside the checkout."""
    name = Path(recorded).name
    targets = [recorded, *(a for a in argv if Path(a).name == name)]
    for t in dict.fromkeys(t for t in targets if not Path(t).is_absolute()):
        link = (src / t).resolve()
        if not link.is_relative_to(src.resolve()) or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(found)


def _checkout(report: CheckReport, commit: str, dest: Path) -> Path:
    item = report.item("code")
    assert item is not None and item.found is not None
    # a local mirror given relative to where the user stands: git runs elsewhere
    source = str(Path(item.found).resolve()) if Path(item.found).exists() else item.found
    if _git(["clone", "-q", "--no-checkout", source, str(dest)], dest.parent).returncode != 0:
        raise ToolError(f"git clone of {item.found} failed")
    if _git(["checkout", "-q", "--detach", commit], dest).returncode != 0:
        # the commit is not on a branch of the source: fetch it by id
        _git(["fetch", "-q", source, commit], dest)
        if _git(["checkout", "-q", "--detach", commit], dest).returncode != 0:
            raise ToolError(f"cannot check out {commit[:12]} from {item.found}")
    return dest


def _environment(kind: str, work: Path, lock: str | None) -> tuple[str, str]:
    """(description, PATH prefix) of the environment the command runs in."""
    if kind == "current":
        return f"current interpreter {sys.executable} (lock not installed)", str(
            Path(sys.executable).parent
        )
    if lock is None:
        raise ToolError("no environment lock to create the environment from")
    venv = work / "venv"
    wanted = [
        ln.strip()
        for ln in Path(lock).read_text(encoding="utf-8", errors="replace").splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    # a lock of the standard library only needs no pip (and no index) at all
    args = ["-m", "venv", *([] if wanted else ["--without-pip"]), str(venv)]
    made = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    if made.returncode != 0:
        raise ToolError(f"cannot create a virtualenv in {venv}: {made.stderr.strip()[-200:]}")
    if wanted:
        pip = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", lock],
            capture_output=True,
            text=True,
        )
        if pip.returncode != 0:
            last = (pip.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise ToolError(f"cannot create the environment from the lock: {last}")
    return f"virtualenv {venv} from the packed lock", str(venv / "bin")


def _record_name(prov: Mapping[str, Any]) -> str:
    source = (prov.get("training") or {}).get("source") or {}
    return str(source.get("record") or "metrics.json")


def _read_metrics(src: Path, name: str) -> dict[str, float]:
    path = src / name
    if not path.is_file():
        # the manifest keeps the record's file name only: look for it anywhere in the checkout
        path = next(iter(sorted(src.rglob(Path(name).name))), path)
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ToolError(
            f"the training did not write {name}", hint="pass --metrics-file with what it writes"
        ) from None
    except ValueError as e:
        raise ToolError(f"{path} is not valid JSON: {e}") from None
    metrics = obj.get("metrics", obj) if isinstance(obj, dict) else {}
    if isinstance(metrics, list):
        return {_key(m): float(m["value"]) for m in metrics if isinstance(m, dict) and "value" in m}
    return {str(k): float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def _key(m: Mapping[str, Any]) -> str:
    return f"{m['name']}/{m['split']}" if m.get("split") else str(m["name"])


def _compare(
    recorded: Sequence[Mapping[str, Any]], new: Mapping[str, float], tolerance: float
) -> list[dict[str, Any]]:
    rows = []
    for m in recorded:
        key = _key(m)
        value = new.get(key, new.get(str(m["name"])))
        if value is None or not isinstance(m.get("value"), int | float):
            continue
        diff = value - float(m["value"])
        rows.append(
            {
                "name": key,
                "recorded": float(m["value"]),
                "new": value,
                "diff": diff,
                "within": abs(diff) <= tolerance,
            }
        )
    return rows
