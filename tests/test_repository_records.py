"""Evaluation records appended to published versions: append-only, optionally signed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hepbundle.errors import NotFoundError, RepositoryError, SignatureError, SpecError
from hepbundle.policy import TrustPolicy
from hepbundle.repository import append_record, list_records, publish, verify_record
from hepbundle.repository.layout import catalog_file, records_root

from .needs import missing
from .repo_fixtures import make_bundle


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    publish(make_bundle(tmp_path, version="1.0.0").root, root, allow_unsigned=True, alias="prod")
    return root


def test_append_and_list_in_order(repo: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(100)
    first = append_record(
        repo, "atlas/tauid", "1.0.0", "fpga-compare", {"max_abs_diff": 0.004}, {"plot.png": png}
    )
    second = append_record(repo, "atlas/tauid", "1.0.0", "eval", {"auc": 0.93}, {})
    recs = list_records(repo, "atlas/tauid", "1.0.0")
    assert [r.kind for r in recs] == ["fpga-compare", "eval"]
    assert recs[0] == first and recs[1] == second
    assert first.attachment("plot.png").read_bytes() == png
    doc = json.loads((first.path / "record.json").read_bytes())
    bundle_digest = json.loads(catalog_file(repo, "atlas/tauid").read_bytes())["versions"]["1.0.0"][
        "manifestSha256"
    ]
    assert doc["manifestSha256"] == bundle_digest == first.manifest_digest
    assert doc["payload"] == {"max_abs_diff": 0.004} and not first.signed
    assert first.path.parent == records_root(repo, "atlas/tauid") / "1.0.0"
    assert [r.kind for r in list_records(repo, "atlas/tauid", "1.0.0", kind="eval")] == ["eval"]
    assert list_records(repo, "atlas/tauid", "9.9.9") == []


def test_many_records_in_one_second_never_collide(repo: Path) -> None:
    refs = [append_record(repo, "atlas/tauid", "1.0.0", "eval", {"i": i}, {}) for i in range(20)]
    assert len({r.path for r in refs}) == 20
    assert [r.payload["i"] for r in list_records(repo, "atlas/tauid", "1.0.0")] == list(range(20))


def test_signed_record_verifies_and_detects_tampering(
    repo: Path, ec_key: tuple[Path, Path]
) -> None:
    from hepbundle.signing import KeySigner

    rec = append_record(
        repo, "atlas/tauid", "1.0.0", "eval", {"auc": 0.9}, {"a.txt": b"x"}, KeySigner(ec_key[0])
    )
    assert rec.signed
    policy = TrustPolicy.from_flags(keys=[ec_key[1]])
    assert policy is not None
    assert verify_record(rec, policy)
    (rec.path / "a.txt").write_bytes(b"y")
    with pytest.raises(SignatureError):
        verify_record(rec, policy)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"version": "2.0.0"}, NotFoundError, "no version '2.0.0'"),
        ({"name": "atlas/nope"}, NotFoundError, "no bundle named"),
        ({"version": "prod"}, RepositoryError, "not an alias"),
        ({"kind": "Bad Kind"}, SpecError, "lowercase word"),
        ({"attachments": {"../x": b""}}, Exception, "'..'"),
        ({"attachments": {"record.json": b""}}, SpecError, "reserved"),
        ({"payload": {"x": object()}}, SpecError, "JSON"),
    ],
)
def test_bad_records_refused_and_nothing_written(
    repo: Path, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    args: dict[str, object] = {
        "name": "atlas/tauid",
        "version": "1.0.0",
        "kind": "eval",
        "payload": {},
        "attachments": {},
    }
    args.update(kwargs)
    with pytest.raises(error, match=message):
        append_record(repo, **args)  # type: ignore[arg-type]
    records = records_root(repo, "atlas/tauid")
    assert not records.exists() or not any(records.rglob("*.json"))


def test_read_only_repository_gives_a_clear_error(repo: Path) -> None:
    """On a read-only mount (a CVMFS client), appending a record fails with one clear message.
    The repository is bind-mounted read-only in a private mount namespace (needs unshare)."""
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None:
        missing("unshare is not available")
    code = (
        "import sys, hepbundle\n"
        "from hepbundle.repository.records import record_for_bundle\n"
        "b = hepbundle.open(sys.argv[1], verify='none')\n"
        "try:\n"
        "    record_for_bundle(b, 'evaluation', {'auc': 0.9})\n"
        "except hepbundle.RepositoryError as e:\n"
        "    print(e)\n"
    )
    script = (
        f'mount --bind "{repo}" "{repo}" && mount -o remount,bind,ro "{repo}" && '
        f'"{sys.executable}" -c "$0" "{repo}/bundles/atlas/tauid/1.0.0"'
    )
    p = subprocess.run(["unshare", "-m", "sh", "-c", script, code], capture_output=True, text=True)
    if p.returncode != 0 and "Operation not permitted" in p.stderr:
        pytest.skip("no permission for a private mount namespace here")
    assert p.returncode == 0, p.stderr
    assert "catalog is read-only" in p.stdout
    assert list_records(repo, "atlas/tauid", "1.0.0") == []
