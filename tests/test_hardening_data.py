"""root2npz on corrupt input and hostile branch names: one clear error, members that cannot
escape an unzip directory."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hepbundle.cli import main
from hepbundle.data._npz import NpzStreamWriter, member_name


def _corrupt_root(path: Path, codec: str) -> Path:
    uproot = pytest.importorskip("uproot")
    comp = {"zlib": uproot.ZLIB(4), "lzma": uproot.LZMA(4)}[codec]
    with uproot.recreate(path, compression=comp) as f:
        f["t"] = {"x": np.arange(20000, dtype=np.float64), "y": np.sin(np.arange(20000.0))}
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):  # inside the first baskets
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("codec", ["zlib", "lzma"])
def test_corrupt_basket_is_one_clear_error(tmp_path: Path, codec: str) -> None:
    src = _corrupt_root(tmp_path / f"c_{codec}.root", codec)
    out = tmp_path / "out.npz"
    res = CliRunner().invoke(
        main, ["data", "root2npz", str(src), "--tree", "t", "-b", "x,y", "-o", str(out)]
    )
    assert res.exit_code == 2, res.output
    assert "is not a readable ROOT file" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "member"),
    [("../../evil", "_.._.._evil"), ("a/b", "a_b"), (".hidden", "_.hidden"), ("pt", "pt")],
)
def test_member_names_cannot_escape(tmp_path: Path, name: str, member: str) -> None:
    expected = member
    assert member_name(name) == expected
    out = tmp_path / "o.npz"
    with NpzStreamWriter(out) as w:
        w.append(name, np.arange(3.0))
        w.finish()
    names = zipfile.ZipFile(out).namelist()
    assert names == [f"{expected}.npy"]
    assert all("/" not in n and not n.startswith(".") for n in names)


def test_member_name_collision_refused(tmp_path: Path) -> None:
    from hepbundle.errors import DataError

    with NpzStreamWriter(tmp_path / "o.npz") as w:
        w.append("a/b", np.arange(3.0))
        with pytest.raises(DataError, match="both be stored as a_b.npy"):
            w.append("a_b", np.arange(3.0))
