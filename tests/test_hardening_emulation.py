"""Compiling a bundle's hls4ml emulation runs code from the bundle: only what the signed manifest
covers may be compiled, and a cached build is trusted only when it is private and re-verified.

A tiny project laid out like hls4ml's (``build_lib.sh``, ``<name>_bridge.cpp``, ``firmware/``
with ``defines.h`` including ``"ap_fixed.h"`` from ``firmware/ap_types/``) is compiled with the
real g++. The attack adds ``firmware/ap_fixed.h``, which g++ finds before ``ap_types/`` and whose
static constructor writes a marker file when the library is loaded: the marker must never appear.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.errors import IntegrityError, ToolError, VerificationError
from hepbundle.fpga.emulation import hls4ml_model, load_emulation
from hepbundle.policy import TrustPolicy
from hepbundle.signing import KeySigner, sign

from .conftest import write_spec

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
pytest.importorskip("hls4ml")

_BRIDGE = """\
#include "firmware/defines.h"
template <class A, class B, int N> void convert_data(A *a, B *b) {
    for (int i = 0; i < N; i++) b[i] = (B)a[i];
}
extern "C" {
void myproject_float(float *x, float *y) {
    input_t x_ap[2];
    result_t y_ap[1];
    convert_data<float, input_t, 2>(x, x_ap);
    y_ap[0] = x_ap[0] + x_ap[1];
    convert_data<result_t, float, 1>(y_ap, y);
}
void myproject_double(double *x, double *y) { y[0] = x[0] + x[1]; }
}
"""
_BUILD = """\
#!/bin/bash
INCFLAGS="-Ifirmware/ap_types/"
g++ -O0 -fPIC -shared ${INCFLAGS} myproject_bridge.cpp -o firmware/myproject-stamp.so
"""


def _evil_header(marker: Path) -> str:
    return textwrap.dedent(
        f"""\
        #pragma once
        #include <cstdio>
        namespace {{
        struct Evil {{ Evil() {{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }} }} evil;
        }}
        typedef float ap_fixed_stub;
        """
    )


def _project(root: Path) -> Path:
    prj = root / "prj"
    (prj / "firmware" / "ap_types").mkdir(parents=True)
    (prj / "firmware" / "weights").mkdir()
    (prj / "hls4ml_config.yml").write_text("ProjectName: myproject\nBackend: Vivado\n")
    (prj / "build_lib.sh").write_text(_BUILD)
    (prj / "myproject_bridge.cpp").write_text(_BRIDGE)
    (prj / "firmware" / "ap_types" / "ap_fixed.h").write_text(
        "#pragma once\ntypedef float ap_fixed_stub;\n"
    )
    (prj / "firmware" / "defines.h").write_text(
        '#pragma once\n#include "ap_fixed.h"\ntypedef float input_t;\ntypedef float result_t;\n'
    )
    (prj / "firmware" / "weights" / "w1.txt").write_text("0.5\n")
    return prj


@pytest.fixture
def signed_fw(tmp_path: Path, ec_key: tuple[Path, Path]) -> Path:
    """A signed bundle holding the project under ``prj/``."""
    src = tmp_path / "src"
    _project(src)
    write_spec(
        src,
        """
        name: l1t/adder
        version: 1.0.0
        summary: Toy firmware
        files:
          - path: prj
            role: firmware
        """,
    )
    b = hepbundle.build(src, tmp_path / "dist" / "l1t" / "adder" / "1.0.0")
    sign(b.root, KeySigner(ec_key[0]))
    return b.root


def _policy(ec_key: tuple[Path, Path]) -> TrustPolicy:
    policy = TrustPolicy.from_flags(keys=[ec_key[1]])
    assert policy is not None
    return policy


def _compare_args(bundle: Path, tmp_path: Path) -> list[str]:
    """``fpga compare`` of the adder against "hardware" outputs that are exactly x0 + x1."""
    np.savez(tmp_path / "x.npz", x=np.ones((4, 2), dtype=np.float32))
    np.savez(tmp_path / "hw.npz", y=np.full((4, 1), 2.0))
    return [
        "fpga",
        "compare",
        str(bundle),
        "--inputs",
        str(tmp_path / "x.npz"),
        "--hardware-outputs",
        str(tmp_path / "hw.npz"),
        "--no-float",
    ]


def _poison(bundle: Path, marker: Path) -> None:
    (bundle / "prj" / "firmware" / "ap_fixed.h").write_text(_evil_header(marker))


def test_extra_header_is_never_compiled(
    signed_fw: Path, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    _poison(signed_fw, marker)
    b = hepbundle.open(signed_fw, policy=_policy(ec_key))
    emu = hls4ml_model(b)
    assert np.allclose(emu.predict(np.array([[1.0, 2.0]], dtype=np.float32)), [[3.0]])
    assert not marker.exists()
    assert not (emu.library.parent / "ap_fixed.h").exists()


def test_cli_compare_extra_header_not_compiled(
    signed_fw: Path, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    _poison(signed_fw, marker)
    args = _compare_args(signed_fw, tmp_path)
    res = CliRunner().invoke(main, [*args, "--trust-key", str(ec_key[1])])
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output
    assert not marker.exists()


def test_unsigned_bundle_is_not_compiled(signed_fw: Path, tmp_path: Path) -> None:
    """No policy: the bundle is refused, and opened for integrity only its signatures are not
    checked, so build_lib.sh is never run."""
    marker = tmp_path / "RAN"
    (signed_fw / "hepbundle.sig").unlink()
    # a build_lib.sh that would leave the marker if it ran (the manifest is not signed, so
    # whoever can write the bundle can write its manifest too)
    with pytest.raises(VerificationError, match="no trust policy configured"):
        hepbundle.open(signed_fw)  # default deny: not even opened
    b = hepbundle.open(signed_fw, verify="integrity")  # asked for by name: still not compiled
    with pytest.raises(VerificationError, match="signatures were not checked"):
        hls4ml_model(b)
    args = _compare_args(signed_fw, tmp_path)
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert "no trust policy configured" in res.output
    assert "Traceback" not in res.output
    assert not marker.exists()
    # explicitly allowed: the user's own build
    res = CliRunner().invoke(main, [*args, "--allow-unsigned"])
    assert res.exit_code == 0, res.output


def test_tampered_listed_file_is_refused_while_copying(
    signed_fw: Path, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "PWNED"
    b = hepbundle.open(signed_fw, policy=_policy(ec_key))
    defines = signed_fw / "prj" / "firmware" / "defines.h"
    defines.write_text(defines.read_text().replace('"ap_fixed.h"', '"evil.h"'))
    (signed_fw / "prj" / "firmware" / "evil.h").write_text(_evil_header(marker))
    with pytest.raises(IntegrityError, match="defines.h"):
        hls4ml_model(b)
    assert not marker.exists()


def test_poisoned_build_is_not_reused_by_pristine_bundle(
    signed_fw: Path, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    """The cache is keyed by the verified content, and re-verified before it is loaded: a
    library swapped inside the cache entry is rebuilt, not loaded."""
    marker = tmp_path / "PWNED"
    policy = _policy(ec_key)
    emu = hls4ml_model(hepbundle.open(signed_fw, policy=policy))
    cache = emu.library.parent.parent
    assert (cache.stat().st_mode & 0o777) == 0o700
    assert (cache.parent.stat().st_mode & 0o777) == 0o700
    # someone with write access to the cache replaces the library with a poisoned one
    evil_src = tmp_path / "evil.cpp"
    plain = "typedef float input_t;\ntypedef float result_t;"
    evil_src.write_text(
        _evil_header(marker) + _BRIDGE.replace('#include "firmware/defines.h"', plain)
    )
    lib = emu.library
    subprocess.run(["g++", "-shared", "-fPIC", str(evil_src), "-o", f"{lib}.new"], check=True)
    os.replace(f"{lib}.new", lib)
    # a new process (this one has the library loaded already)
    cmd = [sys.executable, "-m", "hepbundle", *_compare_args(signed_fw, tmp_path)]
    cmd += ["--trust-key", str(ec_key[1])]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "no longer matches" in proc.stderr
    assert not marker.exists()


def test_cache_entry_of_another_user_is_not_trusted(
    signed_fw: Path, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    if os.getuid() != 0:
        pytest.skip("changing a directory's owner needs root")
    emu = hls4ml_model(hepbundle.open(signed_fw, policy=_policy(ec_key)))
    entry = emu.library.parent.parent
    built = emu.library.stat().st_mtime_ns
    # an entry owned by someone else is rebuilt, never loaded
    for p in [entry, *entry.rglob("*")]:
        os.chown(p, 12345, 12345, follow_symlinks=False)
    again = hls4ml_model(hepbundle.open(signed_fw, policy=_policy(ec_key)))
    assert again.library.stat().st_uid == 0
    assert again.library.stat().st_mtime_ns != built
    # a cache root owned by someone else is refused
    os.chown(entry.parent, 12345, 12345)
    with pytest.raises(ToolError, match="belongs to uid 12345"):
        hls4ml_model(hepbundle.open(signed_fw, policy=_policy(ec_key)))


def test_shared_build_dir_parent_refused(
    signed_fw: Path, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    b = hepbundle.open(signed_fw, policy=_policy(ec_key))
    with pytest.raises(ToolError, match="writable by other users"):
        hls4ml_model(b, build_dir=shared / "build")


def test_local_project_without_file_list(tmp_path: Path) -> None:
    """A project directory of your own: every project file is compiled, as before."""
    prj = _project(tmp_path)
    emu = load_emulation(prj, build_dir=tmp_path / "emu")
    assert np.allclose(emu.predict(np.array([[1.0, 1.5]])), [[2.5]])


def test_cli_compare_empty_inputs_is_one_clear_line(
    signed_fw: Path, ec_key: tuple[Path, Path], tmp_path: Path
) -> None:
    args = _compare_args(signed_fw, tmp_path)
    (tmp_path / "x.npz").write_bytes(b"")
    res = CliRunner().invoke(main, [*args, "--trust-key", str(ec_key[1])])
    assert res.exit_code == 2, res.output
    assert "the file is empty" in res.output and "Aborted" not in res.output
