"""Signed catalogue statements: every publish, alias move and yank of a name, hash-chained.

Each change a writer makes to ``catalog/<ns>/<name>.json`` appends one statement per effect to
the file's ``statements`` list (``bundle-spec/repository.md``, ``statement.schema.json``)::

    {"type": "publish", "name": "atlas/tauid", "version": "1.2.0", "manifestSha256": "…",
     "seq": 3, "previous": "sha256:<digest of statement 2>", "serial": 17,
     "repository": "ml.cern.ch", "time": "…", "expires": "…"}

signed as an OMS signature (role ``release``) by a signer the trust policy allows for that
action and namespace (the rule's ``catalog:`` signers). ``previous`` makes the list a hash chain,
so one valid signature on the newest statement vouches for everything before it, and a file
spliced together from several versions does not verify.

:func:`check_catalog` is what ``resolve`` runs: replay the chain (published versions and their
manifest digests, last signed alias moves, yanks) and refuse a catalogue whose unsigned fields
disagree with it (an alias pointing elsewhere than its last signed move, an un-yanked version, a
hidden newer release), a head statement past its ``expires`` time (a frozen mirror), or a
chain older than this node has seen (rollback: :class:`NodeState`, in the node cache).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._base import utc_timestamp
from ..errors import PolicyError, SigningError, VerificationError
from ..manifest import canonical_json
from .refs import VALID, is_prerelease, version_key

if TYPE_CHECKING:
    from .._signers import Signer
    from ..policy import TrustPolicy
    from ..signing import ParsedStatement
    from ..validity import Context
    from .catalog import NameCatalog, VersionRecord

__all__ = [
    "CatalogRollbackError",
    "NodeState",
    "check_catalog",
    "sign_changes",
    "statement_digest",
]

log = logging.getLogger("hepbundle")


class CatalogRollbackError(VerificationError):
    """The catalogue is older than one this node has already seen, or has expired."""


def statement_digest(body: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of the canonical statement: what the next statement's ``previous`` is."""
    return "sha256:" + hashlib.sha256(canonical_json(dict(body))).hexdigest()


def _bodies(cat: NameCatalog, where: str) -> list[ParsedStatement]:
    from ..signing import parse_statement

    return [parse_statement(doc, f"{where} statement {i}") for i, doc in enumerate(cat.statements)]


def _effects(before: NameCatalog, after: NameCatalog) -> list[dict[str, Any]]:
    """The statements that describe going from ``before`` to ``after``."""
    out: list[dict[str, Any]] = []
    for v, rec in sorted(after.versions.items(), key=lambda kv: version_key(kv[0])):
        if v not in before.versions:
            out.append(
                {
                    "type": "publish",
                    "version": v,
                    "manifestSha256": rec.manifest_digest,
                    # the scope as recorded (null: none), so choices by scope are signed too
                    "validity": dict(rec.validity) if rec.validity else None,
                }
            )
    for alias, v in sorted(after.aliases.items()):
        if before.aliases.get(alias) != v:
            out.append({"type": "alias", "alias": alias, "version": v})
    for v, rec in sorted(after.versions.items()):
        old = before.versions.get(v)
        if rec.yanked is not None and (old is None or old.yanked is None):
            out.append({"type": "yank", "version": v, "reason": rec.yanked})
    return out


