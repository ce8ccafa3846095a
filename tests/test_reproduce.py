"""hepbundle reproduce: --check verdicts and a real --run of a git-pinned training script."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.reproduce import check

from .provenance_fixtures import git, make_trained_repo


def run(*args: object) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, Path]:
    """(training checkout, bundle built from it)."""
    repo = make_trained_repo(tmp_path)
    return repo, hepbundle.build(repo, tmp_path / "bundle").root


def test_check_ready_with_checkout_and_data(trained: tuple[Path, Path]) -> None:
    repo, bundle = trained
    code, out, err = run(
        "reproduce",
        bundle,
        "--integrity-only",
        "--check",
        "--mirror",
        repo,
        "--data-dir",
        repo,
        "--json",
    )
    assert code == 0, err
    res = json.loads(out)
    # nothing missing, but a Rucio DID (no Rucio configured) and a DOI are not checked here:
    # that is no "ready" (exit 0, the verdict says what was not checked)
    assert res["verdict"] == "unconfirmed" and res["missing"] == []
    assert len(res["unchecked"]) == 2 and all(u.startswith("data: ") for u in res["unchecked"])
    status = {(i["what"], i["name"]): i["status"] for i in res["items"]}
    assert status[("data", "data/train.npz")] == "ok"
    assert status[("environment", "provenance/environment.lock")] == "ok"
    assert status[("command", "python train.py --epochs 50 --lr 0.5")] == "ok"
    # a Rucio DID and a DOI cannot be resolved offline: listed, not fatal
    assert sorted(i["status"] for i in res["items"] if i["what"] == "data") == [
        "ok",
        "unchecked",
        "unchecked",
    ]
    code, out, err = run(
        "reproduce", bundle, "--integrity-only", "--check", "--mirror", repo, "--data-dir", repo
    )
    assert code == 0, err
    first = out.splitlines()[0]
    assert first.startswith(
        f"{res['ref']}: unconfirmed: nothing is missing, but not checked here: data "
    )
    assert "ready" not in first


def test_check_lists_missing_items_and_mirror_fixes_code(
    tmp_path: Path, trained: tuple[Path, Path]
) -> None:
    repo, bundle = trained
    mirror = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(mirror))
    moved = tmp_path / "elsewhere"
    shutil.move(repo, moved)  # the checkout is gone
    code, out, err = run(
        "reproduce",
        bundle,
        "--integrity-only",
        "--check",
        "--mirror",
        repo,
        "--data-dir",
        tmp_path / "nothing",
    )
    assert code == 1
    assert "cannot be re-trained: missing code " in err and "data data/train.npz" in err
    assert "remote, not tried without --network" in out
    rep = check(
        hepbundle.open(bundle, verify="integrity"), mirrors=[str(mirror)], data_dirs=[moved]
    )
    assert rep.ready and rep.item("code").detail == f"commit found in {mirror}"  # type: ignore[union-attr]


def test_check_refuses_changed_data(tmp_path: Path, trained: tuple[Path, Path]) -> None:
    repo, bundle = trained
    other = tmp_path / "other" / "data"
    other.mkdir(parents=True)
    np.savez(other / "train.npz", x=np.zeros((4, 3)), y=np.zeros(4))
    rep = check(
        hepbundle.open(bundle, verify="integrity"), mirrors=[str(repo)], data_dirs=[other.parent]
    )
    (bad,) = rep.missing
    assert bad.what == "data" and "recorded" in bad.detail and "sha256" in bad.detail


@pytest.mark.parametrize("relative_mirror", [False, True])
def test_run_reproduces_recorded_metrics(
    tmp_path: Path,
    trained: tuple[Path, Path],
    relative_mirror: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo, bundle = trained
    work = tmp_path / "work"
    if relative_mirror:  # as a user types it: `--mirror training` from the directory above
        monkeypatch.chdir(repo.parent)
    code, out, err = run(
        "reproduce",
        bundle,
        "--integrity-only",
        "--run",
        work,
        "--mirror",
        repo.name if relative_mirror else repo,
        "--data-dir",
        repo,
        "--env",
        "current",
        "--json",
    )
    assert code == 0, err + out
    res = json.loads(out)
    assert res["passed"] and res["returncode"] == 0
    names = {c["name"]: c for c in res["comparison"]}
    assert set(names) == {"accuracy/test", "loss/train"}
    assert all(c["diff"] == 0 for c in names.values())  # deterministic training, same data
    head = git(work / "src", "rev-parse", "HEAD")
    assert (
        head
        == hepbundle.open(bundle, verify="integrity").manifest.meta["provenance"]["code"]["commit"]
    )
    assert (work / "src" / "data" / "train.npz").is_symlink()


def test_run_refuses_when_not_ready(tmp_path: Path, trained: tuple[Path, Path]) -> None:
    repo, bundle = trained
    code, _, err = run(
        "reproduce",
        bundle,
        "--integrity-only",
        "--run",
        tmp_path / "w",
        "--mirror",
        repo,
        "--data-dir",
        tmp_path,
    )
    assert code == 2 and "cannot be re-trained: data data/train.npz" in err
    code, _, err = run("reproduce", bundle, "--integrity-only")
    assert code == 2 and "exactly one of --check and --run" in err


def test_data_linked_where_the_command_looks(tmp_path: Path) -> None:
    """A spec beside the checkout records '../training/data/jets.npz'; the command reads
    'data/jets.npz': the file is linked there, and nothing is created outside the checkout."""
    from hepbundle.reproduce import _link_data

    src, data = tmp_path / "work" / "src", tmp_path / "jets.npz"
    src.mkdir(parents=True)
    data.write_bytes(b"npz")
    argv = ["python", "train.py", "--data", "data/jets.npz", "--out", "out"]
    _link_data(src, "../training/data/jets.npz", data, argv)
    assert (src / "data" / "jets.npz").resolve() == data
    assert not (tmp_path / "work" / "training").exists()


STDLIB_TRAIN = """\
import json, statistics, sys
open("prefix.txt", "w").write(sys.prefix)
values = [float(v) for v in open("data/values.csv").read().split()]
open("model.txt", "w").write(str(statistics.mean(values)))
json.dump({"metrics": {"mean": statistics.mean(values), "spread": statistics.pstdev(values)}},
          open("metrics.json", "w"))
