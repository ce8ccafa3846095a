"""Data and model-health commands: ``data root2npz``, ``drift`` (and the evaluation tools)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..data import drift as _drift
from ..data import plot as _plot
from ..data import reference as _reference
from ..data import root2npz as _root2npz  # the module
from ..errors import DataError, DriftAlert, VerificationError
from ._common import emit_json, json_option
from ._options import DIRECTORY, F, ref_options, signer_options
from ._trust import policy_file_options

if TYPE_CHECKING:
    from ..policy import TrustPolicy
    from ..reproduce import CheckReport
    from ..signing import Signer

__all__ = ["COMMANDS"]


_ref_argument = click.argument("ref", metavar="REF")


def _data_option(help: str) -> Callable[[F], F]:
    return click.option(
        "--data",
        "data_path",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help=help,
    )


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
@click.option(
    "-t",
    "--tree",
    required=True,
    help="Name of the TTree or RNTuple (e.g. Events, CollectionTree); each file may hold either.",
)
@click.option(
    "-b", "--branches", multiple=True, metavar="A,B,…", help="Branches to convert (repeatable)."
)
@click.option(
    "--branches-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File with one branch name per line (# comments).",
)
@click.option(
    "--cut", help="uproot cut expression, e.g. '(pt > 20) & (abs(eta) < 2.5)' (TTree and RNTuple)."
)
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
    """Convert branches (RNTuple: fields) of TREE in INPUTS (paths or root:// URLs) into OUT.npz.

    TREE may be a TTree or an RNTuple. Reads in chunks (memory bounded by --step-size whatever
    the input size), keeps each branch's dtype, and writes OUT.npz.provenance.json beside it:
    inputs with adler32 and sha256 (for root:// the XRootD server's size and adler32, no second
    read), the object kind, selection, entries in/out, software versions, command line, output
    digest. XRootD steps wait at most HEPBUNDLE_XROOTD_TIMEOUT seconds (default 30).
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


@click.command()
@_ref_argument
@_data_option("NPZ of new data with the arrays the profile was made from.")
@click.option(
    "--outputs",
    type=click.Path(dir_okay=False, path_type=Path),
    help="NPZ of the model's outputs on the new data (compared when the profile holds outputs).",
)
@click.option(
    "--threshold",
    metavar="psi=0.2,ks=0.1",
    help="Alert thresholds (psi, ks, mean [σ], width [|log σ ratio|]); defaults psi=0.2,ks=0.1.",
)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG.")
@click.option("--top", default=6, show_default=True, help="Features in the plot.")
@ref_options
@policy_file_options
@json_option
def drift(
    ref: str,
    data_path: Path,
    outputs: Path | None,
    threshold: str | None,
    plot: Path | None,
    top: int,
    repos: tuple[Path, ...],
    allow_yanked: bool,
    trust: TrustPolicy | None,
    integrity_only: bool,
    as_json: bool,
) -> None:
    """Compare new data with the reference profile of REF (a bundle directory or
    ns/name@version|alias): PSI, KS, mean and width shift per feature, worst first.

    Exit status: 0 no drift, 3 a threshold was crossed (for cron jobs and CI), 2 input error.
    """
    report = _reference.drift_ref(
        ref,
        data_path,
        outputs=outputs,
        thresholds=_drift.parse_thresholds(threshold),
        repos=repos,
        allow_yanked=allow_yanked,
        policy=trust,
        integrity_only=integrity_only,
    )
    if plot is not None:
        _plot.plot_drift(report, plot, top)
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(_drift_table(report))
    if report.alerts:
        names = ", ".join(f.name for f in report.alerts[:5])
        more = "…" if len(report.alerts) > 5 else ""
        raise DriftAlert(
            f"{len(report.alerts)} of {len(report.features)} features of {report.data} drifted "
            f"from {report.ref}: {names}{more}"
        )


def _drift_table(report: _drift.DriftReport) -> str:
    def fmt(v: float, spec: str) -> str:
        return "n/a" if v != v else format(v, spec)

    lines = [
        f"drift of {report.data} vs {report.ref} "
        f"(thresholds: {', '.join(f'{k}={v:g}' for k, v in report.thresholds.items())})",
        f"  {'feature':<24} {'PSI':>7} {'KS':>7} {'shift σ':>8} {'σ ratio':>8}  alerts",
    ]
    for f in report.features:
        lines.append(
            f"  {f.name:<24} {fmt(f.psi, '7.3f')} {fmt(f.ks, '7.3f')} "
            f"{fmt(f.mean_shift, '+8.2f')} {fmt(f.width_ratio, '8.2f')}  {','.join(f.alerts) or '-'}"
        )
    if report.skipped:
        lines.append(f"  not checked (no --outputs): {', '.join(report.skipped)}")
    return "\n".join(lines)


@click.command("eval")
@_ref_argument
@_data_option("NPZ with the model inputs and the labels.")
@click.option("--labels", required=True, metavar="ARRAY", help="Array of --data holding labels.")
@click.option(
    "--metric",
    "metric_names",
    default="auc,accuracy",
    show_default=True,
    metavar="A,B,…",
    help="Metrics (built-in: auc, accuracy, logloss, mse; more via hepbundle.evaluators).",
)
@click.option(
    "--inputs",
    metavar="A,B,…",
    help="Input arrays, in model order (default: chosen from the model's input names and widths).",
)
@click.option(
    "--runner",
    type=click.Choice(["auto", "onnx", "keras", "hls4ml"]),
    default="auto",
    show_default=True,
    help="How to run the model (auto: ONNX if present, else Keras).",
)
@click.option(
    "--tolerance",
    type=float,
    default=0.01,
    show_default=True,
    help="Allowed |new - recorded| per metric.",
)
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON here."
)
@signer_options()
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="--runner hls4ml: compile and run the firmware of a bundle whose signatures no trust "
    "policy checked (only for a bundle you built yourself).",
)
@ref_options
@policy_file_options
@json_option
def eval_(
    ref: str,
    data_path: Path,
    labels: str,
    metric_names: str,
    inputs: str | None,
    runner: str,
    tolerance: float,
    out: Path | None,
    signer: Signer | None,
    allow_unsigned: bool,
    repos: tuple[Path, ...],
    allow_yanked: bool,
    trust: TrustPolicy | None,
    integrity_only: bool,
    as_json: bool,
) -> None:
    """Run the model of REF on NPZ data, compute metrics, compare with the recorded ones.

    The result is written to --out and, when REF is a published bundle, appended to its
    catalogue entry as an 'evaluation' record (signed with --key).
    Exit status: 0 every recorded metric within --tolerance, 1 a metric moved further.
    """
    from ..data import evaluate as _evaluate

    bundle = _reference.open_ref(
        ref, repos, allow_yanked=allow_yanked, policy=trust, integrity_only=integrity_only
    )
    result = _evaluate.evaluate(
        bundle,
        data_path,
        labels,
        metric_names=_split(metric_names) or ["auc"],
        inputs=_split(inputs) or None,
        runner=runner,
        tolerance=tolerance,
        allow_unsigned=allow_unsigned,
    )
    where = _evaluate.keep_result(bundle, result, out=out, signer=signer)
    if as_json:
        emit_json({**result.to_json(), "written": where})
    else:
        click.echo(f"{result.ref} on {result.data} ({result.samples:,} samples, {result.runner})")
        for name, value in result.metrics.items():
            click.echo(f"  {name:<12} {value:.6g}")
        for c in result.comparison:
            mark = "ok" if c["within"] else "CHANGED"
            click.echo(
                f"  {c['name']:<12} recorded {c['recorded']:.6g}  diff {c['diff']:+.4g}  {mark}"
            )
        for label, path in where.items():
            click.echo(f"  written to {label}: {path}")
    if result.regressions:
        worst = result.regressions[0]
        raise VerificationError(
            f"{result.ref}: {worst['name']} is {worst['value']:.4g} on {result.data}, recorded "
            f"{worst['recorded']:.4g} (tolerance {result.tolerance:g})"
        )


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _verdict_line(report: CheckReport) -> str:
    """``ready``, ``not reproducible``, or ``unconfirmed`` saying what was not checked."""
    if report.verdict != "unconfirmed":
        return report.verdict
    names = ", ".join(f"{i.what} {i.name}" for i in report.unchecked)
    return f"unconfirmed: nothing is missing, but not checked here: {names}"


