"""The validity scope shown to a person: ``hepbundle show`` prints it, one line per dimension
(the catalogue site's version page is tested in tests/test_site.py)."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main

from .conftest import write_spec


def _bundle(tmp_path: Path, validity: str) -> hepbundle.Bundle:
    d = tmp_path / "src"
    (d / "model").mkdir(parents=True)
    (d / "model" / "model.bin").write_bytes(b"\x00" * 64)
    write_spec(d, "name: atlas/tauid\nversion: 1.0.0\nfiles:\n  - path: model/model.bin\n")
    (d / "hepbundle.yaml").write_text((d / "hepbundle.yaml").read_text() + validity)
    return hepbundle.build(d, tmp_path / "out")


def test_show_prints_the_scope_one_line_per_dimension(tmp_path: Path) -> None:
    b = _bundle(
        tmp_path,
        "validity:\n"
        "  runs: [{first: 450000, last: 456999}, {first: 470000}]\n"
        "  times: [{since: 2024-04-01, until: 2024-11-01}]\n"
        "  releases: [CMSSW_15_0_*]\n"
        "  runtimes: 'onnxruntime >= 1.18'\n"
        "  scope: {beam: pp}\n",
    )
    res = CliRunner().invoke(main, ["show", str(b.root)])
    assert res.exit_code == 0, res.output
    block = res.output[res.output.index("\nvalidity\n") :]
    assert re.search(r"\n  runs\s+450000–456999, 470000–…\n", block), block
    assert re.search(r"\n  times\s+2024-04-01 – 2024-11-01\n", block), block
    assert re.search(r"\n  releases\s+CMSSW_15_0_\*\n", block), block
    assert re.search(r"\n  runtimes\s+onnxruntime >= 1.18\n", block), block
    assert re.search(r"\n  beam\s+pp\n", block), block


def test_show_without_a_scope_prints_no_validity_block(tmp_path: Path) -> None:
    b = _bundle(tmp_path, "")
    res = CliRunner().invoke(main, ["show", str(b.root)])
    assert res.exit_code == 0, res.output
    assert "\nvalidity\n" not in res.output
