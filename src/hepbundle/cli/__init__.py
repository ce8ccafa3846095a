"""The ``hepbundle`` command: a thin click layer over the library.

Each ``cli/<area>.py`` module declares its commands in ``COMMANDS``; this module lists them (and
imports a module only when one of its commands runs), and is the one place that turns :class:`~hepbundle.errors.HepbundleError` into a one-line
message and an exit code (0 ok, 1 verification failure, 2 usage or input error, 3 drift alert).
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

import click

from .._base import __version__
from ._common import HepbundleGroup, ProgressLogHandler

__all__ = ["main"]

#: command → (module of cli/ defining it, the one-line help --help shows). The module is imported
#: only when its command runs, so `hepbundle path` in a job does not pay for importing uproot,
#: TensorFlow or mlflow; tests/test_cli_lazy.py checks this table against the commands.
_COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("core", "Write a commented starter hepbundle.yaml and MODEL_CARD.md into DIRECTORY."),
    "build": ("core", "Build a bundle from SPEC (a hepbundle.yaml or its directory)."),
    "show": (
        "core",
        "Show a readable summary of REF (a bundle directory, or ns/name[@version|@alias] in --repo): identity, files by role, metrics, provenance.",
    ),
    "sign": (
        "signing",
        "Sign BUNDLE (OMS v1.0 signature in hepbundle.sig) after checking every file.",
    ),
    "verify": (
        "signing",
        "Verify REF (a bundle directory, or ns/name[@version|@alias] on the search path): its "
        "signatures against the trust policy, then every file's digest.",
    ),
    "key": ("signing", "Manage signing keys."),
    "path": ("load", "Print the verified absolute path of bundle REF, or of FILE inside it."),
    "publish": (
        "repo",
        "Verify each BUNDLE (digests, signature, policy) and publish them into the repository.",
    ),
    "find": (
        "repo",
        "Search the catalogue for TEXT (in names, summaries, authors, tags, datasets).",
    ),
    "versions": (
        "repo",
        "List every version of NAME with its aliases and yanked marks, from the first "
        "repository of the search path that knows NAME (--repo, repeatable, else "
        "$HEPBUNDLE_PATH, else $HEPBUNDLE_REPO).",
    ),
    "alias": (
        "repo",
        "Point ALIAS (e.g. prod) at the version REF names; the move, and who made it, is kept "
        "in the history.",
    ),
    "yank": (
        "repo",
        "Mark the version REF names as yanked (never deleted; loaders warn or refuse).",
    ),
    "approve": (
        "repo",
        "Sign off the published version REF in ROLE: a signed approval over its manifest digest, kept in its records.",
    ),
    "catalog": ("repo", "Maintain the catalogue of a repository."),
    "repo": (
        "repo",
        "Create a repository and manage its trust root (the policy its readers apply).",
    ),
    "data": (
        "data",
        "Prepare training/validation data: ROOT ntuples → NPZ with a provenance record.",
    ),
    "drift": (
        "data",
        "Compare new data with the reference profile of REF (a bundle directory or ns/name@version|alias): PSI, KS, mean and width shift per feature, worst first.",
    ),
    "eval": (
        "data",
        "Run the model of REF on NPZ data, compute metrics, compare with the recorded ones.",
    ),
    "reproduce": (
        "data",
        "Can REF be re-trained? --check lists the code pin, environment lock, data and command with a verdict; --run WORKDIR re-trains and compares the metrics with the recorded ones.",
    ),
    "fpga": (
        "fpga",
        "FPGA firmware: capture projects, compare firmware with the model, reload hints.",
    ),
    "provenance": (
        "provenance",
        "Export the provenance of REF (a bundle directory, or ns/name@version in --repo).",
    ),
    "attest": (
        "provenance",
        "Sign the SLSA provenance statement of REF with the signers 'hepbundle sign' uses, as a second attestation written outside the (immutable) bundle.",
    ),
    "verify-attestation": (
        "provenance",
        "Verify that ATTESTATION is REF's provenance, signed by a signer the trust policy allows for REF's name.",
    ),
    "lineage": (
        "provenance",
        "Print the family tree of REF: its parents (fine-tuned from, distilled from, …) back to the first ancestor, and every bundle derived from it, matched by manifest digest.",
    ),
    "import": (
        "importers",
        "Import the model store SOURCE (of KIND) into signed bundles in a repository.",
    ),
}
#: modules that add subcommands to a group of another module, imported right after it
_EXTENDS: dict[str, tuple[str, ...]] = {"repo": ("site",)}


class LazyGroup(HepbundleGroup):
    """The top-level group: lists commands from :data:`_COMMANDS` and imports a command's module
    only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        module = _COMMANDS[cmd_name][0]
        mod: Any = importlib.import_module(f"{__name__}.{module}")
        for extra in _EXTENDS.get(module, ()):
            importlib.import_module(f"{__name__}.{extra}")
        cmd: click.Command | None = next((c for c in mod.COMMANDS if c.name == cmd_name), None)
        if cmd is not None:
            _whole_one_liners(cmd)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(n) for n in _COMMANDS)
        rows = [(n, _short(_COMMANDS[n][1], limit)) for n in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _whole_one_liners(cmd: click.Command) -> None:
    """Give ``cmd`` and its subcommands their whole first sentence as ``short_help``: click
    would cut it at 45 characters in a group's listing, and the CLI reference (mkdocs-click)
    at the first line break of the docstring."""
    if cmd.short_help is None and cmd.help:
        cmd.short_help = cmd.get_short_help_str(limit=1000)
    for sub in getattr(cmd, "commands", {}).values():
        _whole_one_liners(sub)


def _short(text: str, limit: int) -> str:
    """The one-liner, cut at the end of a clause (``; `` outside parentheses) when it is longer
    than ``limit``; never mid-sentence (what does not fit on one line wraps)."""
    if len(text) <= limit:
        return text
    depth, cuts = 0, []
    for i, ch in enumerate(text):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(ch, 0)
        if depth == 0 and text[i : i + 2] == "; ":
            cuts.append(i)
    fitting = [c for c in cuts if c <= limit]
    return text[: fitting[-1]] + "." if fitting else text


# the "Typical life" block is indented four spaces after a blank line: the CLI reference
# (mkdocs-click renders the help as Markdown) then shows it preformatted, as --help does
@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hepbundle")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug) to stderr.")
def main(verbose: int) -> None:
    """Signed, versioned model bundles for HEP: build, sign, publish to CVMFS, load by path.

    Typical life of a model:

    \b
        hepbundle init model-dir/            write a starter hepbundle.yaml and model card
        hepbundle build model-dir/ -o B      pack, hash and describe the files
        hepbundle sign B --key key.pem       sign (also --cert, --sigstore)
        hepbundle verify B                   signature + every file digest
        hepbundle publish B --alias prod     into the repository (CVMFS or local)
        hepbundle path ns/name@prod FILE     verified path for a job
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    handler = ProgressLogHandler()  # a message while a bar is drawn goes above the bar
    handler.setFormatter(logging.Formatter("hepbundle: %(levelname)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
