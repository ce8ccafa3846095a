"""Hostile inputs give one clear error line and a non-zero exit, never a hang, a traceback or
unbounded memory: special files where a file is expected, YAML bombs and deep nesting, NUL
bytes, deeply nested JSON, bad serials, broken SQLite indexes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import hepbundle
from hepbundle.cli import main
from hepbundle.errors import FormatError, HepbundleError, SpecError
from hepbundle.manifest import Manifest

from .conftest import write_spec


@contextmanager
def no_hang(seconds: int = 30) -> Iterator[None]:
    """Fail (instead of blocking the suite forever) when the body takes longer than ``seconds``."""

    def boom(signum: int, frame: object) -> None:
        raise TimeoutError(f"hung for {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _cli(*args: str) -> Result:
    with no_hang():
        return CliRunner().invoke(main, list(args))


def _clean_failure(res: Result, code: int | None = None, *, words: str = "") -> None:
    assert res.exit_code != 0, res.output
    if code is not None:
        assert res.exit_code == code, res.output
    assert "Traceback" not in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    if words:
        assert words in res.output, res.output
    assert len(res.output) < 5000


# --- special files ----------------------------------------------------------------------------


@pytest.fixture
def with_empty(tmp_path: Path) -> hepbundle.Bundle:
    """A bundle listing an empty file (what a /dev/null node would imitate)."""
    src = tmp_path / "src"
    (src / "m").mkdir(parents=True)
    (src / "m" / "model.onnx").write_bytes(b"onnx" * 100)
    (src / "m" / "empty.txt").write_bytes(b"")
    write_spec(
        src,
        """
        name: atlas/special
        version: 1.0.0
        summary: x
        files:
          - path: m
            role: model
        """,
    )
    return hepbundle.build(src, tmp_path / "out" / "atlas" / "special" / "1.0.0")


def _replace(p: Path, kind: str) -> None:
    p.unlink()
    if kind == "fifo":
        os.mkfifo(p)
    else:
        if os.getuid() != 0:
            pytest.skip("creating device nodes needs root")
        minor = {"zero": 5, "null": 3}[kind]
        try:
            os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, minor))
        except PermissionError:
            pytest.skip("mknod not permitted here")


@pytest.mark.parametrize("kind", ["fifo", "zero", "null"])
def test_special_file_in_place_of_listed_file(with_empty: hepbundle.Bundle, kind: str) -> None:
    _replace(with_empty.root / "m" / "empty.txt", kind)
    # an unsigned test bundle: integrity checks, asked for by name
    res = _cli("verify", str(with_empty.root), "--integrity-only")
    _clean_failure(res, 1, words="m/empty.txt")
    assert "regular files only" in res.output
    res = _cli("path", str(with_empty.root), "m/empty.txt", "--integrity-only")
    _clean_failure(res, 1, words="regular files only")
    with no_hang(), pytest.raises(hepbundle.IntegrityError, match="regular files only"):
        hepbundle.open(with_empty.root, verify="integrity").path("m/empty.txt")


@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_special_file_as_manifest(with_empty: hepbundle.Bundle, kind: str) -> None:
    _replace(with_empty.root / "hepbundle.json", kind)
    _clean_failure(_cli("verify", str(with_empty.root)), words="not a regular file")


def test_fifo_in_packed_directory_fails_the_build(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "m").mkdir(parents=True)
    (src / "m" / "model.onnx").write_bytes(b"x" * 10)
    os.mkfifo(src / "m" / "pipe")
    write_spec(
        src,
        """
        name: atlas/fifo
        version: 1.0.0
        summary: x
        files:
          - path: m
            role: model
        """,
    )
    out = tmp_path / "out"
    res = _cli("build", str(src), "-o", str(out))
    _clean_failure(res, words="FIFO")
    assert not out.exists()
    _clean_failure(_cli("build", str(src), "-o", str(out), "--check"), words="FIFO")


def test_fifo_as_spec_policy_and_input(tmp_path: Path, with_empty: hepbundle.Bundle) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    _clean_failure(_cli("verify", str(with_empty.root), "--policy", str(fifo)), words="FIFO")
    d = tmp_path / "specdir"
    d.mkdir()
    os.mkfifo(d / "hepbundle.yaml")
    _clean_failure(_cli("build", str(d), "-o", str(tmp_path / "o")), words="FIFO")


# --- YAML -------------------------------------------------------------------------------------

_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(9)
)


def _spec(tmp_path: Path, extra: str) -> Path:
    d = tmp_path / "s"
    d.mkdir(exist_ok=True)
    (d / "m.onnx").write_bytes(b"m")
    (d / "hepbundle.yaml").write_text(
        "name: atlas/bomb\nversion: 1.0.0\nsummary: x\nfiles:\n  - path: m.onnx\n    role: model\n"
        + extra
    )
    return d


def _policy_file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_BOMB.replace("\n", "\n  ").join(["hyperparameters:\n  ", "\n"]), "aliases are expanded"),
        ("hyperparameters: " + "[" * 20000 + "]" * 20000 + "\n", "nested deeper"),
        ("summary2: a\x00b\n", "NUL"),
    ],
    ids=["alias-bomb", "deep", "nul"],
)
def test_hostile_spec(tmp_path: Path, body: str, words: str) -> None:
    d = _spec(tmp_path, body)
    res = _cli("build", str(d), "-o", str(tmp_path / "o"), "--check")
    _clean_failure(res, words=words)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("version: 1\nrules: &r\n  - namespace: '*'\n    signers: []\nextra: *r\n", "not allowed"),
        (_BOMB, "not allowed"),
        ("version: 1\nrules: " + "[" * 20000 + "]" * 20000 + "\n", "nested deeper"),
        ("version: 1\x00\n", "NUL"),
        ("version: 1\nrules: [\n", "invalid YAML"),
        ("\xff\xfe", "UTF-8"),
    ],
    ids=["alias", "bomb", "deep", "nul", "truncated", "not-utf8"],
)
def test_hostile_policy(
    tmp_path: Path, with_empty: hepbundle.Bundle, text: str, words: str
) -> None:
    p = tmp_path / "policy.yaml"
    p.write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff\xfe" else b"\xff\xfe")
    res = _cli("verify", str(with_empty.root), "--policy", str(p))
    _clean_failure(res, words=words)


def test_import_map_refuses_aliases(tmp_path: Path) -> None:
    from hepbundle.importers._mapping import load_map

    m = tmp_path / "map.yaml"
    m.write_text(_BOMB)
    with no_hang(), pytest.raises(SpecError, match="not allowed"):
        load_map(m)


def test_spec_with_a_useful_alias_still_loads(tmp_path: Path) -> None:
    d = _spec(tmp_path, "hyperparameters: &h {lr: 0.1}\nmetrics: {auc: 0.9}\n")
    from hepbundle.spec import load_spec

    assert load_spec(d).hyperparameters == {"lr": 0.1}


def test_oversized_yaml(tmp_path: Path) -> None:
    d = _spec(tmp_path, "description: " + "x" * (5 * 1024 * 1024) + "\n")
    _clean_failure(_cli("build", str(d), "--check"), words="over the limit")


# --- JSON and SQLite --------------------------------------------------------------------------

_DEEP = "[" * 100_000 + "]" * 100_000


def test_deep_manifest(with_empty: hepbundle.Bundle) -> None:
    doc = json.loads((with_empty.root / "hepbundle.json").read_bytes())
    text = json.dumps(doc)[:-1] + ', "extra": ' + _DEEP + "}"
    with pytest.raises(FormatError, match="nested deeper"):
        Manifest.from_bytes(text.encode())
    (with_empty.root / "hepbundle.json").write_text(text)
    _clean_failure(_cli("verify", str(with_empty.root)), words="nested deeper")
    # just under the interpreter's recursion limit: still refused (a later writer would fail)
    text = json.dumps(doc)[:-1] + ', "extra": ' + "[" * 900 + "]" * 900 + "}"
    with pytest.raises(FormatError, match="nested deeper"):
        Manifest.from_bytes(text.encode())


@pytest.fixture
def repo(with_empty: hepbundle.Bundle, tmp_path: Path) -> Path:
    from hepbundle.repository import publish

    r = tmp_path / "repo"
    publish(with_empty.root, r, allow_unsigned=True)
    return r


def test_deep_catalogue_and_repository_json(repo: Path) -> None:
    from hepbundle.repository.layout import catalog_file

    cat = catalog_file(repo, "atlas/special")
    good = cat.read_bytes()
    cat.write_text(_DEEP)
    _clean_failure(_cli("path", "atlas/special@1.0.0", "--repo", str(repo)), words="nested deeper")
    _clean_failure(_cli("catalog", "rebuild", "--repo", str(repo)), words="nested deeper")
    cat.write_bytes(good)
    rj = repo / "catalog" / "repository.json"
    rj.write_text(_DEEP)
    res = _cli("alias", "atlas/special@1.0.0", "prod", "--repo", str(repo))
    _clean_failure(res, words="nested deeper")


def test_serial_not_a_number(repo: Path) -> None:
    from hepbundle.repository.layout import NAMESPACE_FILE, catalog_dir

    rj = catalog_dir(repo, "atlas") / NAMESPACE_FILE  # format 2: the serial is per namespace
    doc = json.loads(rj.read_bytes())
    assert "serial" in doc
    doc["serial"] = "abc"
    rj.write_text(json.dumps(doc))
    res = _cli("alias", "atlas/special@1.0.0", "prod", "--repo", str(repo))
    _clean_failure(res, words="serial")


@pytest.mark.parametrize("damage", ["garbage", "no-tables", "empty"])
def test_broken_index(repo: Path, damage: str) -> None:
    from hepbundle.repository.layout import index_file

    idx = index_file(repo, "atlas")
    if damage == "garbage":
        idx.write_bytes(b"this is not a database" * 100)
    elif damage == "empty":
        idx.write_bytes(b"")
    else:
        idx.unlink()
        sqlite3.connect(idx).close()
    for args in (["find", "special"], ["path", "--legacy", "atlas:x/y"]):
        res = _cli(*args, "--repo", str(repo))
        _clean_failure(res, words="catalog rebuild")


# --- sizes, counts, message lengths -----------------------------------------------------------


def _manifest_doc(n: int) -> dict[str, object]:
    files = [
        {"path": f"d/f{i:07d}.bin", "size": 1, "sha256": "0" * 64, "role": "data"} for i in range(n)
    ]
    return {
        "mediaType": "application/vnd.hepbundle.manifest.v1+json",
        "name": "atlas/big",
        "version": "1.0.0",
        "created": "2024-01-01T00:00:00Z",
        "hashing": {"algorithm": "sha256", "ignore": [], "symlinks": "refuse"},
        "files": files,
    }


def test_huge_manifest_refused_before_parsing(with_empty: hepbundle.Bundle) -> None:
    """1,000,000 entries (133 MB): refused on its size, before any JSON is parsed."""
    data = json.dumps(_manifest_doc(1_000_000)).encode()
    (with_empty.root / "hepbundle.json").write_bytes(data)
    res = _cli("verify", str(with_empty.root))
    _clean_failure(res, words="over the limit")


def test_manifest_entry_count_limit() -> None:
    with pytest.raises(FormatError, match="100,001 file entries, over the limit"):
        Manifest.from_bytes(json.dumps(_manifest_doc(100_001)).encode())


def test_messages_are_capped() -> None:
    e = HepbundleError("; ".join(f"extra f{i}" for i in range(1_000_000)), hint="h" * 10_000)
    assert len(str(e)) < 2600
    assert "more characters" in e.message


# --- fpga compare inputs ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["empty", "npy", "strings", "fifo", "garbage"])
def test_compare_inputs_are_checked(tmp_path: Path, kind: str) -> None:
    import numpy as np

    from hepbundle.errors import ToolError
    from hepbundle.fpga.compare import load_npz

    p = tmp_path / "in.npz"
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "npy":
        p = tmp_path / "in.npy"
        np.save(p, np.ones((3, 2)))
    elif kind == "strings":
        np.savez(p, x=np.array([["a", "b"]]))
    elif kind == "fifo":
        os.mkfifo(p)
    else:
        p.write_bytes(b"PK\x03\x04 not a zip")
    if kind == "npy":
        with no_hang():
            (a,) = load_npz(p, ["x"], what="inputs")
        assert a.shape == (3, 2)
        return
    words = {"empty": "empty", "strings": "not numbers", "fifo": "FIFO", "garbage": "cannot read"}
    with no_hang(), pytest.raises(ToolError, match=words[kind]):
        load_npz(p, ["x"], what="inputs")


def test_schema_memo_never_passes_a_changed_manifest(with_empty: hepbundle.Bundle) -> None:
    """A manifest read twice is schema-checked once (import speed); any change outside the
    file list is a different manifest and is checked again."""
    data = (with_empty.root / "hepbundle.json").read_bytes()
    assert Manifest.from_bytes(data) == Manifest.from_bytes(data)  # the second from the memo
    doc = json.loads(data)
    for change in ({"created": 5}, {"created": "yesterday"}, {"summary": ["a list"]}):
        with pytest.raises(FormatError, match="created|summary"):
            Manifest.from_bytes(json.dumps({**doc, **change}).encode())
    assert Manifest.from_bytes(data).name == with_empty.name
