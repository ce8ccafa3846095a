"""A stand-in for ``cvmfs_server`` that behaves like the real one as far as it was observed.

No CernVM-FS server package exists on the development machines. The tests install this file as
an executable named ``cvmfs_server`` on PATH; it keeps the repository state in
``$STANDIN_STATE`` and the publisher's view of each repository in
``$HEPBUNDLE_CVMFS_ROOT/<repo>`` (the ``/cvmfs/<repo>`` of one publisher machine). Each behaviour
below reproduces an observation of ``../shared/CVMFS-NOTES.md`` (a real CernVM-FS 2.11.5
Stratum-0 with its gateway); the tag in brackets names it:

* [quoting] ``publish -a TAG -m MESSAGE`` pastes the message unquoted into a ``sh -c`` command
  line (``… -J $message``) and the tag description into ``-D "$message"``, exactly as
  cvmfs_server_publish.sh builds its swissknife command: ``(`` is a syntax error
  (``sh: 1: Syntax error: "(" unexpected`` + ``Synchronization failed``, exit 1), ``;``/``&``/``|``
  run further commands, ``$(…)`` and backticks are executed. Only the first word of the message
  reaches the sync (recorded in ``sync-argv``); the tag description keeps the whole text.
* [errors] On failure the output ends with ``Executed Command:`` and the echoed command; the
  cause is in the first lines of stderr.
* [exit codes] a second ``transaction`` → ``another transaction is already open``, exit 17;
  ``abort -f`` without one → ``Repository R is not in a transaction``, exit 22; ``publish``
  without one → the same text, exit 1; an unknown repository → ``Unable to find the
  configuration file 'server.conf' …``, exit 1. ``abort`` without ``-f`` would ask a question
  on a terminal: a violation here.
* [tags] ``Tag name 'T' is already in use.`` and ``Spaces are not allowed in tag names`` (exit
  1); ``tag -l`` prints the box-drawn table (Name, Revision, Timestamp, Branch, Description)
  with ``trunk``, ``trunk-previous`` and the ``-a`` tags.
* [list] ``list`` prints ``R (stratum0 / local)``, ``… - in transaction)`` while one is open.
* [EROFS] Outside a transaction ``/cvmfs/R`` is read-only: the tree is bind-mounted read-only
  onto itself (writes fail with EROFS, as on the real overlay), or, where mounting is not
  permitted, made non-writable; in both cases ``transaction`` also checks that nothing changed
  since the last publish (exit 99, ``violation``) — the only check left to a root user without
  mount rights.
* [ingest] ``ingest --tar_file X --base_dir D R`` unpacks under D and publishes in one step,
  tagged ``generic-<UTC time>``; ``ingest -d PATH R`` deletes PATH; a ``.cvmfscatalog`` in the
  tar makes a nested catalog (``list-catalogs``: ``├─ /bundles/…``).
* [leases] ``transaction R/sub/path`` on a repository without a gateway is accepted and the
  sub-path is not enforced. With a gateway (``$STANDIN_STATE/repos/R/repo.json``, the format of
  the gateway's own ``repo.json``: keys bound to sub-paths; the publisher's key id in
  ``$STANDIN_GATEWAY_KEY``) a lease outside the key's path fails ``authorization error:
  invalid_path`` and one overlapping a held lease gets ``{"status": "path_busy", …}``. Each
  publisher (its own ``HEPBUNDLE_CVMFS_ROOT``) starts its transaction from the newest revision;
  its publish merges only the leased sub-tree into the repository, so two publishers holding
  leases on two paths publish concurrently and the revision goes up by two. Changes outside the
  lease are refused (the real gateway's handling of them was not observed).
* [xattrs] publish compresses every new file with zlib and stores it by SHA-1 of the compressed
  bytes (``-Z none``: uncompressed), and sets the client's extended attributes on the tree:
  ``user.hash`` (SHA-1 as stored), ``user.compression``, ``user.fqrn``, ``user.revision``; files
  above 4 MiB are chunked (8 MiB pieces) and have **no** ``user.hash`` (ENODATA) but
  ``user.chunks`` and ``user.chunk_list`` (``hash,offset,size`` lines). The repository root
  answers none of them.
* [mounts] ``mountinfo`` prints what ``/proc/self/mountinfo`` shows on a Stratum-0 for this
  tree: an overlayfs ``overlay_R`` on ``/cvmfs/R`` over ``/var/spool/cvmfs/R/rdonly``, a FUSE
  mount whose source is the repository name (``- fuse R ro,…``), not ``cvmfs2``.

``STANDIN_FAIL=<subcommand>`` makes that subcommand fail (exit 1); every call is logged in
``calls.jsonl`` with its exit code.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

STATE = Path(os.environ["STANDIN_STATE"])
MOUNT = Path(os.environ["HEPBUNDLE_CVMFS_ROOT"])
# absolute, so a test that empties PATH (to hide cvmfs_server) still unmounts what it mounted
MOUNT_BIN = shutil.which("mount") or "/bin/mount"
UMOUNT_BIN = shutil.which("umount") or "/bin/umount"
CHUNK_MIN = 4 << 20
CHUNK_SIZE = 8 << 20
CATALOG_MARKER = ".cvmfscatalog"


class Exit(Exception):
    def __init__(self, code: int, message: str, violation: bool = False) -> None:
        super().__init__(message)
        self.code, self.message, self.violation = code, message, violation


def log(entry: dict[str, object]) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "calls.jsonl", "a") as f:
        direct = os.environ.get("STANDIN_DIRECT") == "1"  # a test's own call, not hepbundle's
        f.write(
            json.dumps({**entry, "time": time.time(), "mount": str(MOUNT), "direct": direct}) + "\n"
        )


@contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def walk(root: Path) -> dict[str, list[Any]]:
    """rel path → [kind, size, mtime_ns] (a change outside a transaction moves mtime)."""
    out: dict[str, list[Any]] = {}
    if not root.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            kind = "dir" if n in dirnames and not os.path.islink(p) else "file"
            out[rel] = [kind, 0 if kind == "dir" else st.st_size, st.st_mtime_ns]
    return out


def clear(root: Path) -> None:
    """Empty ``root`` (a mount point itself cannot be removed)."""
    for p in root.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def copy_into(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if p.is_dir() and not p.is_symlink():
            shutil.copytree(p, dst / p.name, symlinks=True)
        else:
            shutil.copy2(p, dst / p.name, follow_symlinks=False)


class Repo:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dir = STATE / "repos" / name
        self.conf = self.dir / "server.conf"
        self.published = self.dir / "published"  # the newest revision (what clients see)
        self.tree = MOUNT / name  # this publisher's /cvmfs/R
        key = hashlib.sha1(str(MOUNT.absolute()).encode()).hexdigest()[:12]
        self.txn = self.dir / "transactions" / f"{key}.json"  # this publisher's open transaction
        self.view = self.dir / "views" / f"{key}.json"  # what this publisher's tree was at rest
        self.publisher = self.dir / "publishers" / f"{key}.json"  # this machine's set-up

    def exists(self) -> bool:
        return self.conf.is_file()

    def require(self) -> None:
        if not self.exists():
            raise Exit(
                1,
                "Unable to find the configuration file 'server.conf' at "
                f"/etc/cvmfs/repositories.d/{self.name}/server.conf",
            )

    @property
    def config(self) -> dict[str, Any]:
        return read_json(self.conf, {})

    def gateway(self) -> dict[str, Any] | None:
        return read_json(self.dir / "repo.json", None)

    @property
    def revision(self) -> int:
        return int(read_json(self.dir / "revision.json", 1))

    def tags(self) -> list[dict[str, Any]]:
        return list(read_json(self.dir / "tags.json", []))

    # -- the read-only tree outside transactions ([EROFS]) -----------------------------------
    @property
    def mode(self) -> str:
        return str(read_json(self.publisher, {}).get("readonly", "none"))

    def attach(self) -> None:
        """Set up this machine's /cvmfs/R: a copy of the newest revision, read-only."""
        self.tree.mkdir(parents=True, exist_ok=True)
        copy_into(self.published, self.tree)
        mode = "chmod" if os.geteuid() != 0 else "none"
        if os.geteuid() == 0 and os.environ.get("STANDIN_NO_MOUNT") != "1":
            argv = [MOUNT_BIN, "--bind", str(self.tree), str(self.tree)]
            mode = "mount" if subprocess.run(argv, capture_output=True).returncode == 0 else "none"
        self.publisher.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.publisher, {"readonly": mode, "mount": str(MOUNT)})
        self.seal()

    def seal(self) -> None:
        mode = self.mode
        if mode == "mount":
            subprocess.run([MOUNT_BIN, "-o", "remount,bind,ro", str(self.tree)], check=True)
        elif mode == "chmod":
            for dirpath, _, _ in os.walk(self.tree):
                os.chmod(dirpath, 0o555)
        write_json(self.view, walk(self.tree))

    def unseal(self) -> None:
        mode = self.mode
        if mode == "mount":
            subprocess.run([MOUNT_BIN, "-o", "remount,bind,rw", str(self.tree)], check=True)
        elif mode == "chmod":
            for dirpath, _, _ in os.walk(self.tree):
                os.chmod(dirpath, 0o755)

    def check_untouched(self) -> None:
        if self.txn.exists() or not self.view.exists():
            return
        if walk(self.tree) != read_json(self.view, {}):
            raise Exit(99, "the repository was written outside a transaction", violation=True)


