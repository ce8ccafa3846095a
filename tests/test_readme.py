"""The README's quick start, run literally (every shell line, then the Python snippet) in a fresh
directory: what a new user types first must work as written.

Only the install line is skipped (this environment is the installed one); everything else is
taken from README.md itself, so an edit that breaks a command breaks this test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hepbundle

from .import_fixtures import make_groupdata
from .test_data_eval import logistic_onnx

ROOT = Path(__file__).resolve().parents[1]
SRC = Path(hepbundle.__file__).resolve().parents[1]


def _quick_start() -> tuple[list[str], str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    shell = re.search(r"```sh\n(.*?)```", section, re.S)
    python = re.search(r"```python\n(.*?)```", section, re.S)
    assert shell and python, "README quick start lost its sh or python block"
    commands, pending = [], ""
    for line in shell.group(1).splitlines():
        pending += line.rstrip("\\") + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(pending.strip())
            pending = ""
    return [c for c in commands if c], python.group(1)


@pytest.mark.slow
def test_readme_quick_start_runs_literally(tmp_path: Path) -> None:
    commands, snippet = _quick_start()
    assert any(c.startswith("hepbundle init") for c in commands)
    # what the reader brings: a model, and an old store for the import line
    logistic_onnx(tmp_path / "model.onnx")
    make_groupdata(tmp_path / "GroupData")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HEPBUNDLE_")},
        "PYTHONPATH": str(SRC),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    for command in commands:
        if command.startswith("pip install"):
            continue  # the environment under test is the installed one
        r = subprocess.run(
            ["bash", "-c", f"set -e; {command}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, f"README line failed: {command}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr, command
    r = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, f"README Python snippet failed:\n{r.stderr}"
    assert (tmp_path / "hepbundle-repo/bundles/atlas/tauid/0.1.0/model/model.onnx").is_file()