def sign_changes(
    before: NameCatalog,
    after: NameCatalog,
    signer: Signer | None,
    *,
    policy: TrustPolicy | None,
    repository: str,
    serial: int | None,
    expires_days: float | None = None,
    serial_file: str = "catalog/repository.json",
) -> NameCatalog:
    """``after`` with one signed statement appended per change from ``before``, chained to the
    last one, carrying ``serial`` (the serial this change will have: the repository's in format
    1, the namespace's in format 2, kept in ``serial_file``). Without a signer, refused when the
    policy signs this name's catalogue or the chain has begun."""
    effects = _effects(before, after)
    if not effects:
        return after
    required = policy is not None and policy.signs_catalog(after.name)
    if signer is None:
        if required or before.statements:
            raise SigningError(
                f"the catalogue of {after.name} is signed: this change needs a statement signer",
                hint="pass --sign-key KEY (a release key the trust root allows for this action)",
            )
        return after
    from ..signing import parse_statement, sign_statement, verify_statement

    chain = _bodies(before, after.name)
    if serial is None:  # no serial known (a patch without a repository): the chain orders it
        serial = int(chain[-1].body.get("serial", 0)) + 1 if chain else 1
    elif chain and int(chain[-1].body.get("serial", 0)) >= serial:
        raise CatalogRollbackError(
            f"{_serial_kind(after.name, serial_file)} {serial - 1} is not above "
            f"{chain[-1].body.get('serial')}, signed in the catalogue of {after.name}: "
            f"{serial_file} was rolled back",
            hint="restore the serial before publishing (never decrease it)",
        )
    previous = statement_digest(chain[-1].body) if chain else None
    seq = len(chain)
    docs = list(before.statements)
    for effect in effects:
        body = {
            **effect,
            "name": after.name,
            "seq": seq,
            "previous": previous,
            "serial": serial,
            "repository": repository,
            "time": utc_timestamp(),
        }
        if expires_days is not None:
            until = dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_days)
            body["expires"] = until.strftime("%Y-%m-%dT%H:%M:%SZ")
        doc = sign_statement(signer, after.name, body)
        if policy is not None and required:
            node = policy.catalog_signers(after.name, body["type"])
            assert node is not None
            # the writer checks what every reader will check, before anything is written
            verify_statement(parse_statement(doc, f"{after.name} new statement"), node, after.name)
        docs.append(doc)
        previous = statement_digest(body)
        seq += 1
    return replace(after, statements=tuple(docs))


@dataclass
class _Replay:
    published: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    yanked: dict[str, str] = field(default_factory=dict)
    last: dict[tuple[str, str], int] = field(default_factory=dict)
    #: the signed scope of each version whose publish statement has one (statements written
    #: before scopes were signed have no ``validity`` member: not in this mapping)
    scopes: dict[str, Any] = field(default_factory=dict)
    #: every signed alias move: (alias, version, statement index), oldest first
    moves: list[tuple[str, str, int]] = field(default_factory=list)

    def latest(self) -> str | None:
        usable = [v for v in self.published if v not in self.yanked and not is_prerelease(v)]
        return max(usable, key=version_key) if usable else None

    def catalog(self, cat: NameCatalog) -> NameCatalog:
        """``cat`` as the signed statements have it: the signed versions with their signed
        yanked state and scope (the catalogue's record where the publish statement predates
        signed scopes), aliases and alias history; for choosing as a reader chooses."""
        from .catalog import AliasEvent, NameCatalog, VersionRecord
        from .layout import bundle_relpath

        versions = {}
        for v, digest in self.published.items():
            rec = cat.versions.get(v) or VersionRecord(
                v, digest, bundle_relpath(cat.name, v), created="", published=""
            )
            versions[v] = replace(
                rec,
                yanked=self.yanked.get(v),
                validity=self.scopes.get(v, rec.validity),
            )
        history = tuple(AliasEvent(a, v, None, "") for a, v, _ in self.moves)
        return NameCatalog(cat.name, versions, dict(self.aliases), history)


def _replay(name: str, chain: Sequence[ParsedStatement]) -> _Replay:
    state = _Replay()
    previous: str | None = None
    for i, st in enumerate(chain):
        b = st.body
        if b.get("name") != name or b.get("seq") != i or b.get("previous") != previous:
            raise VerificationError(
                f"catalogue of {name}: statement {i} does not continue the chain "
                "(name, sequence number or previous digest differ)",
                hint="the catalogue file was spliced or edited; do not use it",
            )
        kind, v = b.get("type"), str(b.get("version"))
        if kind == "publish":
            state.published[v] = str(b.get("manifestSha256"))
            if "validity" in b:
                state.scopes[v] = b["validity"]
        elif kind == "alias":
            state.aliases[str(b.get("alias"))] = v
            state.moves.append((str(b.get("alias")), v, i))
        elif kind == "yank":
            state.yanked[v] = str(b.get("reason"))
        else:
            raise VerificationError(f"catalogue of {name}: statement {i} has unknown type {kind!r}")
        state.last[(str(kind), str(b.get("alias", v)))] = i
        previous = statement_digest(b)
    return state