def cmd_mkfs(args: list[str]) -> None:
    """``mkfs R`` creates the repository; ``mkfs -w URL R`` on another machine (another
    ``HEPBUNDLE_CVMFS_ROOT``) sets up one more publisher of an existing gateway repository."""
    opts, rest = _options(args, "wuo")
    repo = Repo(rest[-1] if rest else "")
    if "w" in opts:
        repo.require()
        if repo.publisher.exists():
            raise Exit(1, f"Repository {repo.name} already exists")
        repo.attach()
        return
    if repo.exists():
        raise Exit(1, f"Repository {repo.name} already exists")
    repo.dir.mkdir(parents=True)
    repo.published.mkdir()
    (repo.published / "new_repository").write_text("")
    write_json(repo.conf, {"created": time.time()})
    write_json(repo.dir / "revision.json", 2)
    now = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime())
    write_json(
        repo.dir / "tags.json",
        [
            {
                "name": "trunk",
                "revision": 2,
                "timestamp": now,
                "branch": "",
                "description": "current HEAD",
            }
        ],
    )
    repo.attach()
    print(f"Creating configuration files... done\nRepository {repo.name} created")


def _lease_path(target: str) -> str:
    return "/" + target.split("/", 1)[1].strip("/") if "/" in target else "/"


