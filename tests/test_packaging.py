"""The release artefact: a wheel built from the checkout, and install hints that name commands
that work where hepbundle is not on a package index."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import hepbundle
from hepbundle.errors import MissingExtraError, install_command

CHECKOUT = Path(hepbundle.__file__).resolve().parents[2]
REQUIRES = [
    'onnx>=1.15; extra == "onnx"',
    'matplotlib>=3.7; extra == "plot"',
    'hls4ml==1.3.0; extra == "fpga"',
    'hepbundle[plot]; extra == "fpga"',
    'hepbundle[onnx,plot,fpga]; extra == "all"',
    "click>=8",
]


def test_install_command_names_the_extras_packages() -> None:
    assert install_command("plot", REQUIRES) == "pip install 'matplotlib>=3.7'"
    assert install_command("fpga", REQUIRES) == "pip install 'hls4ml==1.3.0' 'matplotlib>=3.7'"
    assert install_command("all", REQUIRES).split()[2:] == [
        "'onnx>=1.15'",
        "'matplotlib>=3.7'",
        "'hls4ml==1.3.0'",
    ]
    # metadata that does not know the extra (an old install): the checkout's extra
    assert install_command("nope", REQUIRES) == f"pip install '{CHECKOUT}[nope]'"
    hint = MissingExtraError("matplotlib", "plot").hint or ""
    assert "'plot' extra" in hint and "pip install 'hepbundle[" not in hint


@pytest.mark.slow
def test_wheel_builds_installs_and_declares_the_plot_extra(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(CHECKOUT)],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("hepbundle-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(meta_name))
        entry_points = z.read(meta_name.replace("METADATA", "entry_points.txt")).decode()
    assert "hepbundle/_schemas/manifest.schema.json" in names or any(
        n.startswith("hepbundle/_schemas/") for n in names
    )
    assert any(n.startswith("hepbundle/templates/") for n in names)
    assert "hepbundle = hepbundle.cli:main" in entry_points
    extras = meta.get_all("Provides-Extra") or []
    assert {"onnx", "root", "plot", "fpga", "mlflow", "all"} <= set(extras)
    requires = meta.get_all("Requires-Dist") or []
    assert install_command("plot", requires) == "pip install 'matplotlib>=3.7'"
    assert "tensorflow" not in install_command("plot", requires)
    assert "matplotlib" in install_command("fpga", requires)
    # the wheel alone (its dependencies from this environment) runs the CLI
    target = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=300,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    r = subprocess.run(
        [sys.executable, "-c", "import hepbundle, sys; print(hepbundle.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(str(target))
