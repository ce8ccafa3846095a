"""The ``hepbundle`` command: a thin click layer over the library.

Each ``cli/<area>.py`` module declares its commands in ``COMMANDS``; this module only assembles
them, and is the one place that turns :class:`~hepbundle.errors.HepbundleError` into a one-line
message and an exit code (0 ok, 1 verification failure, 2 usage or input error, 3 drift alert).
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from .. import __version__
from ._common import HepbundleGroup

__all__ = ["main"]

#: command modules, in the order their commands appear in --help
_COMMAND_MODULES = ["core", "signing", "load", "repo", "data", "fpga", "provenance", "site", "importers"]


@click.group(cls=HepbundleGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hepbundle")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug) to stderr.")
def main(verbose: int) -> None:
    """Signed, versioned model bundles for HEP: build, sign, publish to CVMFS, load by path.

    \b
    Typical life of a model:
      hepbundle init model-dir/            write a starter hepbundle.yaml and model card
      hepbundle build model-dir/ -o B      pack, hash and describe the files
      hepbundle sign B --key key.pem       sign (also --cert, --sigstore)
      hepbundle verify B                   signature + every file digest
      hepbundle publish B --alias prod     into the repository (CVMFS or local)
      hepbundle path ns/name@prod FILE     verified path for a job
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(
        level=level, format="hepbundle: %(levelname)s: %(message)s", stream=sys.stderr
    )


def _register() -> None:
    for name in _COMMAND_MODULES:
        mod: Any = importlib.import_module(f"{__name__}.{name}")
        for cmd in mod.COMMANDS:
            main.add_command(cmd)


_register()