def _overlap(a: str, b: str) -> bool:
    ta, tb = [t for t in a.split("/") if t], [t for t in b.split("/") if t]
    return ta[: len(tb)] == tb[: len(ta)]


def cmd_transaction(args: list[str]) -> None:
    target = args[-1]
    repo = Repo(target.split("/", 1)[0])
    repo.require()
    if repo.txn.exists():
        raise Exit(17, "another transaction is already open")
    gateway = repo.gateway()
    lease = _lease_path(target)
    if gateway is not None:
        key_id = os.environ.get("STANDIN_GATEWAY_KEY", "")
        keys = {
            k["id"]: k["path"]
            for r in gateway["repos"]
            if r["domain"] == repo.name
            for k in r["keys"]
        }
        if key_id not in keys:
            raise Exit(1, "authorization error: invalid_key")
        key_path = keys[key_id]
        if not _overlap(lease, key_path) or len(lease.rstrip("/")) < len(key_path.rstrip("/")):
            raise Exit(1, "authorization error: invalid_path")
        with locked(repo.dir / "gateway.lock"):
            leases = read_json(repo.dir / "leases.json", {})
            for held in leases.values():
                if _overlap(held["path"], lease):
                    print(json.dumps({"status": "path_busy", "time_remaining": "7199s"}))
                    raise Exit(1, "Error acquiring lease: path_busy")
            leases[str(repo.txn)] = {"path": lease, "key": key_id, "since": time.time()}
            write_json(repo.dir / "leases.json", leases)
            base = repo.revision
            # a gateway publisher starts from the newest revision, not from its own stale view
            repo.unseal()
            clear(repo.tree)
            copy_into(repo.published, repo.tree)
            snapshot = walk(repo.tree)
    else:
        repo.check_untouched()
        base, snapshot = repo.revision, None
        repo.unseal()
    write_json(repo.txn, {"lease": lease, "base": base, "gateway": gateway is not None})
    if snapshot is not None:
        write_json(repo.txn.with_suffix(".base"), snapshot)


def _options(args: list[str], with_value: str) -> tuple[dict[str, str], list[str]]:
    opts: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and len(a) == 2:
            if a[1] in with_value:
                if i + 1 >= len(args):
                    raise Exit(1, f"option {a} needs a value")
                opts[a[1]] = args[i + 1]
                i += 2
                continue
            opts[a[1]] = ""
        elif a.startswith("--"):
            opts[a[2:]] = args[i + 1] if i + 1 < len(args) else ""
            i += 2
            continue
        else:
            rest.append(a)
        i += 1
    return opts, rest


