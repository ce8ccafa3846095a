"""Repository commands: publish, find, versions, alias, yank, catalog rebuild."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import repository as _repo
from ..bundle import Bundle
from ._common import emit_json, json_option, progress_bar
from ._options import DIRECTORY, FILE, repos_option, repository_option
from ._trust import trust_options

if TYPE_CHECKING:
    from .._signers import Signer
    from ..policy import TrustPolicy

__all__ = ["COMMANDS"]

_sign_key_option = click.option(
    "--sign-key",
    type=FILE,
    help="EC private key that signs the catalogue statement of this change (a release key the "
    "trust root allows; password from HEPBUNDLE_KEY_PASSWORD). Required when the repository's "
    "trust root signs this name's catalogue.",
)


def _statement_signer(key: Path | None) -> Signer | None:
    if key is None:
        return None
    from ..config import settings
    from ..signing import KeySigner

    return KeySigner(key, settings().key_password)


_backend_option = click.option(
    "--backend",
    type=click.Choice(_repo.BACKENDS),
    default="local",
    show_default=True,
    help="local: a directory (the embedded default); cvmfs: cvmfs_server on a Stratum-0; "
    "tarball: files for cvmfs_server ingest.",
)


@click.command()
@click.argument("bundles", nargs=-1, required=True, type=click.Path(path_type=Path))
@repository_option
@_backend_option
@click.option("--alias", help="Point this alias (e.g. prod) at the published version(s).")
@click.option("--allow-unsigned", is_flag=True, help="Publish an unsigned bundle (never on cvmfs).")
@trust_options
@_sign_key_option
@click.option(
    "--expires",
    "expires_days",
    type=click.FloatRange(min=0, min_open=True),
    metavar="DAYS",
    help="The new catalogue statements expire after DAYS: a mirror frozen longer is refused.",
)
@click.option("--lease", metavar="PATH", help="cvmfs: open the transaction on REPO/PATH.")
@click.option(
    "-o",
    "--out",
    type=DIRECTORY,
    help="tarball: directory for the tar files (default: current directory).",
)
@click.option(
    "--move",
    is_flag=True,
    help="local: move each BUNDLE directory into the repository instead of copying it (it is "
    "gone from where it was afterwards; put back if nothing is published). The bundle must be "
    "on the repository's file system; its files are checked where they land, from the build's "
    "records (else hashed once), and each must have one link and no writer.",
)
@json_option
def publish(
    bundles: tuple[Path, ...],
    repo: str | None,
    backend: str,
    alias: str | None,
    allow_unsigned: bool,
    trust: TrustPolicy | None,
    sign_key: Path | None,
    expires_days: float | None,
    lease: str | None,
    out: Path | None,
    move: bool,
    as_json: bool,
) -> None:
    """Verify each BUNDLE (digests, signature, policy) and publish them into the repository.

    Several bundles are published all or nothing: every one is verified and checked against
    the catalogue first (a refusal names the bundle and publishes none), then all go in at once
    (cvmfs: ONE transaction and one cvmfs_server publish). Re-publishing identical content is a
    no-op; a different bundle under a published version is refused. A crash leaves the
    repository as it was or with the versions fully catalogued. --json prints one object for
    one bundle, a list for several.

    --move (local backend) publishes a bundle built on the repository's file system without
    writing its bytes a second time: the directory is renamed into the repository, checked
    there and moved into place, so it is no longer where it was. Nothing is ever hard-linked.
    """
    if move and backend != "local":
        raise click.UsageError(f"--move publishes into a local repository, not --backend {backend}")
    loaded = [Bundle.load(b) for b in bundles]
    what = loaded[0].ref if len(loaded) == 1 else f"{len(loaded)} bundles"
    after = "writing the catalogue and index" + (
        ", then cvmfs_server publish" if backend == "cvmfs" else ""
    )
    # a move hashes only what the build's records do not vouch for: no byte count to show
    total = 0 if move else _repo.publish_bytes(loaded, backend)
    with progress_bar(total, f"publishing {what}", after=after) as bar:
        results = _repo.publish_many(
            loaded,
            repo,
            backend=backend,
            alias=alias,
            allow_unsigned=allow_unsigned,
            policy=trust,
            lease=lease,
            out=out,
            progress=bar.update if bar else None,
            stage=bar.stage if bar else None,
            statement_signer=_statement_signer(sign_key),
            expires_days=expires_days,
            move=move,
        )
    if as_json:
        emit_json(results[0].to_json() if len(results) == 1 else [r.to_json() for r in results])
        return
    for msg in dict.fromkeys(m for r in results for m in r.recovered):
        click.echo(f"note: {msg}", err=True)
    tail = f", alias {alias}" if alias else ""
    for res, b in zip(results, loaded, strict=True):
        how = f", moved from {b.root}" if move and res.status == "published" else ""
        click.echo(f"{res.status} {res.ref} -> {res.path} ({res.backend}{tail}{how})")
    for cmd in dict.fromkeys(c for r in results for c in r.commands):
        click.echo(f"  then run: {cmd}")


@click.command()
@click.argument("text", required=False)
@click.option("--name", help="Part of ns/name.")
@click.option("--namespace", help="Exact namespace (atlas, cms, lhcb, …).")
@click.option("--author", help="Part of an author's name.")
@click.option("--framework", help="onnx, keras, hls4ml, …")
@click.option("--dataset", help="Part of a data reference (Rucio DID, DOI, file).")
@click.option("--tag", help="An exact tag.")
@click.option("--signer", help="Part of a signer identity.")
@click.option("--all-versions", is_flag=True, help="Every matching version, not the latest.")
@click.option("--include-yanked", is_flag=True, help="Also yanked versions.")
@click.option(
    "--valid-for",
    metavar="CONTEXT",
    help="Versions whose validity scope covers CONTEXT (run=456789,release=CMSSW_15_0_3): per "
    "name the one NAME@valid picks; with --all-versions every one.",
)
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@repos_option
@json_option
def find(
    text: str | None,
    name: str | None,
    namespace: str | None,
    author: str | None,
    framework: str | None,
    dataset: str | None,
    tag: str | None,
    signer: str | None,
    all_versions: bool,
    include_yanked: bool,
    valid_for: str | None,
    limit: int,
    repos: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Search the catalogue for TEXT (in names, summaries, authors, tags, datasets).

    Every repository of the search path is searched (--repo, repeatable, else
    $HEPBUNDLE_PATH, else $HEPBUNDLE_REPO): what `hepbundle path` would find."""
    from ..validity import Scope, parse_context

    context = None if valid_for is None else parse_context(valid_for, source="--valid-for")
    query = _repo.FindQuery(
        text, name, namespace, author, framework, dataset, tag, signer,
        all_versions, include_yanked, limit, context,
    )  # fmt: skip
    from ..resolver import find as find_on_path

    hits = find_on_path(query, repos=repos)
    if as_json:
        emit_json([h.to_json() | {"repository": str(root)} for root, h in hits])
        return
    several = len({root for root, _ in hits}) > 1
    for root, h in hits:
        marks = "".join(f" @{a}" for a in h.aliases) + (" [YANKED]" if h.yanked else "")
        if context is not None:  # what it is valid for, in the dimensions asked about
            marks += f"  [{Scope.from_json(h.validity).describe(context.values)}]"
        click.echo(f"{h.name}@{h.version}{marks}  {h.summary}" + (f"  [{root}]" if several else ""))
    if not hits:
        click.echo(
            "no match"
            + (
                f" valid for {context}"
                if context is not None
                else ("" if all_versions else " among the latest versions (try --all-versions)")
            ),
            err=True,
        )


