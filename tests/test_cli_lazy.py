"""The command table of the lazy top-level group matches the commands, and listing them imports
no heavy framework (a job's `hepbundle path` must start fast)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from hepbundle.cli import _COMMANDS, _EXTENDS

from .conftest import cli_imports


@pytest.mark.parametrize("name", sorted(_COMMANDS))
def test_table_matches_command(name: str) -> None:
    module, short = _COMMANDS[name]
    mod = importlib.import_module(f"hepbundle.cli.{module}")
    (cmd,) = [c for c in mod.COMMANDS if c.name == name]
    assert cmd.get_short_help_str(limit=1000) == short


def test_every_command_is_in_the_table() -> None:
    modules = {m for m, _ in _COMMANDS.values()} | {m for ext in _EXTENDS.values() for m in ext}
    for module in modules:
        mod = importlib.import_module(f"hepbundle.cli.{module}")
        for cmd in mod.COMMANDS:
            assert cmd.name in _COMMANDS, (
                f"{module}.{cmd.name} missing from hepbundle.cli._COMMANDS"
            )


def test_help_imports_no_framework() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from hepbundle.cli import main;"
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0;"
        "print(','.join(m for m in ('tensorflow', 'uproot', 'mlflow', 'hls4ml', 'onnxruntime', 'model_signing',"
        " 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_top_level_help_never_cuts_a_sentence() -> None:
    from click.testing import CliRunner

    from hepbundle.cli import main

    out = CliRunner().invoke(main, ["--help"], terminal_width=80).output
    listing = " ".join(out.split("Commands:", 1)[1].split())
    assert "..." not in listing
    for name, (_, short) in _COMMANDS.items():
        first_clause = short.split("; ", 1)[0]
        assert first_clause in listing, name


@pytest.mark.parametrize("command", ["publish", "sign", "verify", "path", "find", "build"])
def test_pipeline_commands_import_no_site_renderer(command: str) -> None:
    """The static site's jinja2 and markdown-it (~0.05-0.1 s of start-up) load for `catalog
    html` only, not for every command of the module it extends (publish, find, …)."""
    assert cli_imports([command, "--help"], ("jinja2", "markdown_it", "hepbundle.site")) == ""


def test_build_without_a_key_imports_no_signing_layer(model_dir: Path, tmp_path: Path) -> None:
    """`hepbundle build` (no --key) signs nothing: the policy layer and cryptography (~20 ms of
    start-up) stay unimported; `show` (signer names) still imports them when it runs."""
    args = ["build", str(model_dir), "-o", str(tmp_path / "b")]
    assert cli_imports(args, ("cryptography", "hepbundle.policy", "hepbundle.signing")) == ""
