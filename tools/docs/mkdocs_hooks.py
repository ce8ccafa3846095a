"""mkdocs hooks: publish ``bundle-spec/`` (the normative format) inside the documentation site.

The format spec lives beside ``docs/`` so it can be read and versioned on its own; the guides
link to it as ``../bundle-spec/…``, which works when browsing the sources. For the site, every
file under ``bundle-spec/`` is added under ``format/`` and those links are rewritten to match (and the spec's links back into
``../docs/`` too), so ``mkdocs build --strict`` checks them like any other link.
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
_DOCS_LINK = re.compile(r"(\]\(|\]: |href=\")((?:\.\./)+)docs/")


def on_files(files: Files, config: Any) -> Files:
    for path in sorted(SPEC_DIR.rglob("*")):
        if path.is_file() and not any(p.startswith(".") for p in path.parts):
            rel = path.relative_to(SPEC_DIR).as_posix()
            files.append(File.generated(config, f"{SITE_PREFIX}/{rel}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Page, config: Any, files: Files) -> str:
    src = page.file.src_uri
    if src.startswith(f"{SITE_PREFIX}/"):
        # a spec page linking back into docs/ (../docs/x.md): on the site, docs/ is the root,
        # one directory above format/, so the same number of ../ reaches it without "docs/"
        spec_depth = src.count("/") - 1

        def to_docs(m: re.Match[str]) -> str:
            return f"{m[1]}{m[2]}" if m[2].count("../") == spec_depth + 1 else m[0]

        return _DOCS_LINK.sub(to_docs, markdown)
    depth = src.count("/")  # directories between the docs root and this page

    def rewrite(m: re.Match[str]) -> str:
        ups = m[2].count("../")
        if ups != depth + 1:  # not a link from the docs tree to the repository's bundle-spec/
            return m[0]
        return f"{m[1]}{'../' * depth}{SITE_PREFIX}/"

    return _SPEC_LINK.sub(rewrite, markdown)