@click.command()
@click.argument("name")
@repos_option
@json_option
def versions(name: str, repos: tuple[Path, ...], as_json: bool) -> None:
    """List every version of NAME with its aliases and yanked marks, from the first repository
    of the search path that knows NAME (--repo, repeatable, else $HEPBUNDLE_PATH, else
    $HEPBUNDLE_REPO)."""
    from ..resolver import name_catalog

    _root, cat = name_catalog(name, repos=repos)
    if as_json:
        emit_json(cat.to_json())
        return
    by_version: dict[str, list[str]] = {}
    for a, v in cat.aliases.items():
        by_version.setdefault(v, []).append(a)
    latest = cat.latest()
    for r in reversed(cat.sorted_versions()):
        marks = [f"@{a}" for a in sorted(by_version.get(r.version, []))]
        if latest is not None and r.version == latest.version:
            marks.append("(latest)")
        if r.yanked:
            marks.append(f"[YANKED: {r.yanked}]")
        click.echo(f"{r.version:<16} {r.published}  {' '.join(marks)}".rstrip())


_FORCE_HELP = (
    "Do it even though {what} (the change and who made it are recorded; "
    "$HEPBUNDLE_ACTOR overrides user@host)."
)


@click.command()
@click.argument("ref")
@click.argument("alias")
@repository_option
@_backend_option
@click.option("--force", is_flag=True, help=_FORCE_HELP.format(what="the version is yanked"))
@_sign_key_option
@json_option
def alias(
    ref: str,
    alias: str,
    repo: str | None,
    backend: str,
    force: bool,
    sign_key: Path | None,
    as_json: bool,
) -> None:
    """Point ALIAS (e.g. prod) at the version REF names; the move, and who made it, is kept in
    the history. A yanked version is refused unless --force.

    With --sign-key the move is a signed statement in the catalogue's chain (required when the
    trust root signs this name's catalogue); approvals the policy requires for ALIAS must exist
    (hepbundle approve)."""
    signer = _statement_signer(sign_key)
    done = _repo.set_alias(ref, alias, repo, backend=backend, force=force, signer=signer)
    if done.catalog.versions[done.version].yanked:
        click.echo(f"warning: @{alias} now points at a yanked version", err=True)
    _report(done, as_json, alias=alias)


