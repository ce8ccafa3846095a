"""The bundle path rules (bundle-spec/README.md § Paths), with property-based round trips."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hepbundle.errors import PathError
from hepbundle.manifest import FileEntry, Manifest
from hepbundle.paths import Resolver, check_collisions, check_relpath, is_reserved


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("", "empty"),
        ("../x", r"'\.\.'"),
        ("a/../b", r"'\.\.'"),
        ("a//b", "empty"),
        ("./a", r"'\.'"),
        ("/etc/passwd", "absolute"),
        ("C:/x", "absolute"),
        ("a\\b", "backslash"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("e\u0301.onnx", "NFC"),
        ("a/", "empty"),
        ("x" * 256, "longer"),
        ("caf\udce9.root", r"'caf\\xe9.root' is not valid UTF-8"),  # a Latin-1 file name
    ],
)
def test_bad_paths_rejected(path: str, rule: str) -> None:
    with pytest.raises(PathError, match=rule):
        check_relpath(path)


def test_collisions_after_case_folding_and_nfc() -> None:
    with pytest.raises(PathError, match="collide"):
        check_collisions(["model/Model.onnx", "model/model.onnx"])
    with pytest.raises(PathError, match="collide"):
        check_collisions(["STRASSE", "straße"])
    check_collisions(["a/b", "a/c"])


def test_reserved_names() -> None:
    assert is_reserved("hepbundle.json") and is_reserved("hepbundle.sig")
    assert is_reserved("hepbundle.release.sig") and is_reserved(".cvmfscatalog")
    assert not is_reserved("model/hepbundle.sig") and not is_reserved("hepbundle.yaml")


segment = (
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/\\"),
        min_size=1,
        max_size=20,
    )
    .map(lambda s: unicodedata.normalize("NFC", s))
    .filter(lambda s: s not in (".", "..") and len(s.encode()) <= 255)
)


@given(st.lists(segment, min_size=1, max_size=5))
def test_valid_paths_accepted(parts: list[str]) -> None:
    path = "/".join(parts)
    if len(path) > 1 and path[1] == ":":
        return
    assert check_relpath(path) == path


@given(
    st.lists(
        st.tuples(segment, st.integers(0, 2**40), st.binary(min_size=32, max_size=32)),
        min_size=1,
        max_size=8,
        unique_by=lambda t: t[0].casefold(),
    )
)
# no deadline: the first example also compiles the manifest schema, which on a loaded shared
# machine took >200 ms (speed is measured by tools/bench, never by a unit test's clock)
@settings(deadline=None)
def test_manifest_round_trip(entries: list[tuple[str, int, bytes]]) -> None:
    entries = [
        e for e in entries if not (len(e[0]) > 1 and e[0][1] == ":") and not is_reserved(e[0])
    ]
    try:
        check_collisions(e[0] for e in entries)
    except PathError:
        return
    m = Manifest(
        name="atlas/x",
        version="1.0.0",
        created="2026-01-01T00:00:00Z",
        files=tuple(FileEntry(p, size, h.hex(), "model") for p, size, h in entries),
        meta={"summary": "ünïcode"},
    )
    back = Manifest.from_bytes(m.to_bytes())
    assert back.to_bytes() == m.to_bytes()
    assert {f.path for f in back.files} == {p for p, _, _ in entries}


def test_check_relpath_remembers_only_what_passed() -> None:
    """Passing paths are remembered (an import checks each many times); a refused one is
    refused every time, and the memo is bounded."""
    assert check_relpath("a/b.onnx") == check_relpath("a/b.onnx") == "a/b.onnx"
    for _ in range(2):
        with pytest.raises(PathError, match="segment"):
            check_relpath("a/../b")
    for i in range(5000):
        check_relpath(f"d/f{i}")
    assert check_relpath.cache_info().currsize <= 4096


def test_resolver_looks_at_each_directory_once_and_refuses_links_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory of a bundle costs one ``lstat`` per resolver, whatever number of files it
    holds (an import checks 5,000 files in 2,000 directories); a directory reached through a
    symlink is inside only if the link's target is, and everything below such a link follows
    it; a path of 1,500 segments (within the 4 KiB limit) resolves without recursion."""
    (tmp_path / "in" / "x").mkdir(parents=True)
    (tmp_path / "alias").symlink_to("in")
    (tmp_path / "out").symlink_to(tmp_path.parent)
    looked: list[str] = []
    real = os.lstat
    monkeypatch.setattr(os, "lstat", lambda p, *a, **kw: looked.append(str(p)) or real(p, *a, **kw))
    r = Resolver(tmp_path)
    for i in range(50):
        assert r(f"in/x/f{i}") == tmp_path / f"in/x/f{i}"
    assert sorted(looked) == [str(tmp_path / "in"), str(tmp_path / "in/x")]
    assert r("alias/x/f") == tmp_path / "alias/x/f"
    for rel in ("out/f", "out/in/f"):
        with pytest.raises(PathError, match="resolves outside the bundle"):
            r(rel)
    monkeypatch.undo()
    deep = "/".join(["d"] * 1500) + "/f"
    assert Resolver(tmp_path)(deep) == tmp_path / deep