@click.command()
@_ref_argument
@click.option("--check", "do_check", is_flag=True, help="Report what a re-training needs.")
@click.option(
    "--run",
    "workdir",
    type=DIRECTORY,
    help="Re-train in this (new) directory and compare metrics.",
)
@click.option(
    "--mirror",
    "mirrors",
    multiple=True,
    metavar="GIT",
    help="Git mirror (path or URL) to find the pinned commit in (repeatable).",
)
@click.option(
    "--data-dir",
    "data_dirs",
    multiple=True,
    type=DIRECTORY,
    help="Where to look for the data files (repeatable; default: the current directory).",
)
@click.option("--network", is_flag=True, help="Also try the recorded git remote over the network.")
@click.option(
    "--env",
    "environment",
    type=click.Choice(["lock", "current"]),
    default="lock",
    show_default=True,
    help="--run: create a virtualenv from the packed lock, or reuse the current interpreter.",
)
@click.option("--metrics-file", help="--run: the JSON file the training writes its metrics to.")
@click.option("--tolerance", type=float, default=0.01, show_default=True, help="|new - recorded|")
@click.option("--timeout", type=float, help="--run: seconds before the training is stopped.")
@ref_options
@policy_file_options
@json_option
def reproduce(
    ref: str,
    do_check: bool,
    workdir: Path | None,
    mirrors: tuple[str, ...],
    data_dirs: tuple[Path, ...],
    network: bool,
    environment: str,
    metrics_file: str | None,
    tolerance: float,
    timeout: float | None,
    repos: tuple[Path, ...],
    allow_yanked: bool,
    trust: TrustPolicy | None,
    integrity_only: bool,
    as_json: bool,
) -> None:
    """Can REF be re-trained? --check lists the code pin, environment lock, data and command
    with a verdict; --run WORKDIR re-trains and compares the metrics with the recorded ones.

    Exit status: 0 ready / reproduced within --tolerance, 1 not, 2 usage or input error.
    """
    from .. import reproduce as _reproduce

    if do_check == (workdir is not None):
        raise DataError("give exactly one of --check and --run WORKDIR")
    bundle = _reference.open_ref(
        ref, repos, allow_yanked=allow_yanked, policy=trust, integrity_only=integrity_only
    )
    if workdir is None:
        report = _reproduce.check(bundle, mirrors=mirrors, data_dirs=data_dirs, network=network)
        if as_json:
            emit_json(report.to_json())
        else:
            click.echo(f"{report.ref}: {_verdict_line(report)}")
            for item in report.items:
                click.echo(f"  {item.status:<9} {item.what:<11} {item.name}  {item.detail}")
        if not report.ready:
            names = ", ".join(f"{i.what} {i.name}" for i in report.missing)
            raise VerificationError(f"{report.ref} cannot be re-trained: missing {names}")
        return
    result = _reproduce.run(
        bundle,
        workdir,
        mirrors=mirrors,
        data_dirs=data_dirs,
        network=network,
        environment="current" if environment == "current" else "lock",
        metrics_file=metrics_file,
        tolerance=tolerance,
        timeout=timeout,
    )
    if as_json:
        emit_json(result.to_json())
    else:
        click.echo(f"{bundle.ref}: training exit code {result.returncode}, log {result.log}")
        click.echo(f"  environment: {result.environment}")
        for c in result.comparison:
            mark = "ok" if c["within"] else "DIFFERS"
            click.echo(
                f"  {c['name']:<20} recorded {c['recorded']:.6g}  new {c['new']:.6g}  "
                f"diff {c['diff']:+.3g}  {mark}"
            )
    if not result.passed:
        why = (
            f"the training failed (exit code {result.returncode}; see {result.log})"
            if result.returncode
            else "no recorded metric was reproduced"
            if not result.comparison
            else "metrics differ beyond the tolerance"
        )
        raise VerificationError(f"{bundle.ref} did not reproduce: {why}")
    if not as_json:
        click.echo(f"REPRODUCED {bundle.ref} within {tolerance:g}")


COMMANDS = [data, drift, eval_, reproduce]