@click.command()
@click.argument("ref")
@click.option("--reason", required=True, help="Why (shown to everyone who resolves it).")
@repository_option
@_backend_option
@click.option(
    "--force",
    is_flag=True,
    help=_FORCE_HELP.format(what="an alias points at the version, or it is already yanked"),
)
@_sign_key_option
@json_option
def yank(
    ref: str,
    reason: str,
    repo: str | None,
    backend: str,
    force: bool,
    sign_key: Path | None,
    as_json: bool,
) -> None:
    """Mark the version REF names as yanked (never deleted; loaders warn or refuse).

    Refused unless --force when an alias (e.g. prod) points at it, since every job loading
    the alias would then fail, or when it is already yanked (the first reason would go)."""
    signer = _statement_signer(sign_key)
    done = _repo.yank(ref, reason, repo, backend=backend, force=force, signer=signer)
    pointing = sorted(a for a, v in done.catalog.aliases.items() if v == done.version)
    if pointing:
        click.echo(
            "warning: " + ", ".join(f"@{a}" for a in pointing) + " now points at a yanked "
            "version; jobs loading it are refused until it is moved",
            err=True,
        )
    _report(done, as_json, reason=reason)


def _report(done: _repo.Changed, as_json: bool, **what: str) -> None:
    name = done.catalog.name
    rec = done.catalog.versions[done.version]
    history = [e for e in done.catalog.alias_history if e.alias == what.get("alias")]
    actor = (history[-1].actor if history else None) if "alias" in what else rec.yanked_by
    if as_json:
        emit_json(
            {"name": name, "version": done.version, "serial": done.serial, "actor": actor, **what}
        )
    elif "alias" in what:
        click.echo(f"{name}@{what['alias']} -> {done.version}")
    else:
        click.echo(f"yanked {name}@{done.version}: {what['reason']}")


@click.command()
@click.argument("ref")
@click.option(
    "--as",
    "role",
    required=True,
    metavar="ROLE",
    help="The role you approve in (e.g. physics-validation, release); signed into the approval.",
)
@click.option(
    "--approver-key",
    "key",
    required=True,
    type=FILE,
    help="The approver's EC private key that signs the approval (password from "
    "HEPBUNDLE_KEY_PASSWORD); the policy names which keys may approve in ROLE.",
)
@repository_option
@json_option
def approve(ref: str, role: str, key: Path, repo: str | None, as_json: bool) -> None:
    """Sign off the published version REF in ROLE: a signed approval over its manifest digest,
    kept in its records. A trust policy can require approvals to move an alias (prod)."""
    signer = _statement_signer(key)
    assert signer is not None
    rec = _repo.approve_ref(ref, role, signer, repo)
    if as_json:
        emit_json({"name": rec.name, "version": rec.version, "role": role, "path": str(rec.path)})
        return
    click.echo(f"approved {rec.name}@{rec.version} as {role} -> {rec.path}")


@click.group()
def catalog() -> None:
    """Maintain the catalogue of a repository."""


@catalog.command()
@repository_option
@json_option
def rebuild(repo: str | None, as_json: bool) -> None:
    """Rebuild the search index (format 2: every namespace's shard) from the per-name files."""
    n = _repo.rebuild(repo)
    if as_json:
        emit_json({"versions": n})
        return
    click.echo(f"rebuilt the index: {n} versions")


