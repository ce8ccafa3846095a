"""Options shared by every command that takes them, declared once so that names and help agree.

``ref_options``  for commands that take a REF: ``--repo R`` (repeatable; the search path of
                 :func:`hepbundle.resolver.search_path`) and ``--allow-yanked``. The command
                 receives ``repos: tuple[Path, ...]`` and ``allow_yanked: bool``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = ["allow_yanked_option", "ref_options", "repos_option"]

F = TypeVar("F", bound=Callable[..., Any])

repos_option = click.option(
    "--repo",
    "repos",
    multiple=True,
    metavar="R",
    type=click.Path(path_type=Path),
    help="Repository to resolve REF in (repeatable, searched in order; default: "
    "$HEPBUNDLE_PATH, then $HEPBUNDLE_REPO, then ./hepbundle-repo).",
)
allow_yanked_option = click.option(
    "--allow-yanked", is_flag=True, help="Accept a yanked version (with a warning)."
)


def ref_options(f: F) -> F:
    """``--repo`` (repeatable) and ``--allow-yanked``: how every command finds its REF."""
    return repos_option(allow_yanked_option(f))