def _sh(command: str, out: Path) -> subprocess.CompletedProcess[str]:
    """``$user_shell "$command"``: the command line is code to ``/bin/sh``."""
    return subprocess.run(["sh", "-c", f">{out} {command}"], capture_output=True, text=True)


def cmd_publish(args: list[str]) -> None:
    opts, rest = _options(args, "amZ")
    repo = Repo(rest[-1] if rest else "")
    repo.require()
    if not repo.txn.exists():
        raise Exit(1, f"Repository {repo.name} is not in a transaction")
    tag, message = opts.get("a", ""), opts.get("m", "")
    tags = repo.tags()
    if tag:
        if " " in tag:
            raise Exit(1, "Spaces are not allowed in tag names")
        if any(t["name"] == tag for t in tags):
            raise Exit(1, f"Tag name '{tag}' is already in use.")
    else:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        tag, n = f"generic-{stamp}", 1
        while any(t["name"] == tag for t in tags):
            tag, n = f"generic_{n}-{stamp}", n + 1
    sync = f"printf '%s\\n' cvmfs_swissknife sync -u /cvmfs/{repo.name} -D {tag}"
    if message:
        sync += f" -J {message}"
    proc = _sh(sync, repo.dir / "sync-argv")
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise Exit(1, f"Synchronization failed\n\nExecuted Command:\n{sync}")
    txn = read_json(repo.txn, {})
    compression = "none" if opts.get("Z") == "none" else "zlib"
    if txn.get("gateway"):
        _gateway_merge(repo, txn, compression)
    else:
        _local_commit(repo, compression)
    tag_cmd = f"printf '%s\\n' cvmfs_swissknife tag_edit -a {tag}"
    if message:
        tag_cmd += f' -D "{message}"'
    proc = _sh(tag_cmd, repo.dir / "tag-argv")
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise Exit(1, f"Tagging failed\n\nExecuted Command:\n{tag_cmd}")
    parsed = (repo.dir / "tag-argv").read_text().splitlines()
    description = parsed[parsed.index("-D") + 1] if "-D" in parsed else ""
    _add_tag(repo, tag, description)
    print(f"Tagging {repo.name}")


def _add_tag(repo: Repo, tag: str, description: str) -> None:
    with locked(repo.dir / "gateway.lock"):
        tags = repo.tags()
        now = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime())
        rev = repo.revision
        trunk = [t for t in tags if t["name"] == "trunk"]
        tags = [t for t in tags if t["name"] not in ("trunk", "trunk-previous")]
        if trunk:
            tags.append(
                {**trunk[0], "name": "trunk-previous", "description": "default undo target"}
            )
        tags.append(
            {
                "name": tag,
                "revision": rev,
                "timestamp": now,
                "branch": "",
                "description": description,
            }
        )
        tags.append(
            {
                "name": "trunk",
                "revision": rev,
                "timestamp": now,
                "branch": "",
                "description": "current HEAD",
            }
        )
        write_json(repo.dir / "tags.json", tags)


def _store(repo: Repo, path: Path, compression: str, revision: int) -> None:
    """Process one new or changed file as the sync does, and set the client's xattrs on it."""
    data = path.read_bytes()
    store = (lambda b: b) if compression == "none" else zlib.compress
    objects = repo.dir / "data"
    if len(data) > CHUNK_MIN:
        lines = []
        for off in range(0, len(data), CHUNK_SIZE):
            piece = store(data[off : off + CHUNK_SIZE])
            h = hashlib.sha1(piece).hexdigest()
            (objects / h[:2]).mkdir(parents=True, exist_ok=True)
            (objects / h[:2] / h[2:]).write_bytes(piece)
            lines.append(f"{h},{off},{min(CHUNK_SIZE, len(data) - off)}")
        attrs = {"user.chunks": str(len(lines)), "user.chunk_list": "\n".join(lines)}
        with suppress(OSError):
            os.removexattr(path, "user.hash")
    else:
        piece = store(data)
        h = hashlib.sha1(piece).hexdigest()
        (objects / h[:2]).mkdir(parents=True, exist_ok=True)
        (objects / h[:2] / h[2:]).write_bytes(piece)
        attrs = {"user.hash": h}
        for gone in ("user.chunks", "user.chunk_list"):
            with suppress(OSError):
                os.removexattr(path, gone)
    attrs.update(
        {"user.compression": compression, "user.fqrn": repo.name, "user.revision": str(revision)}
    )
    for k, v in attrs.items():
        os.setxattr(path, k, v.encode())