def check_catalog(
    cat: NameCatalog,
    record: VersionRecord,
    selector: str | None,
    policy: TrustPolicy,
    *,
    repository: str,
    repo_serial: int | None,
    state: NodeState | None,
    namespace: str | None = None,
    serial_file: str = "catalog/repository.json",
    context: Context | None = None,
) -> None:
    """Refuse ``record`` (what ``selector`` resolved to in ``cat``) unless the signed statements
    say the same; see the module docstring. A policy that does not sign this name's catalogue
    checks nothing here. ``repo_serial`` is the repository's serial (format 1) or, with
    ``namespace``, that namespace's (format 2), as read from ``serial_file``. ``context`` is
    the job's when the choice depended on it (``@valid``, an alias): the same choice made on
    the signed statements' scopes, yanks and alias moves must give the same version."""
    from ..signing import verify_statement

    name = cat.name
    if not policy.signs_catalog(name):
        return
    if not cat.statements:
        raise PolicyError(
            f"the catalogue of {name} carries no signed statements, but the trust policy "
            f"{policy.source} requires them",
            hint="the catalogue was written without a statement signer, or replaced",
        )
    chain = _bodies(cat, name)
    state_now = _replay(name, chain)
    head = chain[-1]

    def check(i: int) -> None:
        st = chain[i]
        node = policy.catalog_signers(name, str(st.body["type"]))
        assert node is not None
        verify_statement(st, node, name)

    used = {len(chain) - 1}
    v = record.version
    if state_now.published.get(v) != record.manifest_digest:
        raise PolicyError(
            f"{name}@{v}: no signed publish statement for this version and manifest digest",
            hint="the catalogue entry was added or changed without a release signature",
        )
    used.add(state_now.last[("publish", v)])
    choice: str | None = None  # the selector whose choice for the context is replayed
    if selector == VALID:
        assert context, "@valid is checked for a context"
        choice = selector
    elif selector is not None and selector != v and selector != "latest":
        signed_to = state_now.aliases.get(selector)
        moved = [i for a, w, i in state_now.moves if a == selector and w == v]
        if signed_to != v and not (context and moved):
            raise PolicyError(
                f"{name}@{selector} points at {v}, but its last signed move is "
                + (f"to {signed_to}" if signed_to else "none"),
                hint="the alias was moved without a release signature (hijack?): refusing",
            )
        used.add(moved[-1] if signed_to != v else state_now.last[("alias", selector)])
        if context:  # an earlier version of the alias may have been chosen for the context
            choice = selector
    if (selector is None or selector == "latest") and state_now.latest() != v:
        raise PolicyError(
            f"{name}: the catalogue's latest release is {v}, the signed statements say "
            f"{state_now.latest()}",
            hint="a version was hidden or un-yanked behind the signers' back",
        )
    if (v in state_now.yanked) != (record.yanked is not None):
        raise PolicyError(
            f"{name}@{v}: yanked state differs from the signed statements "
            f"({'yanked' if v in state_now.yanked else 'not yanked'} when signed)",
            hint="an old catalogue was copied over the current one (rollback?)",
        )
    if choice is not None:
        assert context is not None
        alias = None if choice == VALID else choice
        _check_choice(state_now, cat, v, f"@{choice} for {context}", used, alias, context)
    for i in sorted(used):
        check(i)
    expires = head.body.get("expires")
    if isinstance(expires, str) and expires < utc_timestamp():
        raise CatalogRollbackError(
            f"the catalogue of {name} expired at {expires} (its newest signed statement)",
            hint="the mirror serving it stopped updating (frozen?): use a current replica",
        )
    head_serial = int(head.body.get("serial", 0))
    if repo_serial is not None and head_serial > repo_serial:
        raise CatalogRollbackError(
            f"{_serial_kind(name, serial_file)} {repo_serial} is lower than {head_serial}, "
            f"signed in the catalogue of {name}: {serial_file} was rolled back",
        )
    if state is not None:
        state.check_and_record(
            repository,
            name,
            head_serial,
            len(chain),
            statement_digest(head.body),
            head_serial if repo_serial is None else repo_serial,
            namespace=namespace,
        )