@catalog.command()
@repository_option
@_backend_option
@json_option
def migrate(repo: str | None, backend: str, as_json: bool) -> None:
    """Migrate a format-1 repository to format 2, in place.

    Format 2 keeps each namespace's catalogue (per-name files, records, its index shard and
    serial) under bundles/<ns>, so a CVMFS gateway lease on R/bundles/<ns> covers a publish.
    Local: under the repository lock. cvmfs (on the Stratum-0): ONE transaction on the root.
    Readers before the switch see format 1, after it format 2; running it again is harmless.
    Older hepbundle versions refuse a format-2 repository (upgrade readers first).
    """
    done = _repo.migrate(repo, backend=backend)
    if as_json:
        emit_json(
            {
                "formatBefore": done.format_before,
                "format": 2,
                "namespaces": list(done.namespaces),
                "names": done.names,
                "serial": done.serial,
                "removed": list(done.cleaned),
            }
        )
        return
    if done.format_before == 2:
        click.echo(
            "already format 2" + (f"; removed {', '.join(done.cleaned)}" if done.cleaned else "")
        )
        return
    click.echo(
        f"migrated to format 2: {done.names} names in {len(done.namespaces)} namespaces "
        f"({', '.join(done.namespaces) or 'none'}), serials continue from {done.serial}"
    )


COMMANDS = [publish, find, versions, alias, yank, catalog]


@click.group("repo")
def repo_group() -> None:
    """Create a repository and manage its trust root (the policy its readers apply)."""


def _trust_report(root: _repo.TrustRoot, verb: str, as_json: bool) -> None:
    if as_json:
        emit_json({**root.to_json(), "action": verb})
        return
    click.echo(f"{verb} trust root {root.digest} of repository {root.repository} ({root.root})")
    click.echo(
        "  other nodes accept it with: hepbundle repo trust <path>, "
        f"or pin it: HEPBUNDLE_TRUST_ROOT={root.digest}"
    )


@repo_group.command("init")
@repository_option
@click.option(
    "--name", help="Repository identity (default: the directory name; on CVMFS the FQRN)."
)
@trust_options
@json_option
def repo_init(repo: str | None, name: str | None, trust: TrustPolicy | None, as_json: bool) -> None:
    """Create a local repository whose trust root is the given policy (--policy FILE or the quick
    flags --key/--ca/--identity; keys and CA files are copied in, so the root is self-contained).
    Readers of the repository then verify signatures without being configured."""
    if trust is None:
        raise click.UsageError("repo init needs the trust policy: --policy FILE, or --key PUB.pem")
    _trust_report(_repo.init_repository(repo, trust, name=name), "wrote", as_json)


@repo_group.command("trust")
@click.argument("path", required=False)
@json_option
def repo_trust(path: str | None, as_json: bool) -> None:
    """Accept the trust root of the repository at PATH on this node (trust on first use, like
    ssh's known_hosts): compare the printed digest with the one its operator publishes."""
    _trust_report(_repo.trust_repository(path), "accepted", as_json)


@repo_group.command("trust-root")
@click.argument("action", type=click.Choice(["show", "set"]))
@repository_option
@click.option(
    "--reason", help="set: why the trust policy changes (kept in catalog/trust-log.jsonl)."
)
@trust_options
@json_option
def repo_trust_root(
    action: str, repo: str | None, reason: str | None, trust: TrustPolicy | None, as_json: bool
) -> None:
    """show: the trust root and whether this node accepts it. set: replace it (an explicit,
    logged operator action; every other node must accept the new one again)."""
    if action == "set":
        if trust is None or not reason:
            raise click.UsageError(
                "trust-root set needs the new policy (--policy/--key) and --reason"
            )
        _trust_report(_repo.set_trust_root(repo, trust, reason=reason), "wrote", as_json)
        return
    root = Path(repo) if repo else _repo.default_repo()
    found = _repo.trust_root_for(root)
    if found is None:
        raise click.ClickException(f"{root} has no trust root (hepbundle repo init --policy FILE)")
    if as_json:
        emit_json({**found.to_json(), "policy": found.policy.to_json()})
        return
    click.echo(f"{found.digest}  {found.repository}  accepted: {found.authenticated_by}")
    for rule in found.policy.rules:
        click.echo(f"  {rule.namespace}: {rule.signers.describe()}")


COMMANDS = [publish, find, versions, alias, yank, approve, catalog, repo_group]
