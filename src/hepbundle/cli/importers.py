"""Migration command: ``hepbundle import KIND SOURCE`` (plan, dry-run, publish, compat tree)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import BuildError, RepositoryError, SpecError, UsageError
from ._common import emit_json, json_option, progress
from ._options import DIRECTORY, FILE, repository_option, role_option, signer_options
from ._trust import trust_options_with

if TYPE_CHECKING:
    from ..importers.base import ImportPlan
    from ..importers.preflight import Preflight
    from ..importers.run import ImportReport
    from ..policy import TrustPolicy
    from ..signing import Signer

__all__ = ["COMMANDS"]


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def _print_plan(plan: ImportPlan) -> None:
    from ..importers.base import GAP_ITEMS

    total = sum(b.size for b in plan.bundles)
    nfiles = sum(len(b.files) for b in plan.bundles)
    click.echo(
        f"plan: {len(plan.bundles)} bundles, {nfiles} files, {_size(total)} from {plan.kind} "
        f"{plan.source}"
    )
    for b in plan.bundles:
        aliases = f" (aliases: {', '.join(b.aliases)})" if b.aliases else ""
        click.echo(f"\n{b.ref}  [{b.origin}]  {len(b.files)} files, {_size(b.size)}{aliases}")
        if b.rule:
            click.echo(f"  rule: {b.rule}")
        for f in b.files:
            legacy = f"  <- {f.legacy}" if f.legacy else ""
            click.echo(f"    {f.dest}  {f.role}  {_size(f.size)}{legacy}")
        gaps = b.gaps()
        found = [k for k in GAP_ITEMS if gaps[k]]
        missing = [k for k in GAP_ITEMS if not gaps[k]]
        click.echo(
            f"  provenance: found: {', '.join(found) or '-'}; missing: {', '.join(missing) or '-'}"
        )
        for item, note in b.gap_notes().items():
            click.echo(f"  provenance note: {item}: {note}")
    if plan.inventory is not None:
        _print_inventory(plan)
    elif plan.skipped:
        click.echo(f"\nskipped ({len(plan.skipped)}):")
        for s in plan.skipped:
            click.echo(f"    {s.what}: {s.reason}")
    _print_refused(plan)


def _print_inventory(plan: ImportPlan) -> None:
    """The inventory's summary, the legacy aliases, and every entry left out with its rule or
    reason (a directory only when nothing below it is listed: an empty one)."""
    assert plan.inventory is not None
    counts = plan.inventory_counts()
    click.echo(
        f"\ninventory: {len(plan.inventory)} entries of the store: "
        + ", ".join(f"{n} {v}" for v, n in counts.items())
        + " (each with its verdict: --json)"
    )
    if plan.legacy_aliases:
        click.echo(f"\nlegacy aliases ({len(plan.legacy_aliases)}):")
        for a in plan.legacy_aliases:
            click.echo(f"    {a.link} -> {a.target}: {a.ref.partition('@')[0]}@{a.alias} = {a.ref}")
    out = [
        e
        for e in plan.inventory
        if e.verdict != "imported" and not e.reason.startswith("directory: ")
    ]
    if out:
        click.echo(f"\nskipped and refused ({len(out)}):")
        for e in out:
            click.echo(f"    {e.path}: {'refused: ' if e.verdict == 'refused' else ''}{e.reason}")


def _print_refused(plan: ImportPlan) -> None:
    if plan.refused:
        click.echo(f"\nrefused versions ({len(plan.refused)}, not published):")
        for s in plan.refused:
            click.echo(f"    {s.what}: {s.reason}")


def _counted(checked: Sequence[Preflight]) -> dict[str, Any]:
    """The dry-run's check against the repository and the trust policy, as JSON."""
    from ..importers.preflight import STATUSES

    return {
        **{s: sum(c.status == s for c in checked) for s in STATUSES},
        "bundles": [c.to_json() for c in checked],
    }


