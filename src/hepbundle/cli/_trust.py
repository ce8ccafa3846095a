"""The trust-policy options every verifying command shares: ``--policy FILE`` or the quick flags
(``--key``, ``--ca``/``--subject``, ``--identity``/``--issuer``, ``--trust-config``), falling back
to ``$HEPBUNDLE_POLICY``. A decorated command receives one ``trust`` argument: :func:`hepbundle.policy.resolve_policy`
of the options (the precedence lives in the library)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ._options import FILE, F, trust_config_option

__all__ = [
    "integrity_only_option",
    "policy_file_options",
    "trust_config_option",
    "trust_options",
    "trust_options_with",
]


#: one meaning everywhere: --trust-key is a PUBLIC key to trust; --key is the same flag in a
#: command that does not sign (verify, path, publish, …) and the PRIVATE key in one that does
_TRUST_KEY_HELP = (
    "Trust this PUBLIC key (PEM, e.g. key.pub.pem; repeatable). --trust-key in every command; "
    "--key too where the command signs nothing."
)


def _options(key_flag: str) -> list[Callable[[F], F]]:
    return [
        click.option("--policy", type=FILE, help="Trust policy YAML (default: $HEPBUNDLE_POLICY)."),
        click.option(
            *dict.fromkeys([key_flag, "--trust-key"]),
            "keys",
            multiple=True,
            type=FILE,
            help=_TRUST_KEY_HELP,
        ),
        *_OTHER_OPTIONS,
    ]


_OTHER_OPTIONS = [
    click.option(
        "--ca",
        multiple=True,
        type=click.Path(exists=True, path_type=Path),
        help="Trust certificates under this CA file or IGTF directory (repeatable).",
    ),
    click.option(
        "--subject",
        "subjects",
        multiple=True,
        metavar="DN",
        help="Allowed certificate subject (glob; '/DC=ch/…/CN=*' or RFC 4514 form; repeatable).",
    ),
    click.option("--identity", metavar="ID", help="Allowed sigstore identity (e-mail or CI URI)."),
    click.option("--issuer", metavar="URL", help="OIDC issuer of --identity."),
    trust_config_option,
]
#: the one way to skip signature checks in a reading command (logged; never "verified")
integrity_only_option = click.option(
    "--integrity-only",
    is_flag=True,
    help="Check file digests only, NOT signatures (logged; the result is not 'verified'). "
    "Without it, a bundle no trust policy covers is refused.",
)
_NAMES = ("policy", "keys", "ca", "subjects", "identity", "issuer", "trust_config")


def trust_options(fn: F) -> F:
    """Add the trust options to a click command and pass it ``trust=<TrustPolicy | None>``."""
    return trust_options_with()(fn)


def trust_options_with(*, key_flag: str = "--key") -> Callable[[F], F]:
    """:func:`trust_options` with the trusted-key flag spelled ``key_flag`` (commands whose
    ``--key`` is a private key to sign with take ``--trust-key``)."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in _NAMES}
            from ..policy import resolve_policy  # imported only by commands that verify

            policy = given.pop("policy")
            return fn(*args, trust=resolve_policy(policy, **given), **kwargs)

        for option in reversed(_options(key_flag)):
            wrapper = option(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate


def policy_file_options(fn: F) -> F:
    """The trust options with ``--trust-key`` (for commands whose ``--key`` signs something else:
    eval, drift, reproduce) and ``--integrity-only``; passes ``trust`` and ``integrity_only``."""
    return integrity_only_option(trust_options_with(key_flag="--trust-key")(fn))
