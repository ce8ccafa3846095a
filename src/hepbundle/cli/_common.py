"""Shared pieces of the CLI: error → exit code mapping, JSON output, progress bars, options."""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

import click

from ..errors import HepbundleError

__all__ = [
    "HepbundleGroup",
    "ProgressBar",
    "ProgressLogHandler",
    "emit_json",
    "fail",
    "human_size",
    "json_option",
    "progress",
    "progress_bar",
]


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


def human_size(n: float) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class ProgressBar:
    """A byte-count bar: ``label [####    ] 120.0 MiB/512.0 MiB  85.3 MiB/s  ETA 0:05``.

    :meth:`update` is the callback the library functions take; :meth:`stage` says what the
    command is doing now (publish: verifying, copying, then cataloguing), and once every byte
    is counted the bar names ``after`` (the work left that reads no more bytes) instead of
    sitting at 100 %. :meth:`close` replaces the bar by one line of what was done (bytes, time,
    throughput), so no stale percentage is left on screen; :meth:`clear` removes it (an
    interrupted command says so in one line of its own). :meth:`print_above` writes a line
    (a log message) on the bar's line and draws the bar again below it. Every write holds one
    lock: worker threads' updates and a log message never interleave."""

    WIDTH = 24
    INTERVAL = 0.1

    def __init__(self, total: int, label: str, stream: IO[str], *, after: str = "") -> None:
        self.total = max(total, 1)
        self.label = label
        self.stage_text = label
        self.after = after
        self.stream = stream
        self.done = 0
        self.start = time.monotonic()
        self._drawn = 0.0
        self._width = 0  # of the text on the bar's line now (0: the line is empty)
        self._lock = threading.RLock()

    def update(self, n: int) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now - self._drawn >= self.INTERVAL or self.done >= self.total:
                self._draw(now)

    def stage(self, text: str) -> None:
        with self._lock:
            self.stage_text = text
            self._draw(time.monotonic())

    def line(self, now: float) -> str:
        """The bar as it is drawn at ``now``."""
        done = min(self.done, self.total)
        elapsed = max(now - self.start, 1e-6)
        rate = self.done / elapsed
        filled = int(self.WIDTH * done / self.total)
        bar = "#" * filled + " " * (self.WIDTH - filled)
        if done >= self.total and self.after:
            return f"{self.stage_text} [{bar}] {human_size(done)}  {self.after}…"
        left = (self.total - done) / rate if rate > 0 else 0.0
        eta = f"ETA {int(left) // 60}:{int(left) % 60:02d}"
        return (
            f"{self.stage_text} [{bar}] {human_size(done)}/{human_size(self.total)}  "
            f"{human_size(rate)}/s  {eta}"
        )

    def print_above(self, text: str) -> None:
        """``text`` on a line of its own where the bar was, and the bar (if it was drawn) again
        on the next line."""
        with self._lock:
            drawn = self._drawn > 0
            self._write(text, end="\n")
            if drawn:
                self._draw(time.monotonic())

    def _draw(self, now: float) -> None:
        self._write(self.line(now))
        self._drawn = now

    def _write(self, text: str, end: str = "") -> None:
        pad = " " * max(self._width - len(text), 0)
        self.stream.write(f"\r{text}{pad}{end}")
        self.stream.flush()
        self._width = 0 if end == "\n" else len(text)

    def clear(self) -> None:
        """Blank the bar's line and leave the cursor at its start."""
        with self._lock:
            if self._width:
                self.stream.write(f"\r{' ' * self._width}\r")
                self.stream.flush()
                self._width = 0

    def close(self, *, ok: bool = True) -> None:
        with self._lock:
            elapsed = max(time.monotonic() - self.start, 1e-6)
            what = "done" if ok else "stopped"
            self._write(
                f"{self.label}: {what}, {human_size(self.done)} in {elapsed:.1f} s "
                f"({human_size(self.done / elapsed)}/s)",
                end="\n",
            )


#: the bar on stderr now (:func:`progress_bar`), which :class:`ProgressLogHandler` writes above
_active_bar: ProgressBar | None = None


class ProgressLogHandler(logging.Handler):
    """The CLI's log handler: each message on a line of its own on stderr; while a progress bar
    is drawn there, above the bar (which is drawn again below it), never on the bar's line."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            bar = _active_bar
            if bar is not None and bar.stream is sys.stderr:
                bar.print_above(text)
            else:
                sys.stderr.write(text + "\n")
                sys.stderr.flush()
        except Exception:
            self.handleError(record)


@contextmanager
def progress_bar(
    total: int, label: str, *, enabled: bool = True, after: str = ""
) -> Iterator[ProgressBar | None]:
    """A :class:`ProgressBar` on stderr when it is a terminal and the work is large (>64 MiB),
    else None; closed with a summary line (also when the command fails)."""
    global _active_bar
    if not enabled or total < (64 << 20) or not sys.stderr.isatty():
        yield None
        return
    bar = _active_bar = ProgressBar(total, label, sys.stderr, after=after)
    try:
        yield bar
    except KeyboardInterrupt:
        bar.clear()  # the one line left is the group's "interrupted"
        raise
    except BaseException:
        if bar.done:
            bar.close(ok=False)
        else:  # nothing was counted: the error's own line says it all
            bar.clear()
        raise
    else:
        bar.close()
    finally:
        _active_bar = None


@contextmanager
def progress(
    total: int, label: str, *, enabled: bool = True
) -> Iterator[Callable[[int], None] | None]:
    """:func:`progress_bar`'s callback to pass to library functions, or None."""
    with progress_bar(total, label, enabled=enabled) as bar:
        yield bar.update if bar is not None else None
