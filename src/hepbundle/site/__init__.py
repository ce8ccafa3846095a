"""The browsable catalogue page: a static site generated from a repository's catalogue.

:func:`build_site` reads the repository (``collect``: catalogue files, manifests, model cards,
evaluation records) and writes the site (``render``: Jinja templates under ``templates/``, a
client-side search over ``index.js``). Example::

    from hepbundle.site import build_site

    result = build_site("hepbundle-repo", "hepbundle-repo-site")
    print(result.pages, "pages in", result.path)
"""

from __future__ import annotations

import os
from pathlib import Path

from .collect import SiteData, collect
from .render import SiteResult, write_site

__all__ = ["SiteData", "SiteResult", "build_site", "collect", "write_site"]


def build_site(repo: str | os.PathLike[str], out: str | os.PathLike[str]) -> SiteResult:
    """Write the catalogue site of repository ``repo`` into the directory ``out``."""
    return write_site(collect(Path(repo)), Path(out))
