"""Write the static catalogue site: HTML pages from templates, the search index, copied plots.

The site is plain files with relative links only, so it works from ``file://``, from any static
web server and from a CVMFS mount (``/cvmfs/<repo>/site/``). The search index is shipped twice:
``index.json`` for tools, and ``index.js`` (the same data assigned to a global) for the page,
because browsers refuse ``fetch()`` of a local JSON file under ``file://``. Model cards are user
content: Markdown is rendered with raw HTML disabled (it shows as text) and markdown-it's link
validation (no ``javascript:``/``data:`` links), and every other value goes through Jinja's
autoescaping. The site is built in a hidden sibling directory and renamed into place, so a
reader sees the previous site or the new one, never a half-written one.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup

from .._base import __version__
from ..errors import HepbundleError, ToolError
from ..manifest import canonical_json
from ..paths import resolve_inside
from ..policy import signer_name
from .collect import (
    TIMELINE_ROW,
    TIMELINE_WIDTH,
    NameInfo,
    SiteData,
    VersionInfo,
    code_link,
    data_label,
    flatten,
    image_attachments,
    io_rows,
    metric_rows,
    run_timeline,
    validity_rows,
)
from .views import (
    CHART_HEIGHT,
    CHART_WIDTH,
    FILES_OPEN,
    compare_gates,
    files_by_role,
    firmware_rows,
    job_file,
    metric_series,
    record_blocks,
)

__all__ = ["MARKER", "SiteResult", "write_site"]

#: present in every generated site; an existing output directory without it is never replaced
MARKER = ".hepbundle-site"
_STATIC = ("style.css", "search.js")


@dataclass(frozen=True)
class SiteResult:
    """What :func:`write_site` wrote."""

    path: Path
    names: int
    versions: int
    pages: int
    images: int


def write_site(data: SiteData, out: Path) -> SiteResult:
    """Render ``data`` into the directory ``out``, replacing a site generated there before."""
    out = Path(out).absolute()
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        pages, images = _render_all(data, stage)
        (stage / MARKER).write_bytes(
            canonical_json({"generator": f"hepbundle {__version__}", "repository": _repo_id(data)})
        )
        os.chmod(stage, 0o755)  # mkdtemp makes it 0700; a web server or CVMFS reader needs r-x
        _swap_into_place(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return SiteResult(
        path=out,
        names=len(data.names),
        versions=sum(len(n.versions) for n in data.names),
        pages=pages,
        images=images,
    )


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ToolError(f"{out} exists and is not a directory", hint="choose another -o")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise ToolError(
            f"{out} is a non-empty directory that hepbundle did not generate; not replacing it",
            hint="choose a new or empty directory for -o",
        )


def _swap_into_place(stage: Path, out: Path) -> None:
    """Two renames: the old site aside, the new one in; the old one is deleted afterwards."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rename(out, old / "site")
    try:
        os.rename(stage, out)
    except OSError:
        if old is not None:
            os.rename(old / "site", out)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _repo_id(data: SiteData) -> str:
    ident = data.repository.get("identity") or data.repository.get("name")
    return str(ident or data.repo_root.name)


def name_dir(name: str) -> str:
    """Site-relative directory of a name's history page (on disk; :func:`quote` it for links)."""
    return f"b/{name}"


def version_dir(name: str, version: str) -> str:
    """Site-relative directory of a version's page (on disk; :func:`quote` it for links)."""
    return f"{name_dir(name)}/{version}"


def _up(relative_dir: str) -> str:
    """The relative prefix from a page in ``relative_dir`` back to the site root."""
    return "../" * len(relative_dir.split("/"))


def _render_all(data: SiteData, stage: Path) -> tuple[int, int]:
    env = _environment()
    common = {
        "repository": _repo_id(data),
        "generator": f"hepbundle {__version__}",
        "signer_names": data.signer_names,
    }
    for static in _STATIC:
        (stage / static).write_bytes(_template_bytes(static))
    entries = [_index_entry(n, data.signer_names) for n in data.names]
    (stage / "index.json").write_bytes(canonical_json(entries))
    # '<' escaped so the data can never close a script element, even if inlined one day
    js = json.dumps(entries, ensure_ascii=False, sort_keys=True).replace("<", "\\u003c")
    (stage / "index.js").write_text(f"window.HEPBUNDLE_INDEX = {js};\n", encoding="utf-8")
    _write(env, "index.html", stage / "index.html", root="", entries=entries, **common)
    pages, images = 1, 0
    for info in data.names:
        ndir = name_dir(info.name)
        _write(env, "name.html", stage / ndir / "index.html", root=_up(ndir), info=info, **common)
        pages += 1
        for v in info.versions:
            vdir = version_dir(info.name, v.version)
            plots = _copy_plots(v, stage / vdir)
            bundle_plots = _write_bundle_images(v, stage / vdir)
            images += sum(len(p) for p in plots.values()) + len(bundle_plots)
            _write(
                env,
                "version.html",
                stage / vdir / "index.html",
                root=_up(vdir),
                info=info,
                v=v,
                plots=plots,
                bundle_plots=bundle_plots,
                **common,
            )
            pages += 1
    return pages, images


