"""The documentation site: mkdocs builds it with --strict (no broken link, no missing nav page),
the CLI reference is the live --help of every command, and the error reference covers every
error class with its exit code."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import hepbundle.errors as errors
from hepbundle.cli import _COMMANDS, main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _error_classes() -> list[type[errors.HepbundleError]]:
    return [
        c
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, errors.HepbundleError)
    ]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_error_reference_lists_every_error_with_its_exit_code(
    cls: type[errors.HepbundleError],
) -> None:
    rows = {
        m[1]: int(m[2])
        for m in re.finditer(
            r"^\| `(\w+)` \| (\d+) \|", (DOCS / "reference/errors.md").read_text(), re.M
        )
    }
    assert cls.__name__ in rows, f"docs/reference/errors.md has no row for {cls.__name__}"
    assert rows[cls.__name__] == cls.exit_code


def _nav_pages(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [p for v in node.values() for p in _nav_pages(v)]
    if isinstance(node, list):
        return [p for v in node for p in _nav_pages(v)]
    return []


class _ConfigLoader(yaml.SafeLoader):
    """Safe loading of mkdocs.yml: its ``!!python/…`` tags (the slugify function) become None."""


_ConfigLoader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)


def test_nav_names_existing_pages() -> None:
    """Fast twin of the strict build: every nav entry is a page (format/ is bundle-spec/)."""
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_ConfigLoader)
    for page in _nav_pages(config["nav"]):
        src = (
            ROOT / "bundle-spec" / page.removeprefix("format/")
            if page.startswith("format/")
            else DOCS / page
        )
        assert src.is_file(), f"mkdocs.yml nav names {page}, which does not exist"


@pytest.mark.parametrize(
    ("page", "finding"),
    [
        ("[gone](missing.md)", "missing.md"),
        ("[a directory](sub/)", "sub/"),
        ("[the code](code/run.py)", "code/run.py"),  # a file the site excludes
        ("no link, but orphan.md is not in the nav", "orphan.md"),
        ("[fine](sub/page.md)", None),
    ],
    ids=["missing-page", "directory-link", "excluded-file", "page-not-in-nav", "control"],
)
def test_strict_build_fails_on_every_dead_link(
    tmp_path: Path, page: str, finding: str | None
) -> None:
    """The site's own validation settings turn each kind of dead link mkdocs only reports at
    INFO level by default into a failure of ``mkdocs build --strict``."""
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_ConfigLoader)
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "code").mkdir()
    (docs / "code" / "run.py").write_text("print('hi')\n")
    (docs / "sub" / "page.md").write_text("# Sub\n")
    (docs / "index.md").write_text(f"# Home\n\n{page}\n")
    nav = ["index.md", "sub/page.md"]
    if "orphan" in page:
        (docs / "orphan.md").write_text("# Orphan\n")
    project = {
        "site_name": "t",
        "docs_dir": str(docs),
        "strict": True,
        "validation": config["validation"],
        "exclude_docs": "/code/\n",
        "hooks": [str(ROOT / "tools/docs/strict_links.py")],
        "nav": nav,
    }
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(project))
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "s")],
        cwd=tmp_path,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    if finding is None:
        assert r.returncode == 0, r.stdout + r.stderr
    else:
        assert r.returncode != 0 and finding in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    out = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    cli = (out / "reference" / "cli.html").read_text()
    for name, cmd in main.commands.items():  # every command, with its live --help text
        assert f"hepbundle {name}" in cli
        first_line = (cmd.help or "").strip().splitlines()[0]
        assert first_line.split(":")[0][:40] in cli, name
    assert "hepbundle catalog html" in cli
    api = (out / "reference" / "api.html").read_text()
    for anchor in (
        "hepbundle.open",
        "hepbundle.resolve",
        "hepbundle.policy.TrustPolicy",
        "hepbundle.repository.read_name_catalog",
        "hepbundle.site.build_site",
    ):
        assert f'id="{anchor}"' in api, anchor
    assert (out / "format" / "v1" / "manifest.schema.json").is_file()  # the format, linked
    links = (out / "signing.html").read_text()
    assert "bundle-spec/" not in re.sub(r"<code>.*?</code>", "", links)


def test_cli_reference_keeps_preformatted_blocks_and_whole_one_liners() -> None:
    """The CLI reference (mkdocs-click renders each --help as Markdown) shows "Typical life of
    a model" as the block --help prints, not one run-on paragraph, and every subcommand's
    one-liner whole (mkdocs-click takes the docstring's first line)."""
    import markdown
    from mkdocs_click._docs import make_command_docs

    md = "\n".join(make_command_docs("hepbundle", main, depth=1, list_subcommands=True))
    html = markdown.markdown(md, extensions=["tables"])
    blocks = re.findall(r"<pre><code>(.*?)</code></pre>", html, re.S)
    life = [b for b in blocks if "hepbundle init model-dir/" in b]
    assert life and "\n" in life[0] and "hepbundle path ns/name@prod FILE" in life[0], blocks
    assert any("hepbundle sign B --sigstore" in b for b in blocks)
    for name, (_, short) in _COMMANDS.items():
        assert f"- *{name}*: {short}" in md, name
    assert (
        "- *compare*: Compare float model, hls4ml C++ emulation and hardware outputs of REF" in md
    )
