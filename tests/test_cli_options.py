"""Every command that takes --repo, --policy or a signer flag takes the same one, with the same
help (declared once in hepbundle.cli._options / _trust)."""

from __future__ import annotations

from collections import defaultdict

import click

from hepbundle.cli import main
from hepbundle.cli._options import ref_options, repository_option


def _commands(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    """Every command under ``group`` (the top level lists its commands lazily)."""
    ctx = click.Context(group)
    out: dict[str, click.Command] = {}
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        if isinstance(cmd, click.Group):
            out.update(_commands(cmd, f"{prefix}{name} "))
        else:
            out[f"{prefix}{name}"] = cmd
    return out


def _option_helps() -> dict[str, dict[str, list[str]]]:
    """option name → help text → the commands declaring it so."""
    seen: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for cname, cmd in _commands(main).items():
        for p in cmd.params:
            if isinstance(p, click.Option):
                for opt in p.opts:
                    seen[opt][p.help or ""].append(cname)
    return seen


def test_shared_options_have_one_declaration() -> None:
    seen = _option_helps()
    for opt in ("--policy", "--cert", "--chain", "--sigstore", "--identity-token", "--trust-key"):
        assert len(seen[opt]) == 1, f"{opt} is declared {len(seen[opt])} ways: {dict(seen[opt])}"
    # --repo: the search path of a REF (repeatable) or the one repository a command changes
    assert len(seen["--repo"]) == 2, dict(seen["--repo"])
    # --key: a private key to sign with, or a public key to trust (verifying commands)
    assert len(seen["--key"]) == 2, dict(seen["--key"])
    assert len(seen["--allow-yanked"]) == 1


def test_every_ref_command_takes_the_ref_options() -> None:
    ref_commands = [
        name
        for name, cmd in _commands(main).items()
        if any(isinstance(p, click.Argument) and p.name == "ref" for p in cmd.params)
        or any(isinstance(p, click.Argument) and p.metavar == "REF" for p in cmd.params)
    ]
    assert {"path", "show", "fpga compare", "eval", "lineage"} <= set(ref_commands)
    # alias, yank and approve change the catalogue entry (or records) REF names in the one
    # repository they write to
    for name in set(ref_commands) - {"alias", "yank", "approve"}:
        opts = {o for p in _commands(main)[name].params for o in getattr(p, "opts", [])}
        assert {"--repo", "--allow-yanked"} <= opts, name


def test_decorators_are_the_declarations() -> None:
    @click.command()
    @ref_options
    def a(repos: object, allow_yanked: bool) -> None: ...

    @click.command()
    @repository_option
    def b(repo: object) -> None: ...

    helps = {p.help for c in (a, b) for p in c.params if "--repo" in getattr(p, "opts", [])}
    assert helps == set(_option_helps()["--repo"])


def test_path_types_and_typevar_have_one_home() -> None:
    """FILE / DIRECTORY / F are declared in cli/_options.py and imported everywhere else."""
    import re
    from pathlib import Path

    import hepbundle.cli

    cli_dir = Path(hepbundle.cli.__file__).parent
    pattern = re.compile(
        r"TypeVar\(|click\.Path\(exists=True, dir_okay=False, path_type=Path\)"
        r"|click\.Path\(file_okay=False, path_type=Path\)"
    )
    found = {p.name for p in cli_dir.glob("*.py") if pattern.search(p.read_text(encoding="utf-8"))}
    assert found == {"_options.py"}


def test_one_spelling_for_where_a_command_writes() -> None:
    """Every option naming where a command writes its result is -o/--out (the older --output
    is still accepted where it was), and --trust-key is the public key to trust everywhere."""
    for cname, cmd in _commands(main).items():
        for p in cmd.params:
            opts = set(getattr(p, "opts", []))
            if opts & {"--out", "--output", "-o"}:
                assert {"-o", "--out"} <= opts, (cname, sorted(opts))
        verifying = {o for p in cmd.params for o in getattr(p, "opts", [])}
        if "--policy" in verifying:
            assert "--trust-key" in verifying, cname
