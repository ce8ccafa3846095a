"""Commands for jobs and scripts: ``path`` prints a verified absolute path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import load as _load
from .. import resolver as _resolver
from ._common import emit_json, json_option
from ._options import allow_yanked_option, context_option, repos_option
from ._trust import integrity_only_option, trust_options

if TYPE_CHECKING:
    from ..policy import TrustPolicy

__all__ = ["COMMANDS"]


@click.command()
@click.argument("ref")
@click.argument("file", required=False)
@repos_option
@click.option(
    "--verify",
    "mode",
    type=click.Choice(["lazy", "full", "integrity", "none"]),
    default="lazy",
    show_default=True,
    help="lazy: signature + FILE's digest (or nothing more for the bundle path); full: every "
    "file; integrity: digests only, signatures NOT checked (same as --integrity-only).",
)
@trust_options
@allow_yanked_option
@context_option
@integrity_only_option
@click.option(
    "--legacy",
    is_flag=True,
    help="REF is a legacy path of an imported store, <experiment>:<path> "
    "(e.g. atlas:tauRecTools/R22_preprod/model.json); prints that file's bundle path.",
)
@click.option(
    "--pin",
    "pins",
    multiple=True,
    metavar="PREFIX=TAG",
    help="With --legacy: serve legacy paths under PREFIX from the version imported from TAG (or "
    "that version number), e.g. RecoTauTag/TrainingFiles=V00-02-02 as the release's "
    "CMSSW_DATA_PACKAGE pins it; repeatable, several per value separated by spaces; added to "
    "(and overriding, prefix by prefix) $HEPBUNDLE_LEGACY_PINS.",
)
@json_option
def path(
    ref: str,
    file: str | None,
    repos: tuple[Path, ...],
    mode: _load.VerifyMode,
    trust: TrustPolicy | None,
    integrity_only: bool,
    allow_yanked: bool,
    context: str | None,
    legacy: bool,
    pins: tuple[str, ...],
    as_json: bool,
) -> None:
    """Print the verified absolute path of bundle REF, or of FILE inside it.

    REF is ns/name@version, ns/name@alias (e.g. @prod), ns/name (latest release) or a path.
    Meant for C++ jobs and shell scripts:

    \b
        MODEL=$(hepbundle path atlas/tauid@prod model/model.onnx) || exit 1

    Nothing is printed on stdout unless verification passed (exit 0). The trust policy is
    --policy / the quick flags, $HEPBUNDLE_POLICY, or the repository's trust root; without one
    REF is refused. --context (default $HEPBUNDLE_CONTEXT) refuses a version whose validity
    scope excludes the job's context: --context run=456789,release=CMSSW_15_0_3.

    --legacy REF is a legacy path of an imported store; a path several versions carry (a
    cms-data file across tags) gives the highest release unless --pin names the release's tag:

    \b
        hepbundle path --legacy cms:RecoTauTag/TrainingFiles/data/DeepTauId/x.pb \\
            --pin RecoTauTag/TrainingFiles=V00-02-02
    """
    if integrity_only:
        mode = "integrity"
    if pins and not legacy:
        raise click.UsageError("--pin goes with --legacy (a bundle REF names its version)")
    if legacy:
        if file:
            raise click.UsageError("--legacy takes no FILE: the legacy path names the file")
        from ..importers.legacy import legacy_pins, resolve_legacy  # importers sit above load

        b, file = resolve_legacy(
            ref,
            verify=mode,
            policy=trust,
            repos=repos or None,
            pins=legacy_pins(pins),
        )
        _resolver.check_scope(b.manifest, context)
    else:
        b = _resolver.resolve(
            ref,
            verify=mode,
            policy=trust,
            allow_yanked=allow_yanked,
            repos=repos or None,
            context=context,
        )
    target = b.path(file) if file else b.path()
    if as_json:
        emit_json({"ref": b.ref, "path": str(target), "manifest_sha256": b.manifest_digest})
    else:
        click.echo(str(target))


COMMANDS = [path]
