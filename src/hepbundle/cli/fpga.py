"""FPGA commands: ``hepbundle fpga capture | compare | reloadable``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from .. import resolver as _resolver
from .._base import write_atomic
from ..errors import VerificationError
from ..fpga.tolerance import DEFAULT_MAX_RELATIVE_DIFF, DEFAULT_MIN_ARGMAX_AGREEMENT
from ..manifest import canonical_json
from ._common import emit_json, json_option
from ._options import DIRECTORY, FILE, ref_options, signer_options
from ._trust import integrity_only_option, trust_options, trust_options_with

if TYPE_CHECKING:
    from ..load import VerifyMode
    from ..policy import TrustPolicy
    from ..signing import Signer

__all__ = ["COMMANDS"]

_TOOLCHAINS = ["hls4ml", "finn", "vitis-ai"]


@click.group()
def fpga() -> None:
    """FPGA firmware: capture projects, compare firmware with the model, reload hints."""


@fpga.command()
@click.argument("project_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--toolchain", type=click.Choice(_TOOLCHAINS), required=True)
@click.option(
    "--to", metavar="DIR", help="Bundle directory for the project (default firmware/<toolchain>)."
)
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the section here."
)
def capture(project_dir: Path, toolchain: str, to: str | None, out: Path | None) -> None:
    """Print (or write with -o) the manifest 'fpga' section for PROJECT_DIR.

    \b
        hepbundle fpga capture hls4ml_prj --toolchain hls4ml
        hepbundle fpga capture finn_build --toolchain finn -o fpga.json
    """
    from ..fpga.capture import capture as _capture

    cap = _capture(project_dir, toolchain, to=to)
    data = canonical_json(cap.meta)
    if out is None:
        click.echo(data.decode("utf-8"), nl=False)
        return
    write_atomic(out, data)
    click.echo(f"wrote the fpga section ({len(cap.files)} files, {toolchain}) to {out}", err=True)


@fpga.command()
@click.argument("ref", metavar="REF")
@ref_options
@click.option(
    "--inputs",
    type=FILE,
    required=True,
    help="NPZ with one array per model input (or a single array).",
)
@click.option(
    "--hardware-outputs",
    type=FILE,
    help="NPZ of outputs from a hardware test bed or RTL co-simulation, one array per output.",
)
@click.option(
    "--tolerance",
    type=float,
    default=0.0,
    show_default=True,
    help="Allowed |hardware - emulation| per value (0: bit-exact).",
)
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="Fraction of hardware values that must be within --tolerance.",
)
@click.option(
    "--float-tolerance", type=float, help="Also fail if max |emulation - float| exceeds this."
)
@click.option(
    "--min-argmax-agreement",
    type=click.FloatRange(0, 1),
    default=DEFAULT_MIN_ARGMAX_AGREEMENT,
    show_default=True,
    help="Fail if float vs emulation argmax (decision) agreement is below this (0: off).",
)
@click.option(
    "--max-relative-diff",
    type=click.FloatRange(0, min_open=True),
    default=DEFAULT_MAX_RELATIVE_DIFF,
    show_default=True,
    help="Fail if max |emulation - float| exceeds this fraction of the float output's range.",
)
@click.option(
    "--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write the histogram PNG here."
)
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=DIRECTORY,
    help="Also write report.json and report.png into this directory.",
)
@signer_options()
@click.option(
    "--build-dir",
    type=DIRECTORY,
    help="Compile the emulation here (default: a cache directory keyed by the bundle).",
)
@click.option("--no-float", is_flag=True, help="Skip the float model (emulation vs hardware only).")
@click.option(
    "--integrity-only",
    "--allow-unsigned",
    "allow_unsigned",
    is_flag=True,
    help="Check file digests only, NOT signatures, and compile and run the firmware anyway "
    "(logged; only for a bundle you built yourself). Without it, REF must satisfy a trust "
    "policy (the repository's trust root, $HEPBUNDLE_POLICY or the options below).",
)
@trust_options_with(key_flag="--trust-key")
@json_option
def compare(
    ref: str,
    repos: tuple[Path, ...],
    allow_yanked: bool,
    inputs: Path,
    hardware_outputs: Path | None,
    tolerance: float,
    min_agreement: float,
    float_tolerance: float | None,
    min_argmax_agreement: float,
    max_relative_diff: float,
    plot: Path | None,
    out_dir: Path | None,
    signer: Signer | None,
    build_dir: Path | None,
    no_float: bool,
    allow_unsigned: bool,
    trust: TrustPolicy | None,
    as_json: bool,
) -> None:
    """Compare float model, hls4ml C++ emulation and hardware outputs of REF (a bundle
    directory, or ns/name[@version|@alias] in --repo).

    Compiling the emulation runs code from the bundle, so REF's signatures must be checked by
    a trust policy (--policy, --trust-key, … or $HEPBUNDLE_POLICY); only the files its manifest
    lists are compiled, each verified as it is copied.

    Exit status 1 when a tolerance is exceeded (a CI gate); the defaults fail a firmware that
    does not compute the model (e.g. a constant output): bit-exact hardware, and float vs
    emulation decisions kept for 90 % of the samples with max |diff| within 20 % of the float
    output's range. Comparing nothing (--no-float and no --hardware-outputs) is an error
    (exit 2). The report is appended to the bundle's catalogue entry as an evaluation record
    when REF is a published bundle.
    """
    from ..fpga._plot import render_png
    from ..fpga.compare import Tolerance, compare_bundle, record_report

    mode: VerifyMode = "integrity" if allow_unsigned else "lazy"
    bundle = _resolver.resolve(
        ref, repos=repos, allow_yanked=allow_yanked, policy=trust, verify=mode
    )
    if signer is not None:
        from ..repository.records import recordable_repo

        recordable_repo(bundle, signer=signer)  # --key needs a catalogue entry to sign into
    report = compare_bundle(
        bundle,
        inputs,
        hardware_npz=hardware_outputs,
        tolerance=Tolerance(
            hardware_atol=tolerance,
            min_agreement=min_agreement,
            float_atol=float_tolerance,
            min_argmax_agreement=min_argmax_agreement or None,
            max_relative_diff=max_relative_diff,
        ),
        build_dir=build_dir,
        float_model=not no_float,
        allow_unsigned=allow_unsigned,
    )
    png = render_png(report)
    if plot is not None:
        write_atomic(plot, png)
    where = record_report(bundle, report, png, out_dir=out_dir, signer=signer)
    if as_json:
        emit_json({**report.to_json(), "written": where})
        if not report.passed:
            raise SystemExit(1)
        return
    for out in report.outputs:
        click.echo(_summary_line(out.to_json()))
    for label, path in where.items():
        click.echo(f"report {label}: {path}")
    if not report.passed:
        raise VerificationError(f"{report.ref}: firmware comparison failed: {report.failures[0]}")
    click.echo(f"PASS {report.ref}")


def _summary_line(out: dict[str, object]) -> str:
    parts = [f"{out['name']} ({out['samples']}x{out['width']})"]
    fe = out.get("float_vs_emulation")
    if isinstance(fe, dict):
        parts.append(
            f"float-emu max|d|={fe['maxAbsDiff']:.4g} ({fe['maxRelativeDiff']:.3g} of range) "
            f"mean|d|={fe['meanAbsDiff']:.4g} argmax={fe['argmaxAgreement']:.4f}"
        )
    eh = out.get("emulation_vs_hardware")
    if isinstance(eh, dict):
        parts.append(f"emu-hw bit-exact={eh['bitExactFraction']:.4f} max|d|={eh['maxAbsDiff']:.4g}")
    parts.append("ok" if out.get("passed") else "FAIL")
    return "  ".join(parts)


@fpga.command()
@click.argument("ref", metavar="REF")
@ref_options
@integrity_only_option
@trust_options
@json_option
def reloadable(
    ref: str,
    repos: tuple[Path, ...],
    allow_yanked: bool,
    integrity_only: bool,
    trust: TrustPolicy | None,
    as_json: bool,
) -> None:
    """Which layers' weights of REF's hls4ml firmware can change without a new bitstream.

    REF must satisfy a trust policy (the repository's trust root, $HEPBUNDLE_POLICY or the
    options below), or --integrity-only checks its file digests alone (logged)."""
    from ..fpga.reloadable import reloadable as _reloadable

    mode: VerifyMode = "integrity" if integrity_only else "lazy"
    bundle = _resolver.resolve(
        ref, repos=repos, allow_yanked=allow_yanked, policy=trust, verify=mode
    )
    report = _reloadable(bundle)
    if as_json:
        emit_json(report.to_json())
        return
    for layer in report.layers:
        if layer.update != "none":
            click.echo(f"{layer.name:<20} {layer.update:<12} {layer.reason}")
    click.echo("loadable at run time: " + (", ".join(report.runtime_weights) or "none"))
    click.echo("always a new bitstream: " + "; ".join(report.always_rebuild))


COMMANDS = [fpga]
