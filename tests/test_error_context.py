"""Errors carry what they are about: an IntegrityError its IntegrityReport, a missing file the
bundle's ref, a path that is not a bundle that path; one class per meaning."""

from __future__ import annotations

from pathlib import Path

import pytest

import hepbundle
from hepbundle.errors import IntegrityError, NotABundleError, NotInBundleError, UsageError


def test_integrity_error_carries_the_report(built: hepbundle.Bundle) -> None:
    (built.root / "model" / "weights.bin").write_bytes(b"evil")
    b = hepbundle.open(built.root, verify="integrity")
    with pytest.raises(IntegrityError) as e:
        b.verify().raise_for_problems(b.ref)
    assert isinstance(e.value.report, hepbundle.IntegrityReport)
    assert [p.path for p in e.value.report.problems] == ["model/weights.bin"]
    assert e.value.ref == b.ref


def test_missing_file_names_the_bundle(built: hepbundle.Bundle) -> None:
    with pytest.raises(NotInBundleError, match="did you mean") as e:
        hepbundle.open(built.root, verify="integrity").path("model/model.onx")
    assert e.value.ref == built.ref


@pytest.mark.parametrize("what", ["missing", "file", "empty dir"])
def test_not_a_bundle_is_one_class_whoever_reads(tmp_path: Path, what: str) -> None:
    target = tmp_path / "x"
    if what == "file":
        target.write_text("hi")
    elif what == "empty dir":
        target.mkdir()
    with pytest.raises(NotABundleError) as e:
        hepbundle.open(target)
    assert e.value.path == target.absolute()
    with pytest.raises(NotABundleError):
        hepbundle.resolver.read_ref(str(target))


def test_unknown_verify_mode_is_a_usage_error(built: hepbundle.Bundle) -> None:
    with pytest.raises(UsageError):
        hepbundle.open(built.root, verify="sometimes")  # type: ignore[arg-type]
