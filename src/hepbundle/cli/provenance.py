"""Provenance commands: provenance (SLSA / in-toto / JSON export), attest and
verify-attestation (the export signed), lineage (the family tree)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from .. import attestation as _attestation
from .._base import write_atomic
from ..policy import TrustPolicy
from ..provenance import lineage as _lineage
from ..provenance import slsa as _slsa
from ..signing import Signer
from ._common import emit_json, json_option
from ._options import FILE, ref_options, signer_options
from ._trust import trust_options

__all__ = ["COMMANDS", "render_lineage"]


@click.command("provenance")
@click.argument("ref")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(_slsa.FORMATS),
    default="slsa",
    show_default=True,
    help="slsa: in-toto Statement v1 with a SLSA provenance v1 predicate; intoto: the same "
    "statement in an (unsigned) DSSE envelope; json: hepbundle's provenance sections.",
)
@click.option(
    "-o",
    "--out",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (atomically) instead of stdout.",
)
@ref_options
def provenance(
    ref: str,
    fmt: str,
    output: Path | None,
    repos: tuple[Path, ...],
    allow_yanked: bool,
) -> None:
    """Export the provenance of REF (a bundle directory, or ns/name@version in --repo).

    The statement's subject is the bundle's manifest (name ns/name@version, SHA-256 of
    hepbundle.json); resolvedDependencies list the code commit, the data references with
    their checksums, the environment lock and the parent bundles.
    """
    data = _slsa.export_ref(ref, fmt, repos=repos, allow_yanked=allow_yanked)
    if output is None:
        click.echo(data.decode(), nl=False)
        return
    write_atomic(output, data)
    click.echo(f"wrote {fmt} provenance of {ref} to {output}", err=True)


@click.command("attest")
@click.argument("ref")
@click.option(
    "-o",
    "--out",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Attestation file to write (a sigstore bundle JSON), e.g. B.provenance.sigstore.json.",
)
@signer_options(required=True)
@ref_options
def attest(
    ref: str,
    output: Path,
    signer: Signer,
    repos: tuple[Path, ...],
    allow_yanked: bool,
) -> None:
    """Sign the SLSA provenance statement of REF with the signers 'hepbundle sign' uses, as a
    second attestation written outside the (immutable) bundle."""
    out = _attestation.sign_provenance(ref, signer, output, repos=repos, allow_yanked=allow_yanked)
    click.echo(f"signed the provenance of {ref} ({signer.describe()}) -> {out}")


@click.command("verify-attestation")
@click.argument("attestation", type=FILE)
@click.argument("ref")
@trust_options
@ref_options
@json_option
def verify_attestation(
    attestation: Path,
    ref: str,
    trust: TrustPolicy | None,
    repos: tuple[Path, ...],
    allow_yanked: bool,
    as_json: bool,
) -> None:
    """Verify that ATTESTATION is REF's provenance, signed by a signer the trust policy allows
    for REF's name. Exit status: 0 verified, 1 verification failure, 2 usage or input error."""
    res = _attestation.verify_provenance(
        attestation, ref, trust, repos=repos, allow_yanked=allow_yanked
    )
    if as_json:
        emit_json(res.to_json())
        return
    who = ", ".join(f"{s.kind} {s.identity}" for s in res.signers)
    click.echo(f"OK {res.statement['subject'][0]['name']}: provenance signed by {who}")


@click.command("lineage")
@click.argument("ref")
@ref_options
@click.option(
    "--search",
    "search",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Also look for relatives in the bundles under this directory (repeatable).",
)
@json_option
def lineage(
    ref: str,
    repos: tuple[Path, ...],
    allow_yanked: bool,
    search: tuple[Path, ...],
    as_json: bool,
) -> None:
    """Print the family tree of REF: its parents (fine-tuned from, distilled from, …) back to
    the first ancestor, and every bundle derived from it, matched by manifest digest."""
    tree = _lineage.family(ref, repos=repos, search=search, allow_yanked=allow_yanked)
    if as_json:
        emit_json(tree.to_json())
        return
    click.echo(render_lineage(tree))


def render_lineage(tree: _lineage.Lineage) -> str:
    """The tree as text: ancestors above the bundle (nearest first), descendants below it."""
    root = tree.root
    lines = [
        click.style(root.ref, bold=True) + f"  sha256:{root.digest[:12]}  {_short(root.location)}"
    ]
    lines.append("ancestors" if tree.ancestors else "ancestors: none recorded")
    _branch(tree.ancestors, "parents", "  ", lines)
    lines.append("descendants" if tree.descendants else "descendants: none found")
    _branch(tree.descendants, "children", "  ", lines)
    return "\n".join(lines)


def _branch(nodes: list[dict[str, Any]], key: str, indent: str, lines: list[str]) -> None:
    for i, n in enumerate(nodes):
        last = i == len(nodes) - 1
        rel = str(n["relation"]).replace("_", " ")
        # an ancestor line reads "<relation> <parent>", a descendant line "<child>, <relation> it"
        what = f"{rel} {n['ref']}" if key == "parents" else f"{n['ref']}, {rel} it"
        where = (
            _short(n["location"])
            if n.get("found", True)
            else click.style("(not found here)", fg="yellow")
        )
        lines.append(
            f"{indent}{'└─' if last else '├─'} {what}  sha256:{str(n['manifestDigest'])[:12]}  {where}"
        )
        _branch(n.get(key, []), key, indent + ("   " if last else "│  "), lines)


def _short(location: str) -> str:
    rel = os.path.relpath(location)
    return rel if not rel.startswith("..") else location


COMMANDS = [provenance, attest, verify_attestation, lineage]
