"""Reference profiles (bounded-memory statistics) and drift checks against a bundle's profile."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main
from hepbundle.data.drift import compare, ks_statistic, parse_thresholds, psi
from hepbundle.data.profile import FINE_BINS, profile_npz
from hepbundle.data.reference import PROFILE_PATH, load_profile
from hepbundle.errors import DataError
from hepbundle.spec import validate


def sample(
    n: int, seed: int, *, eta_shift: float = 0.0, pt_scale: float = 1.0
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "pt": (rng.exponential(30, n) * pt_scale).astype(np.float32),
        "eta": rng.normal(eta_shift, 2, n),
        "nhits": rng.integers(0, 20, n).astype(np.int32),
        "jets": rng.normal(50, 10, (n, 3)),
    }


def run(*args: object) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def model_spec(directory: Path, extra: str = "") -> None:
    """A one-file ONNX-role bundle spec in ``directory`` (plus ``extra`` YAML)."""
    (directory / "model.onnx").write_bytes(b"\x08\x07" * 64)
    spec = "name: cms/btag\nversion: 1.0.0\nfiles:\n  - path: model.onnx\n    role: model\n"
    (directory / "hepbundle.yaml").write_text(spec + extra, encoding="utf-8")


@pytest.fixture
def train(tmp_path: Path) -> Path:
    p = tmp_path / "m" / "train.npz"
    p.parent.mkdir()
    np.savez(p, **sample(150_000, 0))  # > 2 streaming chunks of 65536 rows
    return p


@pytest.fixture
def profiled(tmp_path: Path, train: Path) -> Path:
    """A bundle built from the CLI with --profile-from."""
    model_spec(train.parent)
    code, _, err = run("build", train.parent, "-o", tmp_path / "b", "--profile-from", train)
    assert code == 0, err
    return tmp_path / "b"


def test_profile_statistics_match_numpy(tmp_path: Path, train: Path) -> None:
    prof = profile_npz(train)
    validate(prof, "profile.schema.json")
    data = np.load(train)
    by = {f["name"]: f for f in prof["features"]}
    assert list(by) == ["pt", "eta", "nhits", "jets[0]", "jets[1]", "jets[2]"]
    for name, x in [("pt", data["pt"]), ("eta", data["eta"]), ("jets[1]", data["jets"][:, 1])]:
        f = by[name]
        x64 = x.astype(np.float64)
        assert f["count"] == len(x) and f["min"] == x64.min() and f["max"] == x64.max()
        assert f["mean"] == pytest.approx(x64.mean(), rel=1e-9, abs=1e-9)
        assert f["std"] == pytest.approx(x64.std(), rel=1e-9)
        assert len(f["edges"]) == FINE_BINS + 1 and sum(f["counts"]) == len(x)
        width = (f["max"] - f["min"]) / FINE_BINS
        for q in (0.1, 0.5, 0.9):
            got = f["quantiles"][round(q * 100)]
            assert abs(got - np.quantile(x64, q)) <= width
    # a small-range integer feature gets one bin per value
    hits = by["nhits"]
    assert hits["edges"][:2] == [-0.5, 0.5] and len(hits["counts"]) == 20
    assert hits["counts"] == np.bincount(data["nhits"], minlength=20).tolist()


def test_profile_non_finite_and_constant(tmp_path: Path) -> None:
    x = np.array([1.0, np.nan, 2.0, np.inf, 3.0])
    np.savez(tmp_path / "d.npz", x=x, c=np.full(5, 7.0), s=np.array(["a"] * 5))
    by = {f["name"]: f for f in profile_npz(tmp_path / "d.npz")["features"]}
    assert set(by) == {"x", "c"}  # the string array is not a feature
    assert by["x"]["count"] == 3 and by["x"]["nonFinite"] == 2 and by["x"]["mean"] == 2.0
    assert by["c"]["std"] == 0.0 and by["c"]["counts"] == [5]
    with pytest.raises(DataError, match="has no array 'y'; arrays: x, c, s"):
        profile_npz(tmp_path / "d.npz", ["y"])


def test_build_packs_signed_profile(profiled: Path, train: Path) -> None:
    b = hepbundle.open(profiled, verify="integrity")
    entry = b.manifest.file(PROFILE_PATH)
    assert entry.role == "data"
    meta = b.manifest.meta["profile"]
    # the profile record names its SHA-256 (a data record) whatever the bundle's algorithm
    packed = hepbundle.digest.hash_file(b.root / PROFILE_PATH)
    assert meta["path"] == PROFILE_PATH and meta["sha256"] == packed.sha256
    assert meta["features"] == 6
    assert entry.digest == hepbundle.digest.hash_file(b.root / PROFILE_PATH, b.algorithm).digest
    assert load_profile(b)["sources"][0]["sha256"] == hepbundle.digest.hash_file(train).sha256
    b.verify().raise_for_problems(b.ref)


def test_build_profile_from_spec_section(tmp_path: Path, train: Path) -> None:
    model_spec(train.parent, "profile:\n  from: train.npz\n  features: [eta]\n")
    code, _, err = run("build", train.parent, "-o", tmp_path / "b2")
    assert code == 0, err
    prof = load_profile(hepbundle.open(tmp_path / "b2", verify="integrity"))
    assert [f["name"] for f in prof["features"]] == ["eta"]
    (train.parent / "hepbundle.yaml").write_text(
        (train.parent / "hepbundle.yaml").read_text().replace("from: train.npz", "form: x"),
    )
    code, _, err = run("build", train.parent, "-o", tmp_path / "b3")
    assert code == 2 and "profile" in err and "form" in err


def test_psi_and_ks_basics() -> None:
    ref = np.array([0, 10, 20, 30, 40, 0])
    assert psi(ref, ref * 3) == pytest.approx(0.0) and ks_statistic(ref, ref * 3) == 0.0
    moved = np.array([0, 40, 30, 20, 10, 0])
    assert psi(ref, moved) > 0.2 and ks_statistic(ref, moved) == pytest.approx(0.4)


def test_drift_unshifted_does_not_alert(tmp_path: Path, profiled: Path) -> None:
    np.savez(tmp_path / "new.npz", **sample(40_000, 1))
    code, out, err = run(
        "drift", profiled, "--integrity-only", "--data", tmp_path / "new.npz", "--json"
    )
    assert code == 0, err
    res = json.loads(out)
    assert res["alert"] is False and len(res["features"]) == 6
    assert all(f["psi"] < 0.02 and f["ks"] < 0.03 for f in res["features"])


def test_drift_shifted_alerts_with_exit_3(tmp_path: Path, profiled: Path) -> None:
    np.savez(tmp_path / "new.npz", **sample(40_000, 2, eta_shift=1.5, pt_scale=1.5))
    png = tmp_path / "drift.png"
    code, out, err = run(
        "drift",
        profiled,
        "--integrity-only",
        "--data",
        tmp_path / "new.npz",
        "--plot",
        png,
        "--threshold",
        "mean=0.5",
    )
    assert code == 3
    assert err.strip() == (
        f"hepbundle: error: 2 of 6 features of {tmp_path / 'new.npz'} drifted from "
        "cms/btag@1.0.0: eta, pt"
    )
    rows = [ln.split()[0] for ln in out.splitlines()[2:]]
    assert rows[:2] == ["eta", "pt"]  # ranked worst first
    assert "mean" in out.splitlines()[2] and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_drift_errors(tmp_path: Path, profiled: Path, built: hepbundle.Bundle) -> None:
    np.savez(tmp_path / "partial.npz", pt=np.ones(10, dtype=np.float32))
    code, _, err = run("drift", profiled, "--integrity-only", "--data", tmp_path / "partial.npz")
    assert code == 2 and "has no array 'eta'" in err
    code, _, err = run("drift", built.root, "--integrity-only", "--data", tmp_path / "partial.npz")
    assert code == 2 and "has no reference profile" in err and "--profile-from" in err
    with pytest.raises(DataError, match="NAME=VALUE"):
        parse_thresholds("kl=0.1")
    assert parse_thresholds("ks=0.05") == {"psi": 0.2, "ks": 0.05}


def test_output_features_are_skipped_without_outputs(tmp_path: Path, train: Path) -> None:
    np.savez(tmp_path / "scores.npz", score=np.random.default_rng(0).uniform(size=1000))
    prof = profile_npz(train, ["eta"], outputs=tmp_path / "scores.npz")
    assert [f["kind"] for f in prof["features"]] == ["input", "output"]
    np.savez(tmp_path / "new.npz", **sample(1000, 3))
    rep = compare(prof, tmp_path / "new.npz")
    assert [f.name for f in rep.features] == ["eta"] and rep.skipped == ("score",)
    np.savez(tmp_path / "s2.npz", score=np.random.default_rng(1).uniform(0.5, 1.0, size=1000))
    rep = compare(prof, tmp_path / "new.npz", outputs=tmp_path / "s2.npz")
    assert [f.name for f in rep.alerts] == ["score"]


def test_build_with_output_profile_and_drift_on_outputs(tmp_path: Path, train: Path) -> None:
    model_spec(train.parent)
    rng = np.random.default_rng(5)
    np.savez(train.parent / "scores.npz", score=rng.beta(2, 5, 150_000))
    code, _, err = run(
        "build",
        train.parent,
        "-o",
        tmp_path / "b",
        "--profile-from",
        train,
        "--profile-features",
        "eta",
        "--profile-outputs",
        train.parent / "scores.npz",
    )
    assert code == 0, err
    meta = hepbundle.open(tmp_path / "b", verify="integrity").manifest.meta["profile"]
    assert (meta["features"], meta["outputs"]) == (1, 1)
    np.savez(tmp_path / "new.npz", **sample(20_000, 6))
    np.savez(
        tmp_path / "new-scores.npz", score=rng.beta(5, 2, 20_000)
    )  # the model now says "signal"
    code, out, _ = run("drift", tmp_path / "b", "--integrity-only", "--data", tmp_path / "new.npz")
    assert code == 0 and "not checked (no --outputs): score" in out
    code, out, err = run(
        "drift",
        tmp_path / "b",
        "--integrity-only",
        "--data",
        tmp_path / "new.npz",
        "--outputs",
        tmp_path / "new-scores.npz",
        "--json",
    )
    assert code == 3 and json.loads(out)["alerts"] == ["score"] and "score" in err
