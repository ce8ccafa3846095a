"""Core commands: init, build, show."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .. import builder as _builder
from .. import bundle as _bundle
from .. import resolver as _resolver
from ..digest import ALGORITHMS, DEFAULT_ALGORITHM
from ..errors import BuildError
from ..spec import SPEC_FILENAME, load_spec
from ._common import emit_json, json_option, progress
from ._options import DIRECTORY, ref_options, signer_options
from .render import catalog_lines, catalog_summary, render_bundle

if TYPE_CHECKING:
    from .._signers import Signer

__all__ = ["COMMANDS"]


@click.command()
@click.argument("directory", type=DIRECTORY, default=".")
@click.option(
    "--name", default="myexp/my-model", show_default=True, help="namespace/name of the bundle."
)
@click.option("--summary", metavar="TEXT", help="One line saying what the model does.")
@click.option(
    "--author",
    "authors",
    multiple=True,
    metavar="'NAME <EMAIL>'",
    help="Who is responsible for the model (repeatable).",
)
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def init(
    directory: Path, name: str, summary: str | None, authors: tuple[str, ...], force: bool
) -> None:
    """Write a commented starter hepbundle.yaml and MODEL_CARD.md into DIRECTORY.

    Also creates the folders the starter's files: entries name (model/). A build refuses the
    template's placeholder summary and authors: give --summary and --author here, or edit
    hepbundle.yaml; it warns while MODEL_CARD.md is the unedited template.
    """
    from ..template import write_starter

    written = write_starter(directory, name, summary=summary, authors=authors, force=force)
    click.echo(
        f"wrote {', '.join(str(p) + ('/' if p.is_dir() else '') for p in written)}; "
        f"fill in {'the model card' if summary and authors else 'summary, authors and the model card'}, "
        f"put the model in {directory / 'model'}/, "
        f"then run: hepbundle build {directory}"
    )


@click.command()
@click.argument("spec", type=click.Path(path_type=Path), default=SPEC_FILENAME)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    help="Bundle directory to create (default: dist/<namespace>/<name>/<version>).",
)
@click.option("--force", is_flag=True, help="Replace an existing bundle directory at --out.")
@click.option(
    "--check",
    is_flag=True,
    help="Validate the spec and everything it names (globs, git checkout, data references, "
    "FPGA project, profile) and list what would be packed; write nothing.",
)
@click.option(
    "--allow-dirty",
    is_flag=True,
    help="Accept a training checkout with uncommitted "
    "changes (the diff is packed into the bundle).",
)
@click.option(
    "--from-mlflow",
    "from_mlflow",
    metavar="RUN_ID",
    help="Fill the training record from an MLflow run (MLFLOW_TRACKING_URI).",
)
@click.option(
    "--fpga-project",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Also pack this FPGA project and describe it in the manifest (needs --toolchain).",
)
@click.option(
    "--toolchain",
    type=click.Choice(["hls4ml", "finn", "vitis-ai"]),
    help="Toolchain of --fpga-project.",
)
@click.option(
    "--profile-from",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Pack a reference profile of this NPZ of training inputs (for 'hepbundle drift').",
)
@click.option(
    "--profile-features",
    metavar="A,B,…",
    help="Arrays of --profile-from to profile (default: every numeric array).",
)
@click.option(
    "--profile-outputs",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also profile this NPZ of model outputs on the --profile-from rows.",
)
@click.option(
    "--digest",
    "digest_algorithm",
    type=click.Choice(list(ALGORITHMS)),
    default=DEFAULT_ALGORITHM,
    show_default=True,
    help="Digest algorithm of the manifest's file entries. blake3 verifies several times faster "
    "on CPUs without SHA extensions; sha256 is what the model_signing 1.1.1 command line and "
    "SHA-256-only tools can check (docs/signing.md).",
)
@signer_options(trust_config=True)
@click.option(
    "--publish",
    "publish_to",
    type=DIRECTORY,
    metavar="REPO",
    help="Build straight into the local repository REPO and publish it there (with --key: "
    "signed first): one copy of each byte instead of two; the trust policy is "
    "$HEPBUNDLE_POLICY, else REPO's trust root. Not with -o.",
)
@click.option("--alias", help="With --publish: point this alias (e.g. prod) at the version.")
@json_option
def build(
    spec: Path,
    out: Path | None,
    force: bool,
    check: bool,
    allow_dirty: bool,
    from_mlflow: str | None,
    fpga_project: Path | None,
    toolchain: str | None,
    profile_from: Path | None,
    profile_features: str | None,
    profile_outputs: Path | None,
    digest_algorithm: str,
    signer: Signer | None,
    publish_to: Path | None,
    alias: str | None,
    as_json: bool,
) -> None:
    """Build a bundle from SPEC (a hepbundle.yaml or its directory).

    Validates the spec (errors name the line and field), copies the files into a fresh bundle
    directory, hashes each once, and writes hepbundle.json. A failed build leaves nothing behind.
    Set SOURCE_DATE_EPOCH for a reproducible 'created' time. With --key (or --cert, --sigstore)
    the new bundle is also signed, as 'hepbundle sign' would, in this process and over the
    digests the build just computed. With --publish REPO it is built in REPO's staging area
    and published by moving it into place ('hepbundle publish' checks, one copy of each byte).
    """
    if publish_to is not None and out is not None:
        raise click.UsageError("--publish builds into the repository: -o/--out is not used")
    if alias is not None and publish_to is None:
        raise click.UsageError("--alias goes with --publish")
    # the command line's sections go through the build's own capture table (builder.CAPTURES)
    sections: dict[str, Any] = {}
    if fpga_project is not None or toolchain is not None:
        if fpga_project is None or toolchain is None:
            raise BuildError("--fpga-project and --toolchain go together")
        sections["fpga"] = {"project": str(fpga_project.absolute()), "toolchain": toolchain}
    if profile_from is not None:
        features = [f.strip() for f in (profile_features or "").split(",") if f.strip()] or None
        sections["profile"] = {
            "from": str(profile_from.absolute()),
            "features": features,
            "outputs": str(profile_outputs.absolute()) if profile_outputs else None,
        }
    opts = _builder.BuildOptions(
        out=out,
        force=force,
        allow_dirty=allow_dirty,
        from_mlflow=from_mlflow,
        sections=sections,
        algorithm=digest_algorithm,
    )
    loaded = load_spec(spec)  # once: the plan sizes the progress bar and is what gets written
    if not check:
        _builder.prepare_output(loaded, opts)
    work = _builder.plan(loaded, opts)
    if check:
        paths = work.paths
        if as_json:
            emit_json(
                {
                    "ref": f"{work.spec.name}@{work.spec.version}",
                    "files": [{"path": p, "role": r, "size": n} for p, r, n in paths],
                }
            )
            return
        click.echo(
            f"spec OK: {work.spec.name}@{work.spec.version} would pack {len(paths)} files, "
            f"{sum(n for _, _, n in paths):,} bytes:"
        )
        for p, r, n in paths:
            click.echo(f"  {p:<56} {r:<9} {n:>12,}")
        return
    if publish_to is not None:
        with progress(work.source_bytes, "packing") as cb:
            res, signed_ = _builder.write_and_publish(
                work, replace(opts, progress=cb), publish_to, signer=signer, alias=alias
            )
        if as_json:
            emit_json(res.to_json() | ({"signature": signed_.to_json()} if signed_ else {}))
        else:
            if signed_ is not None:
                click.echo(f"signed {res.ref} as {signed_.role} by {signed_.signer}")
            click.echo(f"{res.status} {res.ref} -> {res.path} (serial {res.serial})")
        return
    with progress(work.source_bytes, "packing") as cb:
        b = _builder.write(work, replace(opts, progress=cb))
    signed = None
    if signer is not None:
        from ..signing import sign  # the signing layer loads only when signing

        signed = sign(b, signer)  # the Bundle the build returned: no payload byte is read
    if as_json:
        emit_json(
            {
                "ref": b.ref,
                "path": str(b.root),
                "manifest_sha256": b.manifest_digest,
                "algorithm": b.algorithm,
                "files": len(b.manifest.files),
                "bytes": sum(f.size for f in b.manifest.files),
            }
            | ({"signature": signed.to_json()} if signed is not None else {})
        )
    else:
        size = sum(f.size for f in b.manifest.files)
        click.echo(f"built {b.ref}: {len(b.manifest.files)} files, {size:,} bytes -> {b.root}")
        if signed is not None:
            click.echo(f"signed {b.ref} as {signed.role} by {signed.signer} -> {signed.path.name}")


@click.command()
@click.argument("bundle", metavar="REF")
@click.option("--card/--no-card", default=True, help="Render the model card.")
@click.option("--all-files", is_flag=True, help="List every file (default: 12 per role).")
@ref_options
@json_option
def show(
    bundle: str,
    card: bool,
    all_files: bool,
    repos: tuple[Path, ...],
    allow_yanked: bool,
    as_json: bool,
) -> None:
    """Show a readable summary of REF (a bundle directory, or ns/name[@version|@alias] in
    --repo): identity, files by role, metrics, provenance."""
    where = _resolver.locate(bundle, repos=repos, allow_yanked=allow_yanked)
    # a summary of the metadata, not a verification (that is `hepbundle verify`): the bundle is
    # the catalogue's, and files shown (the model card) are checked against the manifest as read
    from ..cache import default_cache

    b = _bundle.Bundle.load(where.path)
    b.cache = default_cache()
    _resolver.check_catalogue(where, b.manifest, b.manifest_digest)
    if as_json:
        emit_json(
            {"path": str(b.root), "manifest_sha256": b.manifest_digest, **b.manifest.to_json()}
            | ({"catalog": where.to_json() | catalog_summary(where)} if where.record else {})
        )
        return
    click.echo(render_bundle(b, card=card, all_files=all_files, catalog=catalog_lines(where)))


# verify lives in cli/signing.py: it checks signatures before digests
COMMANDS = [init, build, show]
