"""Signing commands: sign, verify (signature first, then digests), key generate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import signing as _signing
from ..policy import TrustPolicy
from ._common import emit_json, json_option, progress
from ._options import ref_options, role_option, signer_options
from ._trust import integrity_only_option, trust_options

__all__ = ["COMMANDS"]


@click.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False, path_type=Path))
@signer_options(required=True, trust_config=True)
@role_option
@click.option("--force", is_flag=True, help="Replace an existing signature of the same role.")
@click.option(
    "--tsa",
    "tsa_url",
    metavar="URL",
    help="Add an RFC 3161 timestamp from this Time-Stamping Authority (HTTP POST): the "
    "signature then verifies after the signing certificate expires, under a policy naming the "
    "TSA (tsa: {ca: …}). The only network use besides --sigstore.",
)
@json_option
def sign(
    bundle: Path,
    signer: _signing.Signer,
    role: str | None,
    force: bool,
    tsa_url: str | None,
    as_json: bool,
) -> None:
    """Sign BUNDLE (OMS v1.0 signature in hepbundle.sig) after checking every file.

    \b
        hepbundle sign B --key key.pem                        EC key
        hepbundle sign B --cert usercert.pem --key userkey.pem X.509 (EC or RSA)
        hepbundle sign B --sigstore                           keyless, in CI
        hepbundle sign B --key rm.pem --as release            co-signature
        hepbundle sign B --cert … --key … --tsa http://tsa/   with an RFC 3161 timestamp
    """
    with progress(_tree_size(bundle), "checking") as cb:
        res = _signing.sign(bundle, signer, role=role, force=force, progress=cb, tsa_url=tsa_url)
    if as_json:
        emit_json(res.to_json())
    else:
        click.echo(f"signed {bundle} as {res.role} by {res.signer} -> {res.path.name}")


def _tree_size(root: Path) -> int:
    """Bytes under ``root``, for the progress bar; only worth a walk when one can be shown."""
    if not (sys.stderr.isatty() and root.is_dir()):
        return 0
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


@click.command()
@click.argument("bundle", metavar="REF")
@click.option(
    "--file",
    "files",
    multiple=True,
    metavar="PATH",
    help="Check only this bundle-relative file's digest (repeatable); the signature is checked.",
)
@trust_options
@integrity_only_option
@ref_options
@json_option
def verify(
    bundle: str,
    files: tuple[str, ...],
    trust: TrustPolicy | None,
    integrity_only: bool,
    repos: tuple[Path, ...],
    allow_yanked: bool,
    as_json: bool,
) -> None:
    """Verify REF (a bundle directory, or ns/name[@version|@alias] on the search path): its
    signatures against the trust policy, then every file's digest.

    The policy comes from --policy, the quick flags (--key, --ca/--subject, --identity/--issuer),
    $HEPBUNDLE_POLICY, or the trust root of the repository REF is published in. Without any,
    REF is refused; --integrity-only checks the files alone and never reports "verified". A
    catalogue reference is also checked against the catalogue (the bundle it recorded, its
    signed statements, yanked versions refused unless --allow-yanked), as `hepbundle path` does.

    Exit status: 0 verified, 1 verification failure, 2 usage or input error.
    """
    from .. import resolver as _resolver

    where = _resolver.locate(bundle, repos=repos, allow_yanked=allow_yanked)
    with progress(_tree_size(where.path), "verifying") as cb:
        res = _resolver.verify_ref(
            where,
            trust,
            integrity_only=integrity_only,
            files=list(files) or None,
            progress=cb,
        )
    if as_json:
        emit_json(res.to_json())
        if not res.report.ok:
            raise SystemExit(1)
        return
    res.report.raise_for_problems(res.bundle.ref)
    if res.signers is None:
        click.echo(
            f"INTEGRITY ONLY {res.bundle.ref}: signatures NOT checked (--integrity-only); "
            f"{res.report.checked} files, {res.report.bytes:,} bytes match the manifest"
        )
        return
    note = " signed by " + "; ".join(f"{s.kind} {s.identity}" for s in res.signers) + ";"
    click.echo(
        f"OK {res.bundle.ref}:{note} {res.report.checked} files, "
        f"{res.report.bytes:,} bytes verified"
    )


@click.group()
def key() -> None:
    """Manage signing keys."""


@key.command("generate")
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key file to write (mode 0600); the public key goes to <stem>.pub.pem.",
)
@click.option(
    "--curve",
    type=click.Choice(_signing.SUPPORTED_CURVES),
    default="secp256r1",
    show_default=True,
)
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
@json_option
def generate(out: Path, curve: str, force: bool, as_json: bool) -> None:
    """Write a new EC private key and its public key (for tests, CI and air-gapped sites)."""
    priv, pub = _signing.generate_key(out, curve=curve, force=force)
    if as_json:
        fingerprint = _signing.key_id(_signing.load_public_key(pub))
        emit_json({"private": str(priv), "public": str(pub), "curve": curve, "keyId": fingerprint})
        return
    click.echo(f"wrote {priv} (private, keep it secret) and {pub} (public, put it in the policy)")


COMMANDS = [sign, verify, key]
