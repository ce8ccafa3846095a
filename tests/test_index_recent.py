"""The recent shard of the search index: a publish rewrites a small file, not the namespace's
index; readers merge both; a fold puts it back into the index at its bound; a rebuilt index or
one written behind its back never has a stale recent shard applied (hepbundle.repository.index).
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from hepbundle.repository import FindQuery, find, publish, publish_many, set_alias, yank
from hepbundle.repository import index as index_mod
from hepbundle.repository.index import dump_index, rebuild_index, recent_file
from hepbundle.repository.layout import index_file

from .repo_fixtures import check_invariants, make_bundle

BASE = 40  # versions of atlas/tauid before the tests' publishes: 2 rows × 8 < 40


def _state(path: Path) -> tuple[int, int, int, str]:
    st = path.stat()
    return st.st_ino, st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def _rows(path: Path, table: str = "versions") -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def _recent_rows(repo: Path) -> int:
    path = recent_file(index_file(repo, "atlas"))
    if not path.is_file():
        return 0
    tables = ("versions", "aliases", "legacy_paths")
    return sum(_rows(path, p + t) for t in tables for p in ("", "gone_"))


def _heads(repo: Path) -> list[str]:
    return [f"{h.name}@{h.version}" for h in find(repo, FindQuery())]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose atlas shard holds BASE versions of atlas/tauid (prod on the last)."""
    root = tmp_path / "repo"
    bundles = [make_bundle(tmp_path, version=f"1.{i}.0").root for i in range(BASE)]
    publish_many(bundles, root, allow_unsigned=True)  # builds the shard from the catalogue
    set_alias(f"atlas/tauid@1.{BASE - 1}.0", "prod", root)
    assert _recent_rows(root) == 1  # the alias row
    rebuild_index(root)
    assert _rows(index_file(root, "atlas")) == BASE and _recent_rows(root) == 0
    return root


def test_a_publish_rewrites_the_recent_shard_only(tmp_path: Path, repo: Path) -> None:
    index = index_file(repo, "atlas")
    before = _state(index)
    publish(make_bundle(tmp_path, version="2.0.0").root, repo, allow_unsigned=True, alias="prod")
    assert _state(index) == before  # not one byte, not even the mtime, of the index
    recent = recent_file(index)
    # the new version, the old head's flag, the moved alias: what differs from the index
    assert _rows(recent) == 2 and _rows(recent, "aliases") == 1
    assert recent.stat().st_size < 64 << 10
    assert _heads(repo) == ["atlas/tauid@2.0.0"]
    hits = find(repo, FindQuery(all_versions=True, limit=1000))
    assert len(hits) == BASE + 1 and len({(h.name, h.version) for h in hits}) == BASE + 1
    assert next(h for h in hits if h.version == "2.0.0").aliases == ("prod",)
    assert next(h for h in hits if h.version == f"1.{BASE - 1}.0").aliases == ()
    check_invariants(repo)  # the merged rows equal an index rebuilt from the per-name files


def test_yank_and_alias_go_through_the_recent_shard(tmp_path: Path, repo: Path) -> None:
    index = index_file(repo, "atlas")
    before = _state(index)
    publish(make_bundle(tmp_path, version="2.0.0").root, repo, allow_unsigned=True)
    set_alias("atlas/tauid@1.0.0", "validated", repo)
    yank("atlas/tauid@2.0.0", "bad calibration", repo)
    assert _state(index) == before
    assert _heads(repo) == [f"atlas/tauid@1.{BASE - 1}.0"]  # the head went back
    assert find(repo, FindQuery(text="tau", include_yanked=True, all_versions=True, limit=5))
    yanked = [h for h in find(repo, FindQuery(all_versions=True, include_yanked=True, limit=99))]
    assert [h.version for h in yanked if h.yanked] == ["2.0.0"]
    check_invariants(repo)


