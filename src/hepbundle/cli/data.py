"""Data and model-health commands: ``data root2npz``, ``drift`` (and the evaluation tools)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..data import root2npz as _root2npz  # the module
from ..errors import DataError
from ._common import emit_json, json_option

__all__ = ["COMMANDS"]


@click.group()
def data() -> None:
    """Prepare training/validation data: ROOT ntuples → NPZ with a provenance record."""


def _branch_list(branches: tuple[str, ...], branches_file: Path | None) -> list[str]:
    names = [b.strip() for item in branches for b in item.split(",") if b.strip()]
    if branches_file is not None:
        try:
            text = branches_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"branches file {branches_file} does not exist") from None
        names += [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    return [n for n in names if n]


@data.command("root2npz")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-t", "--tree", required=True, help="TTree name (e.g. Events, CollectionTree).")
@click.option(
    "-b", "--branches", multiple=True, metavar="A,B,…", help="Branches to convert (repeatable)."
)
@click.option(
    "--branches-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File with one branch name per line (# comments).",
)
@click.option("--cut", help="uproot cut expression, e.g. 'pt > 20'.")
@click.option(
    "--step-size",
    default="100MB",
    show_default=True,
    help="Memory per chunk (e.g. 100MB) or a number of entries.",
)
@click.option(
    "--pad",
    "pads",
    multiple=True,
    metavar="NAME=N",
    help="Pad/truncate the jagged branch NAME to N values per entry (fill 0; repeatable).",
)
@click.option("--compress", is_flag=True, help="Deflate the NPZ members (smaller, slower).")
@click.option(
    "-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="OUT.npz"
)
@json_option
def root2npz(
    inputs: tuple[str, ...],
    tree: str,
    branches: tuple[str, ...],
    branches_file: Path | None,
    cut: str | None,
    step_size: str,
    pads: tuple[str, ...],
    compress: bool,
    out: Path,
    as_json: bool,
) -> None:
    """Convert branches of TREE in INPUTS (paths or root:// URLs) into OUT.npz.

    Reads in chunks (memory bounded by --step-size whatever the input size), keeps each
    branch's dtype, and writes OUT.npz.provenance.json beside it: inputs with adler32 and
    sha256, selection, entries in/out, software versions, command line, output digest.
    """
    res = _root2npz.root2npz(
        list(inputs),
        tree,
        _branch_list(branches, branches_file),
        out,
        cut=cut,
        step_size=step_size,
        pads=_root2npz.parse_pads(pads),
        compress=compress,
        command=["hepbundle", *sys.argv[1:]],
    )
    if as_json:
        emit_json({"output": str(res.output), "provenance": str(res.provenance_path), **res.record})
        return
    rec = res.record
    click.echo(
        f"wrote {res.output}: {rec['entries']['out']:,} of {rec['entries']['in']:,} entries, "
        f"{len(rec['branches'])} arrays, {rec['output']['size']:,} bytes "
        f"(provenance: {res.provenance_path})"
    )


COMMANDS = [data]
