"""ROOT → NPZ from RNTuples written by uproot (what ``f["Events"] = {...}`` writes): the same
flags, values and provenance as from a TTree of the same content, including ``--cut``."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from hepbundle.data.npz_provenance import read_record
from hepbundle.data.root2npz import root2npz
from hepbundle.errors import DataError


def columns(n: int, seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 5, n)
    return {
        "pt": rng.exponential(30, n).astype(np.float32),
        "nhits": rng.integers(0, 100, n).astype(np.int32),
        "eta": rng.normal(0, 2, n),
        "cov": rng.normal(0, 1, (n, 3)).astype(np.float32),  # std::array<float, 3>
        "jet_pt": ak.unflatten(rng.normal(50, 10, int(counts.sum())), counts),
        "label": ak.Array(["b" if x else "light" for x in rng.integers(0, 2, n)]),
    }


def write_rntuple(path: Path, n: int, seed: int = 0) -> dict[str, object]:
    cols = columns(n, seed)
    with uproot.recreate(path) as f:
        # a dict of arrays: uproot writes an RNTuple; one cluster per 500 entries, so reading
        # in steps crosses cluster boundaries
        f["Events"] = {k: v[:500] for k, v in cols.items()}  # type: ignore[index]
        for lo in range(500, n, 500):
            f["Events"].extend({k: v[lo : lo + 500] for k, v in cols.items()})  # type: ignore[index]
        f.mktree("Meta", {"run": np.int32}).extend({"run": np.array([1], np.int32)})
    return cols


def write_ttree(path: Path, cols: dict[str, object]) -> None:
    with uproot.recreate(path) as f:
        t = f.mktree(
            "Events",
            {"pt": np.float32, "nhits": np.int32, "eta": np.float64, "jet_pt": "var * float64"},
        )
        t.extend({k: cols[k] for k in ("pt", "nhits", "eta", "jet_pt")})


@pytest.fixture
def rntuples(tmp_path: Path) -> tuple[list[Path], list[dict[str, object]]]:
    paths = [tmp_path / "a.root", tmp_path / "b.root"]
    return paths, [write_rntuple(p, 3000, seed=i) for i, p in enumerate(paths)]


def test_the_file_really_holds_an_rntuple(rntuples) -> None:  # type: ignore[no-untyped-def]
    f = uproot.open(rntuples[0][0])
    assert f.classnames(cycle=False)["Events"] == "ROOT::RNTuple"
    assert len(f["Events"].cluster_summaries) == 6


def test_rntuple_round_trip_chunked(tmp_path: Path, rntuples) -> None:  # type: ignore[no-untyped-def]
    paths, cols = rntuples
    out = tmp_path / "o.npz"
    res = root2npz(
        paths,
        "Events",
        ["pt", "nhits", "eta", "cov", "jet_pt"],
        out,
        pads={"jet_pt": 2},
        step_size=700,  # several steps per file
        command=["t"],
    )
    z = np.load(out)
    for b in ("pt", "nhits", "eta", "cov"):
        want = np.concatenate([np.asarray(c[b]) for c in cols])  # type: ignore[call-overload]
        assert z[b].dtype == want.dtype and np.array_equal(z[b], want), b
    jets = ak.concatenate([c["jet_pt"] for c in cols])
    want_jets = ak.to_numpy(ak.fill_none(ak.pad_none(jets, 2, clip=True), 0.0))
    assert np.array_equal(z["jet_pt"], want_jets)
    rec = read_record(res.provenance_path)
    assert rec["kind"] == "RNTuple" and rec["tree"] == "Events"
    assert [i["kind"] for i in rec["inputs"]] == ["RNTuple", "RNTuple"]
    assert [i["checksumSource"] for i in rec["inputs"]] == ["local", "local"]
    assert rec["entries"] == {"in": 6000, "out": 6000}
    by_name = {b["name"]: b for b in rec["branches"]}
    assert by_name["cov"]["shape"] == [3] and by_name["cov"]["sourceType"].startswith("std::array")
    assert by_name["jet_pt"]["truncated"] == int(ak.sum(ak.num(jets) > 2)) > 0


def test_rntuple_and_ttree_of_the_same_data_give_the_same_npz(tmp_path: Path) -> None:
    cols = write_rntuple(tmp_path / "rn.root", 2000)
    write_ttree(tmp_path / "tt.root", cols)
    kw = {"pads": {"jet_pt": 3}, "cut": "(pt > 20) & (abs(eta) < 2.5)", "step_size": "1MB"}
    branches = ["pt", "nhits", "eta", "jet_pt"]
    a = root2npz([tmp_path / "rn.root"], "Events", branches, tmp_path / "rn.npz", **kw)  # type: ignore[arg-type]
    b = root2npz([tmp_path / "tt.root"], "Events", branches, tmp_path / "tt.npz", **kw)  # type: ignore[arg-type]
    za, zb = np.load(tmp_path / "rn.npz"), np.load(tmp_path / "tt.npz")
    for name in branches:
        assert np.array_equal(za[name], zb[name]), name
    sel = (np.asarray(cols["pt"]) > 20) & (np.abs(np.asarray(cols["eta"])) < 2.5)
    assert 0 < a.entries_out == b.entries_out == int(sel.sum()) < 2000
    assert (a.record["kind"], b.record["kind"]) == ("RNTuple", "TTree")


@pytest.mark.parametrize(
    ("cut", "mask"),
    [
        ("nhits < 10 or pt > 100", lambda c: (c["nhits"] < 10) | (c["pt"] > 100)),
        ("not (10 < nhits <= 50)", lambda c: ~((c["nhits"] > 10) & (c["nhits"] <= 50))),
        (
            "sqrt(pt) * 2 >= 10 and ~(eta > 0)",
            lambda c: (np.sqrt(c["pt"]) * 2 >= 10) & (c["eta"] <= 0),
        ),
    ],
)
def test_rntuple_cut_is_applied(tmp_path: Path, cut: str, mask) -> None:  # type: ignore[no-untyped-def]
    """uproot 5.7 ignores ``cut=`` for RNTuples without a word; root2npz applies it itself."""
    cols = write_rntuple(tmp_path / "rn.root", 2000)
    res = root2npz([tmp_path / "rn.root"], "Events", ["nhits"], tmp_path / "o.npz", cut=cut)
    want = np.asarray(cols["nhits"])[mask({k: np.asarray(cols[k]) for k in ("pt", "nhits", "eta")})]
    assert np.array_equal(np.load(tmp_path / "o.npz")["nhits"], want)
    assert 0 < res.entries_out < 2000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"tree": "Event"},
            "has no TTree or RNTuple 'Event' (did you mean 'Events'?); TTrees: Meta; RNTuples: Events",
        ),
        (
            {"branches": ["ptt"]},
            "has no field 'ptt' (did you mean 'pt'?); fields: cov, eta, jet_pt, label, nhits, pt",
        ),
        ({"branches": ["jet_pt"]}, "field 'jet_pt' (std::vector<double>) has a variable length"),
        ({"branches": ["label"]}, "field 'label' has type std::string, which is not a number"),
        ({"cut": "ptx > 3"}, "--cut 'ptx > 3': unknown name 'ptx'"),
        ({"cut": "pt >>> 3"}, "--cut 'pt >>> 3' is not a valid expression"),
        ({"cut": "pt + 1"}, "--cut 'pt + 1' does not give one true/false value per entry"),
        ({"cut": "pt.__class__ == 1"}, "'pt.__class__' is not supported in a cut on an RNTuple"),
        ({"cut": "open('x') == 1"}, "unknown name 'open'"),
    ],
)
def test_rntuple_errors_are_one_line(tmp_path: Path, args: dict, message: str) -> None:  # type: ignore[type-arg]
    write_rntuple(tmp_path / "rn.root", 100)
    kw = {"tree": "Events", "branches": ["pt"], **args}
    out = tmp_path / "out" / "o.npz"
    with pytest.raises(DataError) as e:
        root2npz([tmp_path / "rn.root"], kw.pop("tree"), kw.pop("branches"), out, **kw)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_ttree_and_rntuple_inputs_mixed(tmp_path: Path) -> None:
    cols = write_rntuple(tmp_path / "rn.root", 500)
    write_ttree(tmp_path / "tt.root", cols)
    res = root2npz(
        [tmp_path / "tt.root", tmp_path / "rn.root"], "Events", ["pt"], tmp_path / "o.npz"
    )
    assert res.record["kind"] == "mixed" and res.entries_out == 1000
    assert [i["kind"] for i in res.record["inputs"]] == ["TTree", "RNTuple"]