def _process(
    repo: Repo, tree: Path, before: dict[str, list[Any]], compression: str, revision: int
) -> dict[str, list[Any]]:
    now = walk(tree)
    for rel, meta in now.items():
        p = tree / rel
        if meta[0] == "file" and not p.is_symlink():
            if before.get(rel) != meta:
                _store(repo, p, compression, revision)
            else:
                os.setxattr(p, "user.revision", str(revision).encode())
    return now


def _local_commit(repo: Repo, compression: str) -> None:
    before = read_json(repo.view, {})
    revision = repo.revision + 1
    now = _process(repo, repo.tree, before, compression, revision)
    # bring the published copy up to date, file by file
    for rel in sorted(set(before) - set(now), key=len, reverse=True):
        p = repo.published / rel
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            p.unlink()
    for rel, meta in sorted(now.items()):
        if before.get(rel) == meta and (repo.published / rel).exists():
            continue
        src, dst = repo.tree / rel, repo.published / rel
        if meta[0] == "dir":
            dst.mkdir(parents=True, exist_ok=True)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst, follow_symlinks=False)
    write_json(repo.dir / "revision.json", revision)
    repo.txn.unlink()
    repo.seal()


def _gateway_merge(repo: Repo, txn: dict[str, Any], compression: str) -> None:
    lease = txn["lease"].strip("/")
    base = read_json(repo.txn.with_suffix(".base"), {})
    now = walk(repo.tree)

    def differs(rel: str) -> bool:
        a, b = base.get(rel), now.get(rel)
        if a is None or b is None:  # added or removed
            return a != b
        return a[0] == "file" and a != b  # a directory's mtime moves with its entries

    ancestors = {"/".join(lease.split("/")[:i]) for i in range(1, lease.count("/") + 1)}
    changed = sorted(r for r in set(base) | set(now) if differs(r) and r not in ancestors)
    outside = [r for r in changed if lease and r != lease and not r.startswith(lease + "/")]
    if outside:
        raise Exit(1, f"changes outside the lease path /{lease}: /{outside[0]}")
    with locked(repo.dir / "gateway.lock"):
        revision = repo.revision + 1
        _process(
            repo,
            repo.tree / lease if lease else repo.tree,
            {k[len(lease) + 1 :] if lease else k: v for k, v in base.items()},
            compression,
            revision,
        )
        target = repo.published / lease if lease else repo.published
        if target.exists():
            if lease:
                shutil.rmtree(target)
            else:
                clear(target)
        if (repo.tree / lease).exists():
            copy_into(repo.tree / lease, target)
        write_json(repo.dir / "revision.json", revision)
        leases = read_json(repo.dir / "leases.json", {})
        leases.pop(str(repo.txn), None)
        write_json(repo.dir / "leases.json", leases)
    repo.txn.unlink()
    repo.txn.with_suffix(".base").unlink(missing_ok=True)
    repo.seal()


def cmd_abort(args: list[str]) -> None:
    opts, rest = _options(args, "")
    if "f" not in opts:
        raise Exit(99, "abort without -f would ask a question", violation=True)
    repo = Repo(rest[-1] if rest else "")
    repo.require()
    if not repo.txn.exists():
        raise Exit(22, f"Repository {repo.name} is not in a transaction")
    txn = read_json(repo.txn, {})
    clear(repo.tree)
    copy_into(repo.published, repo.tree)
    if txn.get("gateway"):
        with locked(repo.dir / "gateway.lock"):
            leases = read_json(repo.dir / "leases.json", {})
            leases.pop(str(repo.txn), None)
            write_json(repo.dir / "leases.json", leases)
        repo.txn.with_suffix(".base").unlink(missing_ok=True)
    repo.txn.unlink()
    repo.seal()


def cmd_list(args: list[str]) -> None:
    base = STATE / "repos"
    for d in sorted(base.iterdir()) if base.is_dir() else []:
        repo = Repo(d.name)
        if not repo.exists():
            continue
        kind = "gw" if repo.gateway() is not None else "local"
        busy = " - in transaction" if repo.txn.exists() else ""
        print(f"{repo.name} (stratum0 / {kind}{busy})")


