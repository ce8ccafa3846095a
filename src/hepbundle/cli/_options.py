"""Options shared by every command that takes them, declared once so that names and help agree.

``ref_options``        commands that take a REF: ``--repo R`` (repeatable; the search path of
                       :func:`hepbundle.resolver.search_path`) and ``--allow-yanked``; the
                       command receives ``repos: tuple[Path, ...]`` and ``allow_yanked: bool``.
``repository_option``  commands that write to or list one repository: ``--repo R``; the
                       command receives ``repo: str | None``.
``signer_options``     commands that sign: ``--key``, ``--cert``, ``--chain``, ``--sigstore``,
                       ``--identity-token``; the command receives ``signer: Signer | None``, made
                       by :func:`hepbundle.signing.signer_from`.
trust options          commands that verify: :mod:`._trust` (``--policy``, ``--key`` or
                       ``--trust-key``, ``--ca``, ``--subject``, ``--identity``, ``--issuer``,
                       ``--trust-config``); the command receives ``trust``.
``FILE``, ``DIRECTORY``, ``F``  the click path types every module uses and the type of a
                       decorated command (declared here only; tests/test_cli_options.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = [
    "DIRECTORY",
    "FILE",
    "F",
    "allow_yanked_option",
    "context_option",
    "ref_options",
    "repos_option",
    "repository_option",
    "role_option",
    "signer_options",
    "trust_config_option",
]

#: the type of a decorated click command function
F = TypeVar("F", bound=Callable[..., Any])
#: an existing file the command reads (a key, a certificate, a policy, …)
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
#: a directory the command writes (need not exist)
DIRECTORY = click.Path(file_okay=False, path_type=Path)

#: taken by the verifying commands (:mod:`._trust`) and by `sign --sigstore`
trust_config_option = click.option(
    "--trust-config",
    type=FILE,
    help="Sigstore client trust config / trusted root JSON (default: the pinned production "
    "root; no network is used to verify).",
)

repos_option = click.option(
    "--repo",
    "repos",
    multiple=True,
    metavar="R",
    type=click.Path(path_type=Path),
    help="Repository to search (repeatable, searched in order; default: "
    "$HEPBUNDLE_PATH, then $HEPBUNDLE_REPO, then ./hepbundle-repo).",
)
context_option = click.option(
    "--context",
    metavar="K=V,…",
    help="The job's context, checked against the version's validity scope "
    "(run=456789,release=CMSSW_15_0_3; default: $HEPBUNDLE_CONTEXT).",
)
allow_yanked_option = click.option(
    "--allow-yanked", is_flag=True, help="Accept a yanked version (with a warning)."
)
#: the role a signature is written in (``sign --as``, ``import --as``)
role_option = click.option(
    "--as",
    "role",
    metavar="ROLE",
    help="Write a co-signature hepbundle.ROLE.sig (e.g. release, migration) instead of "
    "hepbundle.sig; a policy signer with 'role: ROLE' accepts it.",
)
repository_option = click.option(
    "--repo",
    metavar="R",
    help="Repository: a directory (local, tarball) or a CVMFS repository name (cvmfs). "
    "Default: $HEPBUNDLE_REPO, else ./hepbundle-repo.",
)


def ref_options(f: F) -> F:
    """``--repo`` (repeatable) and ``--allow-yanked``: how every command finds its REF."""
    return repos_option(allow_yanked_option(f))


_SIGNER_OPTIONS = [
    click.option(
        "--key",
        type=FILE,
        help="Sign with this PRIVATE key (PEM): an EC key (P-256/384/521), or the key of --cert "
        "(EC or RSA). An encrypted key's password is read from $HEPBUNDLE_KEY_PASSWORD. (In a "
        "command that signs, a key to trust is --trust-key.)",
    ),
    click.option(
        "--cert",
        type=FILE,
        help="Sign with this X.509 certificate (PEM, and its --key), e.g. a grid usercert.pem; "
        "not a proxy.",
    ),
    click.option(
        "--chain",
        multiple=True,
        type=FILE,
        help="Intermediate CA certificates to embed with --cert (repeatable).",
    ),
    click.option("--sigstore", is_flag=True, help="Sign keyless via Fulcio/Rekor."),
    click.option(
        "--identity-token",
        metavar="TOKEN",
        help="OIDC token for --sigstore (default: $SIGSTORE_ID_TOKEN, else ambient CI "
        "credentials).",
    ),
]
_SIGNER_NAMES = ("key", "cert", "chain", "sigstore", "identity_token")


def signer_options(*, required: bool = False, trust_config: bool = False) -> Callable[[F], F]:
    """Add the signer options; the command receives ``signer`` (None when no signer option was
    given, unless ``required``: then the error says how to sign). With ``trust_config``,
    ``--trust-config`` is added too and used for ``--sigstore``."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in _SIGNER_NAMES}
            config = kwargs.pop("trust_config") if trust_config else None
            signer = None
            if required or given["key"] or given["cert"] or given["chain"] or given["sigstore"]:
                from ..signing import signer_from  # the signers load only when signing

                signer = signer_from(**given, trust_config=config)
            return fn(*args, signer=signer, **kwargs)

        options = [*_SIGNER_OPTIONS, *([trust_config_option] if trust_config else [])]
        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate
