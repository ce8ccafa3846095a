"""Shared pieces of the CLI: error → exit code mapping, JSON output, progress bars, options."""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from ..errors import HepbundleError

__all__ = ["HepbundleGroup", "emit_json", "fail", "json_option", "progress"]


class HepbundleGroup(click.Group):
    """A click group that reports :class:`HepbundleError` (and OS errors on user-named files)
    as one line on stderr with the error's exit code, never a traceback."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        """A mistyped command name gets the closest known ones ("did you mean")."""
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as e:
            name = args[0] if args else ""
            close = difflib.get_close_matches(name, self.list_commands(ctx), n=3, cutoff=0.6)
            if close and not name.startswith("-"):
                raise click.UsageError(
                    f"no such command {name!r}; did you mean {' or '.join(map(repr, close))}?",
                    ctx,
                ) from None
            raise e

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HepbundleError as e:
            click.echo(f"hepbundle: error: {e.diagnostics()}", err=True)
            if ctx.meta.get(_JSON_META) and not ctx.meta.get(_JSON_EMITTED):
                # the command's own result (e.g. a failed gate's report) is the answer when it
                # printed one; otherwise the failure itself is the one JSON object
                emit_json(
                    {
                        "ok": False,
                        "error": type(e).__name__,
                        "message": e.message,
                        "hint": e.hint,
                        "exitCode": e.exit_code,
                    }
                )
            ctx.exit(e.exit_code)
        except BrokenPipeError:
            # the reader went away (`hepbundle find | head`): stop quietly, as Unix tools do
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(141)
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            click.echo(f"hepbundle: error: {where}{e.strerror or e}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("hepbundle: interrupted", err=True)
            ctx.exit(130)


def fail(message: str, code: int = 2) -> None:
    """Print a one-line error and exit."""
    click.echo(f"hepbundle: error: {message}", err=True)
    sys.exit(code)


_JSON_META = "hepbundle.json"
_JSON_EMITTED = "hepbundle.json.emitted"


def _remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[_JSON_META] = True  # shared by every context: the group reports failures too
    return value


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    callback=_remember_json,
    help="Print a machine-readable JSON result on stdout (on failure: one object with "
    "ok: false, error, message, hint, exitCode).",
)


def emit_json(obj: Any) -> None:
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[_JSON_EMITTED] = True
    click.echo(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False))


@contextmanager
def progress(
    total: int, label: str, *, enabled: bool = True
) -> Iterator[Callable[[int], None] | None]:
    """A byte-count progress bar on stderr when it is a terminal and the work is large (>64 MiB);
    yields the callback to pass to library functions, or None."""
    if not enabled or total < (64 << 20) or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr, show_eta=True) as bar:
        yield bar.update