"""


def test_run_creates_environment_from_lock(tmp_path: Path) -> None:
    """--env lock: a fresh virtualenv from the packed lock (standard library only here, so no
    package index is needed); the command runs with that interpreter first on PATH."""
    repo = tmp_path / "stdlib-training"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text(STDLIB_TRAIN)
    (repo / "requirements.lock").write_text("# standard library only\n")
    (repo / ".gitignore").write_text("data/\nmodel.txt\nmetrics.json\nprefix.txt\n")
    (repo / "hepbundle.yaml").write_text(
        "name: cms/mean\nversion: 1.0.0\nfiles:\n  - path: model.txt\n    role: model\n"
        "code:\n  path: .\n  command: python train.py\n"
        "environment:\n  lock: requirements.lock\n"
        "data:\n  - type: file\n    path: data/values.csv\n"
        "metrics: {mean: 2.5, spread: 1.118034}\n"
    )
    git(repo, "add", ".")
    git(repo, "-c", "user.name=CI", "-c", "user.email=ci@cern.ch", "commit", "-q", "-m", "train")
    (repo / "data").mkdir()
    (repo / "data" / "values.csv").write_text("1 2 3 4\n")
    (repo / "model.txt").write_text("2.5")
    bundle = hepbundle.build(repo, tmp_path / "b").root
    code, out, err = run(
        "reproduce",
        bundle,
        "--integrity-only",
        "--run",
        tmp_path / "w",
        "--mirror",
        repo,
        "--data-dir",
        repo,
        "--json",
    )
    assert code == 0, err + out
    res = json.loads(out)
    assert res["environment"].startswith(f"virtualenv {tmp_path / 'w' / 'venv'}")
    assert {c["name"]: c["within"] for c in res["comparison"]} == {"mean": True, "spread": True}
    prefix = (tmp_path / "w" / "src" / "prefix.txt").read_text()
    assert prefix == str(tmp_path / "w" / "venv")  # the lock's environment, not ours


def test_a_relative_data_file_is_found_on_another_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A spec in a subdirectory of the training checkout names its data relative to itself
    (``../../data/train.npz``). The build records where the file lies in the checkout
    (``checkoutPath: data/train.npz``), so ``reproduce --check`` run from any directory of
    another clone finds the file there; before, it looked for ``../../data/train.npz`` from
    the current directory and found nothing (issue 14, item 14)."""
    repo = make_trained_repo(tmp_path)
    spec_dir = repo / "models" / "tagger"
    spec_dir.mkdir(parents=True)
    (spec_dir / "model.onnx").write_bytes(b"weights" * 100)
    (spec_dir / "hepbundle.yaml").write_text(
        "name: atlas/toy-tagger\nversion: 1.0.0\nsummary: Toy tagger\nlicense: Apache-2.0\n"
        "framework: onnx\nfiles:\n  - path: model.onnx\n    role: model\n"
        "data:\n  - type: file\n    path: ../../data/train.npz\n    split: train\n"
        "  - type: file\n    path: /eos/atlas/not-mounted-here/test.npz\n"
    )
    bundle = hepbundle.build(spec_dir, tmp_path / "bundle")
    refs = bundle.manifest.meta["data"]
    assert refs[0]["path"] == "../../data/train.npz"
    assert refs[0]["checkoutPath"] == "data/train.npz"
    assert "checkoutPath" not in refs[1]  # absolute: nothing to resolve against a checkout
    other = tmp_path / "elsewhere" / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(other))
    (other / "data").mkdir()  # data/ is git-ignored: the user puts the file in place
    shutil.copyfile(repo / "data" / "train.npz", other / "data" / "train.npz")
    (other / "models" / "tagger").mkdir(parents=True)
    opened = hepbundle.open(bundle.root, verify="integrity")
    for cwd in (other, other / "models", other / "models" / "tagger"):
        monkeypatch.chdir(cwd)
        item = next(i for i in check(opened).items if i.name == "../../data/train.npz")
        assert item.status == "ok" and item.found, item
        assert Path(item.found).resolve() == (other / "data" / "train.npz").resolve(), item
    monkeypatch.chdir(tmp_path)  # outside any checkout, without --data-dir: missing, as before
    item = next(i for i in check(opened).items if i.name == "../../data/train.npz")
    assert item.status == "missing"
    item = next(i for i in check(opened, data_dirs=[other]).items if i.name.endswith("train.npz"))
    assert item.status == "ok"  # a --data-dir is a checkout root too