def test_the_recent_shard_is_folded_at_its_bound(
    tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_mod, "RECENT_MAX_ROWS", 6)
    monkeypatch.setattr(index_mod, "RECENT_SHARE", 1)  # the row bound alone decides here
    index = index_file(repo, "atlas")
    states, recent = [], []
    for k in range(6):
        publish(
            make_bundle(tmp_path, version=f"3.{k}.0").root, repo, allow_unsigned=True, alias="prod"
        )
        states.append(_state(index))
        recent.append(_recent_rows(repo))
        assert _heads(repo) == [f"atlas/tauid@3.{k}.0"]
        check_invariants(repo)
    # rows grow (new versions, one old head, the alias) until the bound, then fold to empty
    assert recent[:4] == [3, 4, 5, 6] and recent[4] == 0 and recent[5] == 3
    assert len(set(states[:4])) == 1 and states[4] != states[3] and states[5] == states[4]
    assert _rows(index) == BASE + 5


def test_a_small_index_takes_its_rows_directly(tmp_path: Path) -> None:
    repo = tmp_path / "small"
    for v in ("1.0.0", "1.1.0", "1.2.0"):
        publish(make_bundle(tmp_path, version=v).root, repo, allow_unsigned=True)
        assert not recent_file(index_file(repo, "atlas")).exists()
    assert _rows(index_file(repo, "atlas")) == 3


def test_rebuild_removes_the_recent_shard_and_a_stale_one_is_never_applied(
    tmp_path: Path, repo: Path
) -> None:
    publish(make_bundle(tmp_path, version="2.0.0").root, repo, allow_unsigned=True)
    recent = recent_file(index_file(repo, "atlas"))
    kept = tmp_path / "recent-copy"
    shutil.copyfile(recent, kept)
    rows = dump_index(repo)
    assert rebuild_index(repo) == BASE + 1
    assert not recent.exists() and dump_index(repo) == rows
    # a crash between the rename of a rebuilt index and the removal of the recent shard: the
    # rebuilt index has a new token, so the old recent shard does not apply to it
    shutil.copyfile(kept, recent)
    set_alias("atlas/tauid@1.0.0", "old", repo, force=True)
    publish(make_bundle(tmp_path, version="2.1.0").root, repo, allow_unsigned=True)
    assert _heads(repo) == ["atlas/tauid@2.1.0"]
    check_invariants(repo)


def test_an_index_written_behind_the_recent_shard_is_rebuilt(tmp_path: Path, repo: Path) -> None:
    """An older hepbundle writes the index directly and knows nothing of the recent shard: the
    index's triggers clear its token, readers stop applying the recent shard, and the next
    writer rebuilds the index from the per-name files."""
    publish(make_bundle(tmp_path, version="2.0.0").root, repo, allow_unsigned=True)
    index = index_file(repo, "atlas")
    with sqlite3.connect(index) as conn:
        conn.execute("UPDATE versions SET summary = 'edited' WHERE version = '1.0.0'")
    assert _heads(repo) == [f"atlas/tauid@1.{BASE - 1}.0"]  # the index alone, as it was written
    publish(make_bundle(tmp_path, version="2.1.0").root, repo, allow_unsigned=True)
    assert _heads(repo) == ["atlas/tauid@2.1.0"]
    assert not any(h.summary == "edited" for h in find(repo, FindQuery(all_versions=True)))
    check_invariants(repo)


def test_a_damaged_recent_shard_is_one_error_for_readers_and_rebuilt_by_writers(
    tmp_path: Path, repo: Path
) -> None:
    from hepbundle.errors import RepositoryError

    publish(make_bundle(tmp_path, version="2.0.0").root, repo, allow_unsigned=True)
    recent_file(index_file(repo, "atlas")).write_bytes(b"not a database" * 100)
    with pytest.raises(RepositoryError, match="catalog rebuild"):
        find(repo, FindQuery())
    publish(make_bundle(tmp_path, version="2.1.0").root, repo, allow_unsigned=True)
    assert _heads(repo) == ["atlas/tauid@2.1.0"]
    check_invariants(repo)