def _check_choice(
    state: _Replay,
    cat: NameCatalog,
    v: str,
    what: str,
    used: set[int],
    alias: str | None,
    context: Context,
) -> None:
    """Refuse ``v`` unless choosing by the signed statements (scopes, yanks, alias moves) gives
    it too: a catalogue scope edited by hand can then neither hide a newer covering version nor
    promote one that does not cover. The statements the choice relied on (publish and yank of
    every newer version, the alias's moves) are added to ``used``, to be verified."""
    from ..errors import NotFoundError

    signed = state.catalog(cat)
    try:
        chosen: str | None = (
            signed.alias_for(alias, context) if alias else signed.valid_for(context)
        ).version
    except NotFoundError:
        chosen = None
    if chosen != v:
        raise PolicyError(
            f"{cat.name}: the catalogue's validity scopes choose {v} as {what}, the signed "
            f"statements choose {chosen or 'no version'}",
            hint="the catalogue's validity scopes, yanks or alias moves differ from the signed "
            "statements: refusing",
        )
    for u in signed.versions:
        if version_key(u) > version_key(v):
            used.add(state.last[("publish", u)])
            if u in state.yanked:
                used.add(state.last[("yank", u)])
    used.update(i for a, _, i in state.moves if a == alias)


def _serial_kind(name: str, serial_file: str) -> str:
    return (
        f"namespace {name.split('/', 1)[0]} serial"
        if serial_file.endswith("namespace.json")
        else "repository serial"
    )


class NodeState:
    """What this node has seen of each repository: the highest serial and, per name, the chain
    length and head digest (``catalog-state.json`` in the node cache). A catalogue older than
    that is a rollback and is refused."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, Any] = json.loads(path.read_bytes())
        except FileNotFoundError:
            self.data = {}
        except (OSError, ValueError):
            log.warning("%s unreadable; rollback detection starts afresh", path)
            self.data = {}

    @classmethod
    def default(cls) -> NodeState | None:
        from ..config import settings

        if settings().no_cache:
            return None
        from .trust import known_repositories_file

        return cls(known_repositories_file().with_name("catalog-state.json"))

    def check_and_record(
        self,
        repository: str,
        name: str,
        serial: int,
        length: int,
        head: str,
        repo_serial: int,
        *,
        namespace: str | None = None,
    ) -> None:
        """``repo_serial``: the repository's serial, or with ``namespace`` (format 2) that
        namespace's; each is compared with the highest this node has seen of the same one."""
        repo = self.data.setdefault(repository, {"serial": 0, "names": {}})
        seen = repo["names"].get(name)
        serials = repo.setdefault("namespaces", {}) if namespace is not None else None
        highest = int(repo.get("serial", 0) if serials is None else serials.get(namespace, 0))
        if repo_serial < highest:
            what = repository if namespace is None else f"{repository} namespace {namespace}"
            raise CatalogRollbackError(
                f"repository {what} is at serial {repo_serial}, this node has seen "
                f"{highest}: rollback refused",
                hint="a stale replica or an old copy is being served",
            )
        if seen is not None:
            if length < seen[0]:
                raise CatalogRollbackError(
                    f"the catalogue of {name} in {repository} has {length} signed statements, "
                    f"this node has seen {seen[0]}: rollback refused",
                    hint="an older catalogue file was put back (un-yank, hidden release?)",
                )
            if length == seen[0] and head != seen[1]:
                raise CatalogRollbackError(
                    f"the catalogue of {name} in {repository} forked: same length as seen "
                    "before, another head statement",
                )
        changed = seen != [length, head] or repo_serial != highest
        if not changed:
            return
        if serials is None:
            repo["serial"] = max(repo_serial, highest)
        else:
            serials[namespace] = max(repo_serial, highest)
        repo["names"][name] = [length, head]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(canonical_json(self.data))
            os.replace(tmp, self.path)
        except OSError as e:
            log.debug("node catalogue state not writable (%s)", e)


def next_serial(root: Path, name: str, doc: Mapping[str, Any]) -> tuple[int, str]:
    """The serial the next change of ``name`` will have and the file that keeps it:
    repository.json's (``doc``, format 1) or its namespace's (format 2), plus one. The format
    decides, never the presence of a ``serial`` key (one added to a format-2 repository.json
    does not hide a namespace's rollback)."""
    from .layout import NAMESPACE_FILE, catalog_dir, repository_format, serial_of

    if repository_format(root) == 1:
        return int(doc.get("serial", 0)) + 1, "catalog/repository.json"

    ns = name.split("/", 1)[0]
    where = (catalog_dir(root, ns) / NAMESPACE_FILE).relative_to(root).as_posix()
    return serial_of(root, ns) + 1, where
