"""mkdocs hooks: publish ``bundle-spec/`` (the normative format) inside the documentation site.

The format spec lives beside ``docs/`` so it can be read and versioned on its own; the guides
link to it as ``../bundle-spec/…``, which works when browsing the sources. For the site, every
file under ``bundle-spec/`` is added under ``format/`` and those links are rewritten to match, so
``mkdocs build --strict`` checks them like any other link.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

SPEC_DIR = Path(__file__).resolve().parents[2] / "bundle-spec"
SITE_PREFIX = "format"
_SPEC_LINK = re.compile(r"(\]\(|\]: |href=\")((?:\.\./)+)bundle-spec/")


def on_files(files: Files, config: Any) -> Files:
    for path in sorted(SPEC_DIR.rglob("*")):
        if path.is_file() and not any(p.startswith(".") for p in path.parts):
            rel = path.relative_to(SPEC_DIR).as_posix()
            files.append(File.generated(config, f"{SITE_PREFIX}/{rel}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Page, config: Any, files: Files) -> str:
    src = page.file.src_uri
    if src.startswith(f"{SITE_PREFIX}/"):
        return markdown
    depth = src.count("/")  # directories between the docs root and this page

    def rewrite(m: re.Match[str]) -> str:
        ups = m[2].count("../")
        if ups != depth + 1:  # not a link from the docs tree to the repository's bundle-spec/
            return m[0]
        return f"{m[1]}{'../' * depth}{SITE_PREFIX}/"

    return _SPEC_LINK.sub(rewrite, markdown)