def _write(env: jinja2.Environment, template: str, dest: Path, **context: Any) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(env.get_template(template).render(**context), encoding="utf-8")


def _copy_plots(v: VersionInfo, vdir: Path) -> dict[str, list[str]]:
    """Copy the image attachments of each record; record directory name → page-relative paths."""
    out: dict[str, list[str]] = {}
    for rec in v.records:
        shown = []
        for rel in image_attachments(rec):
            try:
                src = resolve_inside(rec.path, rel)
                dest = vdir / "records" / rec.path.name / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dest)
            except (HepbundleError, OSError):
                continue  # a record with a broken attachment still shows its payload
            shown.append(f"records/{quote(rec.path.name)}/{quote(rel)}")
        out[rec.path.name] = shown
    return out


def _write_bundle_images(v: VersionInfo, vdir: Path) -> list[tuple[str, str]]:
    """Write the plots the bundle carries under ``files/``; (bundle path, page-relative link)."""
    out = []
    for rel, data in v.images:
        dest = vdir / "files" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        out.append((rel, f"files/{quote(rel)}"))
    return out


def _index_entry(info: NameInfo, names: Mapping[str, str]) -> dict[str, Any]:
    """One search-index entry per name, describing the version the index lists (signers also
    by name, so a search for the release manager finds what they signed)."""
    v = info.shown
    rec = v.record
    return {
        "name": info.name,
        "version": v.version,
        "summary": rec.summary,
        "tags": list(rec.tags),
        "framework": rec.framework,
        "authors": list(rec.authors),
        "datasets": list(rec.datasets),
        "signers": list(rec.signers),
        "signerNames": [n for s in rec.signers if (n := signer_name(s, names))],
        "aliases": dict(sorted(info.aliases.items())),
        "versions": [x.version for x in info.versions],
        "yanked": rec.yanked is not None,
        "url": quote(f"{version_dir(info.name, v.version)}/index.html"),
        "history": quote(f"{name_dir(info.name)}/index.html"),
    }


@functools.cache
def _markdown() -> MarkdownIt:
    # commonmark with raw HTML off: a <script> in a card is shown as text, never run
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str | None) -> Markup:
    """HTML of a model card; safe to insert into a page (raw HTML in the card is escaped)."""
    # safe: the renderer escapes raw HTML (html=False) and refuses javascript:/data: links
    return Markup(_markdown().render(text or ""))


def _safe_href(url: Any) -> str | None:
    """Only http(s) links become hrefs; anything else is shown as text."""
    s = str(url or "")
    return s if s.startswith(("https://", "http://")) else None


def _template_bytes(name: str) -> bytes:
    return (Path(__file__).parent / "templates" / name).read_bytes()


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    filters: Mapping[str, Callable[..., Any]] = {
        "markdown": render_markdown,
        "code_link": code_link,
        "data_label": data_label,
        "metric_rows": metric_rows,
        "io_rows": io_rows,
        "validity_rows": validity_rows,
        "run_timeline": run_timeline,
        "flatten": flatten,
        "firmware_rows": firmware_rows,
        "record_blocks": record_blocks,
        "compare_gates": compare_gates,
        "metric_series": metric_series,
        "files_by_role": files_by_role,
        "safe_href": _safe_href,
        "tojson_pretty": lambda obj: json.dumps(obj, indent=2, sort_keys=True, default=str),
    }
    env.filters.update(filters)
    env.globals.update(
        timeline_width=TIMELINE_WIDTH,
        timeline_row=TIMELINE_ROW,
        chart_width=CHART_WIDTH,
        chart_height=CHART_HEIGHT,
        files_open=FILES_OPEN,
        job_file=job_file,
        signer_name=signer_name,
    )
    return env