def _print_preflight(checked: Sequence[Preflight] | None) -> None:
    if checked is None:
        click.echo(
            "\npublishing not checked: give --repo and --key (or --allow-unsigned) as for the "
            "import, and the dry-run says what it would do with each version"
        )
        return
    counts = {k: v for k, v in _counted(checked).items() if k != "bundles" and v}
    click.echo("\nthe import would: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    for c in checked:
        if c.status != "new":
            click.echo(
                f"    {c.ref} [{c.origin}]: {c.status}" + (f": {c.detail}" if c.detail else "")
            )


def _print_report(report: ImportReport) -> None:
    from ..importers.run import FAILED, METADATA_CHANGED

    rows = [("REF", "STATUS", "FILES", "SIZE", "FROM")]
    rows += [(o.ref, o.status, str(o.files), _size(o.size), o.origin) for o in report.outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    for o in report.conflicts:
        click.echo(f"conflict: {o.ref}: {o.detail}")
    for o in report.outcomes:
        if o.status == METADATA_CHANGED:
            click.echo(f"metadata changed: {o.ref}: {o.detail}")
        elif o.status == FAILED:
            click.echo(f"failed: {o.ref} [{o.origin}]: {o.detail}")
    _print_refused(report.plan)
    click.echo(
        f"{report.count('published')} published, {report.count('unchanged')} unchanged, "
        f"{len(report.conflicts)} conflicts"
        + (
            f", {report.count(METADATA_CHANGED)} with changed metadata"
            if report.count(METADATA_CHANGED)
            else ""
        )
        + (f", {len(report.plan.refused)} refused" if report.plan.refused else "")
        + (f", {report.count(FAILED)} failed" if report.count(FAILED) else "")
        + (f", {report.compat_links} compat links" if report.compat_links else "")
        + f" in {report.seconds:.1f} s"
    )
    counts = report.plan.inventory_counts()
    if counts.get("skipped") or counts.get("refused"):
        click.echo(
            f"store entries not imported: {counts['skipped']} skipped, {counts['refused']} "
            "refused (--dry-run lists each with its reason)"
        )


@click.command("import")
@click.argument("kind")
@click.argument("source")
@repository_option
@click.option(
    "--map",
    "mapping",
    type=FILE,
    help="Mapping YAML: namespace, defaults, roles, names, explicit bundles.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan and provenance gaps; write nothing. With --repo and --key (or "
    "--allow-unsigned) as for the import: also what it would do with each version (new, "
    "unchanged, conflict, refused by publishing and why).",
)
@click.option(
    "--allow-links-outside",
    "links_outside",
    multiple=True,
    type=DIRECTORY,
    help="A directory that symlinks of the store may point into (read through and imported); "
    "other links leaving the store are refused. Repeatable. dir and atlas-groupdata only.",
)
@signer_options()
@role_option
@trust_options_with(key_flag="--trust-key")
@click.option("--allow-unsigned", is_flag=True, help="Publish unsigned bundles (local tests only).")
@click.option(
    "--compat-tree",
    type=DIRECTORY,
    help="Write relative symlinks with the legacy layout here, pointing into the repository.",
)
@click.option(
    "--compat-layout",
    type=click.Choice(["latest", "per-version"]),
    default="latest",
    show_default=True,
    help="latest: DIR/<legacy path> is the highest version carrying it; per-version: "
    "DIR/<name>/<version>/<legacy path> for every version (a release's search path names the "
    "version it pins).",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "cvmfs"]),
    default="local",
    show_default=True,
    help="local: a repository directory; cvmfs: cvmfs_server on a Stratum-0, --repo naming "
    "the repository (the whole import is one transaction and one publish).",
)
@click.option(
    "--keep-going",
    is_flag=True,
    help="A version that fails to build (a file unreadable or changed during the import, a git "
    "object missing) or that publishing would refuse (the trust policy refusing its signer, its "
    "version in the repository with other content) is reported as failed and the others are "
    "published; exit 2. Without it the first failure stops the import and nothing more is "
    "published.",
)
@click.option(
    "--publish-every",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    metavar="N",
    help="local backend: publish what was built every N new versions, and every 30 s, so that "
    "a killed import keeps what it published and a re-run resumes without reading it again.",
)
@click.option(
    "--work-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="cvmfs: where bundles are built before publishing (default: $TMPDIR); needs room for "
    "every new bundle of the import (they are published together). The local backend builds "
    "them in the repository's own staging area (then moved into place).",
)
@json_option
def import_(
    kind: str,
    source: str,
    repo: str | None,
    mapping: Path | None,
    dry_run: bool,
    links_outside: tuple[Path, ...],
    signer: Signer | None,
    role: str | None,
    trust: TrustPolicy | None,
    allow_unsigned: bool,
    compat_tree: Path | None,
    compat_layout: str,
    backend: str,
    keep_going: bool,
    publish_every: int,
    work_dir: Path | None,
    as_json: bool,
) -> None:
    """Import the model store SOURCE (of KIND) into signed bundles in a repository.

    KIND is dir (with --map), atlas-groupdata, cms-data (a git checkout), mlflow (a tracking URI
    or path), or an importer an experiment registered (entry-point group hepbundle.importers).
    Re-running publishes nothing new; a changed file under an already published version is
    reported as a conflict (exit 2), never overwritten. A version without payload (an MLflow
    model whose artifacts were moved) is listed as refused and never published (exit 2, after
    the others). Every file keeps its legacy path:

    \b
        hepbundle path --legacy atlas:tauRecTools/R22_preprod/model.json
    """
    # importers (and the entry-point scan for experiments' own, ~0.1 s) load only when used,
    # so this module costs nothing to `hepbundle path` in a job
    from ..importers import plan_import

    if role is not None and signer is None:
        raise UsageError("--as ROLE names the role of the migration signature: give --key too")
    plan = plan_import(kind, source, mapping, allow_links_outside=links_outside)
    if dry_run:
        checked = None
        # given what the import would publish with, say what it would do with each version
        if repo or signer is not None or allow_unsigned:
            from ..importers.preflight import check_plan
            from ..repository.publish import default_repo

            checked = check_plan(
                plan,
                Path(repo) if repo else default_repo(),
                backend=backend,
                signer=signer,
                role=role,
                policy=trust,
                allow_unsigned=allow_unsigned,
            )
        if as_json:
            emit_json(
                {**plan.to_json(), **({} if checked is None else {"publish": _counted(checked)})}
            )
        else:
            _print_plan(plan)
            _print_preflight(checked)
        return
    # signing, policy and publishing are imported only when importing
    from ..importers.run import FAILED, ImportOptions, run_import
    from ..repository.publish import default_repo

    total = sum(b.size for b in plan.bundles)
    with progress(total, "importing", enabled=not as_json) as cb:
        opts = ImportOptions(
            repo=Path(repo) if repo else default_repo(),
            backend=backend,
            signer=signer,
            role=role,
            policy=trust,
            allow_unsigned=allow_unsigned,
            compat_tree=compat_tree,
            compat_layout=compat_layout,
            keep_going=keep_going,
            publish_every=publish_every,
            work_dir=work_dir,
            progress=cb,
        )
        report = run_import(plan, opts)
    if as_json:
        emit_json(report.to_json())
    else:
        _print_report(report)
    failed = [o for o in report.outcomes if o.status == FAILED]
    if plan.refused:
        also = "".join(
            f" (and {n} {what})"
            for n, what in ((len(failed), "failed"), (len(report.conflicts), "conflict(s)"))
            if n
        )
        raise SpecError(
            f"{len(plan.refused)} version(s) refused, not published{also}: "
            + ", ".join(r.what for r in plan.refused),
            hint="see 'refused versions' above (or --dry-run): each says why and what to do "
            "(restore a missing payload, skip: a file the import cannot reproduce); then re-run, "
            "what was published stays",
        )
    if failed:
        raise BuildError(
            f"{len(failed)} version(s) failed, not published: "
            + ", ".join(f"{o.ref} [{o.origin}]" for o in failed),
            hint="see 'failed' above; fix the cause (the store, the trust policy, the "
            "repository) and re-run: what was published stays",
        )
    if report.conflicts:
        raise RepositoryError(
            f"{len(report.conflicts)} version(s) already published with other content: "
            + ", ".join(o.ref for o in report.conflicts),
            hint="published versions are immutable: map the changed files to a new version",
        )


COMMANDS = [import_]
