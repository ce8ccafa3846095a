"""``hepbundle catalog html``: write the browsable static catalogue site of a repository."""

from __future__ import annotations

from pathlib import Path

import click

from ..repository import default_repo
from ._common import emit_json, json_option
from ._options import repository_option
from .repo import catalog

__all__ = ["COMMANDS"]


@click.command("html")
@repository_option
@click.option(
    "-o",
    "--out",
    "--output",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Site directory to write (replaced as a whole if hepbundle generated it before).",
)
@json_option
def html(repo: str | None, out: Path, as_json: bool) -> None:
    """Write a static, searchable catalogue site: a page per version and a history per name.

    The site has relative links only: open OUTPUT/index.html from disk, serve it with any static
    web server, or publish it next to the bundles (e.g. /cvmfs/REPO/site/).
    """
    # imported here: this module extends the `catalog` group, so every command of cli/repo.py
    # (publish, find, …) loads it, and the site's jinja2 + markdown-it cost ~0.05-0.1 s
    from ..site import build_site

    res = build_site(Path(repo) if repo else default_repo(), out)
    if as_json:
        emit_json(
            {
                "path": str(res.path),
                "names": res.names,
                "versions": res.versions,
                "pages": res.pages,
                "images": res.images,
            }
        )
        return
    click.echo(
        f"wrote {res.pages} pages ({res.names} names, {res.versions} versions, "
        f"{res.images} plots) to {res.path}; open {res.path / 'index.html'}"
    )


# html joins the repository area's `catalog` group, next to `catalog rebuild`
catalog.add_command(html)

#: the group itself is registered by cli/repo.py; only the subcommand is ours
COMMANDS: list[click.Command] = []