def cmd_tag(args: list[str]) -> None:
    opts, rest = _options(args, "")
    repo = Repo(rest[-1] if rest else "")
    repo.require()
    if "l" not in opts:
        raise Exit(1, "this stand-in only lists tags (tag -l)")
    rows = [["Name", "Revision", "Timestamp", "Branch", "Description"]]
    rows += [
        [t["name"], str(t["revision"]), t["timestamp"], t["branch"], t["description"]]
        for t in repo.tags()
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    fmt = lambda r: " " + " │ ".join(c.ljust(w) for c, w in zip(r, widths, strict=False))  # noqa: E731
    print(fmt(rows[0]))
    print("─" + "─┼─".join("─" * w for w in widths) + "─")
    for r in rows[1:]:
        print(fmt(r))


def cmd_ingest(args: list[str]) -> None:
    opts, rest = _options(args, "tbd")
    tar_file = opts.get("t") or opts.get("tar_file")
    base_dir = (opts.get("b") or opts.get("base_dir") or "").strip("/")
    delete = (opts.get("d") or opts.get("delete") or "").strip("/")
    name = rest[-1] if rest else ""
    cmd_transaction([f"{name}/{base_dir or delete}" if base_dir or delete else name])
    repo = Repo(name)
    try:
        if delete:
            p = repo.tree / delete
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        if tar_file:
            dest = repo.tree / base_dir
            dest.mkdir(parents=True, exist_ok=True)
            with tarfile.open(tar_file) as tar:
                tar.extractall(dest, filter="data")
    except BaseException:
        cmd_abort(["-f", name])
        raise
    cmd_publish([name])


def cmd_list_catalogs(args: list[str]) -> None:
    repo = Repo(args[-1])
    repo.require()
    print("/")
    for dirpath, _, filenames in sorted(os.walk(repo.published)):
        if CATALOG_MARKER in filenames and Path(dirpath) != repo.published:
            print(f"├─ /{os.path.relpath(dirpath, repo.published)}")


def cmd_mountinfo(args: list[str]) -> None:
    """The Stratum-0 mount layout of ``/cvmfs/R`` ([mounts]), with this tree as /cvmfs/R."""
    repo = Repo(args[-1])
    repo.require()
    spool = STATE / "spool" / "cvmfs" / repo.name / "rdonly"  # /var/spool/cvmfs/R/rdonly
    spool.mkdir(parents=True, exist_ok=True)
    txn = repo.txn.exists()
    print(f"101 27 0:52 / {spool} ro,nosuid,nodev,relatime shared:60 - fuse {repo.name} "
          "ro,user_id=0,group_id=0,default_permissions,allow_other")  # fmt: skip
    print(f"102 27 0:53 / {repo.tree} {'rw' if txn else 'ro'},relatime shared:61 - overlay "
          f"overlay_{repo.name} {'rw' if txn else 'ro'},lowerdir={spool},"
          f"upperdir={spool.parent}/scratch/current,workdir={spool.parent}/ofs_workdir")  # fmt: skip


def cmd_rmfs(args: list[str]) -> None:
    """Take this machine's /cvmfs/R down (the tests' clean-up: no mount outlives a test)."""
    repo = Repo(args[-1])
    repo.require()
    if repo.mode == "mount":
        subprocess.run([UMOUNT_BIN, "-l", str(repo.tree)], check=False)
    elif repo.mode == "chmod":
        repo.unseal()
    repo.publisher.unlink(missing_ok=True)


COMMANDS = {
    "rmfs": cmd_rmfs,
    "mkfs": cmd_mkfs,
    "transaction": cmd_transaction,
    "publish": cmd_publish,
    "abort": cmd_abort,
    "list": cmd_list,
    "tag": cmd_tag,
    "ingest": cmd_ingest,
    "list-catalogs": cmd_list_catalogs,
    "mountinfo": cmd_mountinfo,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        log({"argv": argv, "exit": 2, "error": "unknown command"})
        print(f"cvmfs_server: unknown command {argv[:1]}", file=sys.stderr)
        return 2
    try:
        if argv[0] == os.environ.get("STANDIN_FAIL"):
            raise Exit(1, f"{argv[0]}: simulated failure")
        COMMANDS[argv[0]](argv[1:])
    except Exit as e:
        log({"argv": argv, "exit": e.code, "error": e.message, "violation": e.violation})
        print(e.message, file=sys.stderr)
        return e.code
    log({"argv": argv, "exit": 0})
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
