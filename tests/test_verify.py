"""Integrity verification: every tamper kind is found, named, and reported all at once."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import hepbundle
from hepbundle.errors import FormatError, IntegrityError
from hepbundle.policy import TrustPolicy


def _flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


TAMPERS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "byte-flip": (lambda r: _flip(r / "model/model.onnx"), "modified", "model/model.onnx"),
    "truncated": (
        lambda r: (r / "model/weights.bin").write_bytes(b"\x01"),
        "modified",
        "model/weights.bin",
    ),
    "added": (lambda r: (r / "model/backdoor.py").write_text("x"), "extra", "model/backdoor.py"),
    "removed": (lambda r: (r / "MODEL_CARD.md").unlink(), "missing", "MODEL_CARD.md"),
    "renamed": (
        lambda r: (r / "model/model.onnx").rename(r / "model/model2.onnx"),
        "missing",
        "model/model.onnx",
    ),
    "symlink-escape": (
        lambda r: os.symlink("/etc/passwd", r / "model/passwd"),
        "path",
        "model/passwd",
    ),
    "replaced-by-symlink": (
        lambda r: (
            (r / "model/weights.bin").unlink(),
            os.symlink("/etc/hostname", r / "model/weights.bin"),
        ),
        "path",
        "model/weights.bin",
    ),
}


def _trusted(key: tuple[Path, Path]) -> TrustPolicy:
    return TrustPolicy.from_flags(keys=[key[1]]) or TrustPolicy(())


@pytest.mark.parametrize("kind", sorted(TAMPERS))
def test_tamper_detected(signed: hepbundle.Bundle, ec_key: tuple[Path, Path], kind: str) -> None:
    tamper, problem_kind, path = TAMPERS[kind]
    tamper(signed.root)
    report = hepbundle.open(signed.root, verify="none").verify()
    assert not report.ok
    assert path in [p.path for p in report.problems if p.kind == problem_kind], report.problems
    with pytest.raises(IntegrityError, match=path.replace(".", r"\.")):
        report.raise_for_problems()
    with pytest.raises(IntegrityError):
        hepbundle.open(signed.root, verify="full", policy=_trusted(ec_key))


def test_all_problems_reported_together(built: hepbundle.Bundle) -> None:
    _flip(built.root / "model/model.onnx")
    (built.root / "MODEL_CARD.md").unlink()
    (built.root / "extra.txt").write_text("x")
    r = built.verify()
    assert (r.of_kind("modified"), r.of_kind("missing"), r.of_kind("extra")) == (
        ["model/model.onnx"],
        ["MODEL_CARD.md"],
        ["extra.txt"],
    )


def test_edited_manifest_is_a_format_or_integrity_failure(built: hepbundle.Bundle) -> None:
    m = json.loads((built.root / "hepbundle.json").read_text())
    m["files"][0][m["hashing"]["algorithm"]] = "0" * 64
    (built.root / "hepbundle.json").write_text(json.dumps(m))
    assert not hepbundle.open(built.root, verify="none").verify().ok
    m["mediaType"] = "application/vnd.hepbundle.manifest.v9+json"
    (built.root / "hepbundle.json").write_text(json.dumps(m))
    with pytest.raises(FormatError, match="unknown manifest media type"):
        hepbundle.open(built.root)


def test_manifest_listing_escaping_path_rejected(built: hepbundle.Bundle) -> None:
    m = json.loads((built.root / "hepbundle.json").read_text())
    m["files"][0]["path"] = "../../etc/passwd"
    (built.root / "hepbundle.json").write_text(json.dumps(m))
    with pytest.raises(hepbundle.PathError, match=r"'\.\.' segment"):
        hepbundle.open(built.root)


def test_lazy_path_verifies_on_first_use(
    signed: hepbundle.Bundle, ec_key: tuple[Path, Path]
) -> None:
    b = hepbundle.open(signed.root, policy=_trusted(ec_key))  # lazy
    _flip(signed.root / "model/model.onnx")
    with pytest.raises(IntegrityError, match="model/model.onnx"):
        b.path("model/model.onnx")
    assert b.path("model/weights.bin").read_bytes()[:2] == b"\x01\x02"


def test_integrity_only_is_asked_for_by_name_and_logged(
    built: hepbundle.Bundle, caplog: pytest.LogCaptureFixture
) -> None:
    """An unsigned bundle with no trust configured is refused; verify='integrity' opens it with
    digest checks only, says so in the log, and never marks it verified."""
    with pytest.raises(hepbundle.PolicyError, match="no trust policy configured, refusing"):
        hepbundle.open(built.root)
    with caplog.at_level("WARNING", logger="hepbundle"):
        b = hepbundle.open(built.root, verify="integrity")
    assert "INTEGRITY CHECKS ONLY" in caplog.text and b.signature is None
    _flip(built.root / "model/model.onnx")
    with pytest.raises(IntegrityError, match="model/model.onnx"):
        b.path("model/model.onnx")


def test_verify_selected_files_only(built: hepbundle.Bundle) -> None:
    _flip(built.root / "model/model.onnx")
    assert built.verify(["model/weights.bin"]).ok
    r = built.verify(["model/model.onnx", "not/listed"])
    assert r.of_kind("modified") == ["model/model.onnx"] and r.of_kind("extra") == ["not/listed"]


def test_unknown_file_suggests_closest(built: hepbundle.Bundle) -> None:
    with pytest.raises(hepbundle.HepbundleError, match="did you mean 'model/model.onnx'"):
        built.path("model/model.onx")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.update(blake3="ABC"), r"files\[0\]\.blake3"),
        (lambda f: f.update(sha256=f.pop("blake3")), r"files\[0\].*a sha256 digest in a blake3"),
        (lambda f: f.update(size=-1), r"files\[0\]\.size"),
        (lambda f: f.update(size=True), r"files\[0\]\.size"),
        (lambda f: f.update(role="weird"), r"files\[0\]\.role"),
        (lambda f: f.pop("path"), r"files\[0\]"),
        (lambda f: f.update(extra=1), r"files\[0\]"),
    ],
)
def test_malformed_file_entries_rejected(
    built: hepbundle.Bundle, mutate: Callable[[dict[str, object]], object], message: str
) -> None:
    """The hand-compiled file-entry check agrees with the normative schema on each rule."""
    import jsonschema

    m = json.loads((built.root / "hepbundle.json").read_text())
    mutate(m["files"][0])
    with pytest.raises(jsonschema.ValidationError):
        _schema_validate(m)
    (built.root / "hepbundle.json").write_text(json.dumps(m))
    with pytest.raises(FormatError, match=message):
        hepbundle.open(built.root)


def _schema_validate(m: dict[str, object]) -> None:
    import jsonschema

    from hepbundle.spec import _registry, schema

    jsonschema.Draft202012Validator(schema("manifest.schema.json"), registry=_registry()).validate(
        m
    )


def test_progress_reports_every_byte_in_blocks(tmp_path: Path) -> None:
    """map_files reports progress per 1 MiB block (a single large file moves the bar too)."""
    from hepbundle.digest import hash_file, hash_files

    files = [tmp_path / "big.bin", tmp_path / "small.bin"]
    files[0].write_bytes(os.urandom(3 * (1 << 20) + 17))
    files[1].write_bytes(b"x" * 100)
    seen: list[int] = []
    got = hash_files(files, progress=seen.append, workers=2)
    assert sum(seen) == sum(f.stat().st_size for f in files) and len(seen) >= 4
    assert [d.sha256 for d in got] == [hash_file(f).sha256 for f in files]
