"""ROOT → NPZ on real ROOT files written by uproot: values, dtypes, padding, provenance, errors."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from click.testing import CliRunner

from hepbundle.cli import main
from hepbundle.data._npz import NpzStreamWriter, iter_npz_chunks, npz_members
from hepbundle.data.npz_provenance import check_npz, read_record
from hepbundle.data.root2npz import root2npz
from hepbundle.digest import hash_file
from hepbundle.errors import DataError


def write_root(path: Path, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A TTree 'Events' with float32/int32/float64 branches and a jagged 'jet_pt'."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 5, n)
    cols = {
        "pt": rng.exponential(30, n).astype(np.float32),
        "nhits": rng.integers(0, 100, n).astype(np.int32),
        "eta": rng.normal(0, 2, n),
    }
    jets = ak.unflatten(rng.normal(50, 10, int(counts.sum())), counts)
    with uproot.recreate(path) as f:
        t = f.mktree(
            "Events",
            {"pt": np.float32, "nhits": np.int32, "eta": np.float64, "jet_pt": "var * float64"},
        )
        # several baskets, so chunked reading crosses basket boundaries
        for lo in range(0, n, 250):
            t.extend(
                {**{k: v[lo : lo + 250] for k, v in cols.items()}, "jet_pt": jets[lo : lo + 250]}
            )
        f["meta/info"] = "not a tree"
    return {**cols, "jet_pt": jets}


@pytest.fixture
def roots(tmp_path: Path) -> tuple[list[Path], list[dict[str, np.ndarray]]]:
    paths = [tmp_path / "a.root", tmp_path / "b.root"]
    return paths, [write_root(p, 1000, seed=i) for i, p in enumerate(paths)]


def test_multi_file_chunked_round_trip(tmp_path: Path, roots) -> None:  # type: ignore[no-untyped-def]
    paths, cols = roots
    out = tmp_path / "out" / "train.npz"
    res = root2npz(paths, "Events", ["pt", "nhits", "eta"], out, step_size=97, command=["t"])
    z = np.load(out)
    for b in ("pt", "nhits", "eta"):
        want = np.concatenate([c[b] for c in cols])
        assert z[b].dtype == want.dtype and np.array_equal(z[b], want)
    rec = read_record(res.provenance_path)
    assert rec["entries"] == {"in": 2000, "out": 2000}
    assert [b["dtype"] for b in rec["branches"]] == ["<f4", "<i4", "<f8"]
    for p, i in zip(paths, rec["inputs"], strict=True):
        data = p.read_bytes()
        assert i["path"] == str(p) and i["size"] == len(data) and i["entries"] == 1000
        assert i["adler32"] == f"{zlib.adler32(data):08x}" and i["sha256"] == hash_file(p).sha256
    assert rec["output"]["sha256"] == hash_file(out).sha256 and check_npz(out, rec) is None
    assert rec["command"] == ["t"] and rec["software"]["uproot"] == uproot.__version__
    assert sorted(x.name for x in out.parent.iterdir()) == [
        "train.npz",
        "train.npz.provenance.json",
    ]


def test_cut_and_padding(tmp_path: Path, roots) -> None:  # type: ignore[no-untyped-def]
    paths, cols = roots
    out = tmp_path / "o.npz"
    res = root2npz(
        paths[:1],
        "Events",
        ["pt", "jet_pt"],
        out,
        cut="pt > 20",
        pads={"jet_pt": 2},
        step_size="1MB",
    )
    sel = cols[0]["pt"] > 20
    z = np.load(out)
    assert np.array_equal(z["pt"], cols[0]["pt"][sel])
    jets = cols[0]["jet_pt"][sel]
    want = ak.to_numpy(ak.fill_none(ak.pad_none(jets, 2, clip=True), 0.0))
    assert z["jet_pt"].shape == (int(sel.sum()), 2) and np.array_equal(z["jet_pt"], want)
    jet_rec = res.record["branches"][1]
    assert jet_rec["pad"] == 2 and jet_rec["truncated"] == int(ak.sum(ak.num(jets) > 2)) > 0
    assert res.record["entries"] == {"in": 1000, "out": int(sel.sum())}


def test_empty_selection_keeps_dtypes(tmp_path: Path, roots) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "o.npz"
    root2npz(roots[0][:1], "Events", ["nhits", "jet_pt"], out, cut="pt < 0", pads={"jet_pt": 3})
    z = np.load(out)
    assert z["nhits"].shape == (0,) and z["nhits"].dtype == np.int32
    assert z["jet_pt"].shape == (0, 3) and z["jet_pt"].dtype == np.float64


def test_compressed_output(tmp_path: Path, roots) -> None:  # type: ignore[no-untyped-def]
    plain, packed = tmp_path / "p.npz", tmp_path / "c.npz"
    root2npz(roots[0][:1], "Events", ["nhits"], plain)
    res = root2npz(roots[0][:1], "Events", ["nhits"], packed, compress=True)
    assert packed.stat().st_size < plain.stat().st_size and res.record["output"]["compressed"]
    assert np.array_equal(np.load(packed)["nhits"], np.load(plain)["nhits"])


def _garbage(p: Path) -> None:
    p.write_bytes(b"this is not ROOT\n" * 10)


def _truncated(p: Path) -> None:
    write_root(p, 1000)
    p.write_bytes(p.read_bytes()[:2000])


@pytest.mark.parametrize(
    ("case", "args", "message"),
    [
        ("missing file", {"inputs": ["nope.root"]}, "nope.root does not exist"),
        (
            "missing tree",
            {"tree": "Event"},
            "no TTree or RNTuple 'Event' (did you mean 'Events'?); TTrees: Events; RNTuples: (none)",
        ),
        (
            "missing branch",
            {"branches": ["ptt"]},
            "no branch 'ptt' (did you mean 'pt'?); branches: pt, nhits",
        ),
        ("jagged", {"branches": ["jet_pt"]}, "'jet_pt' (double[]) has a variable length"),
        ("bad pad", {"pads": {"eta2": 3}}, "--pad names 'eta2'"),
        ("unknown cut name", {"cut": "ptx > 3"}, "--cut 'ptx > 3': unknown name 'ptx'"),
        ("bad cut", {"cut": "pt >>> 3"}, "is not a valid expression"),
        ("bad step", {"step_size": "lots"}, "step size 'lots' is not understood"),
        ("garbage file", {"inputs": [_garbage]}, "is not a readable ROOT file"),
        ("truncated file", {"inputs": [_truncated]}, "is not a readable ROOT file"),
    ],
)
def test_errors_leave_nothing_behind(
    tmp_path: Path, roots, case: str, args: dict, message: str
) -> None:  # type: ignore[no-untyped-def,type-arg]
    del case
    kw = {"inputs": [roots[0][0]], "tree": "Events", "branches": ["pt"], **args}
    inputs = []
    for i in kw.pop("inputs"):
        if callable(i):
            i(tmp_path / "bad.root")
            i = tmp_path / "bad.root"
        inputs.append(i if Path(i).is_absolute() else tmp_path / i)
    out = tmp_path / "out" / "o.npz"
    with pytest.raises(DataError) as e:
        root2npz([roots[0][1], *inputs], kw.pop("tree"), kw.pop("branches"), out, **kw)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_cli_round_trip_and_error(tmp_path: Path, roots) -> None:  # type: ignore[no-untyped-def]
    paths, _ = roots
    bf = tmp_path / "branches.txt"
    bf.write_text("pt  # transverse momentum\n\nnhits\n", encoding="utf-8")
    out = tmp_path / "x.npz"
    r = CliRunner().invoke(
        main,
        [
            "data",
            "root2npz",
            *map(str, paths),
            "-t",
            "Events",
            "--branches-file",
            str(bf),
            "-b",
            "jet_pt",
            "--pad",
            "jet_pt=4",
            "--step-size",
            "10KB",
            "-o",
            str(out),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["entries"]["out"] == 2000 and [b["name"] for b in res["branches"]] == [
        "jet_pt",
        "pt",
        "nhits",
    ]
    assert np.load(out)["jet_pt"].shape == (2000, 4)
    r = CliRunner().invoke(
        main, ["data", "root2npz", str(paths[0]), "-t", "Events", "-b", "jet_pt", "-o", str(out)]
    )
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "--pad jet_pt=N" in r.stderr


def test_stream_writer_matches_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(1000, 3)).astype(">f4"), rng.integers(0, 9, 1000).astype(np.uint8)
    with NpzStreamWriter(tmp_path / "w.npz") as w:
        for lo in range(0, 1000, 300):
            w.append("a", a[lo : lo + 300])
            w.append("b", b[lo : lo + 300])
        w.finish()
    z = np.load(tmp_path / "w.npz")
    assert (
        z["a"].dtype == np.dtype("<f4") and np.array_equal(z["a"], a) and np.array_equal(z["b"], b)
    )
    members = npz_members(tmp_path / "w.npz")
    assert members["a"].shape == (1000, 3) and members["b"].dtype == np.uint8
    back = np.concatenate(list(iter_npz_chunks(tmp_path / "w.npz", "a", rows=333)))
    assert np.array_equal(back, a)


def test_stream_writer_abort_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(DataError), NpzStreamWriter(tmp_path / "w.npz") as w:
        w.append("a", np.zeros((3, 2)))
        w.append("a", np.zeros((3, 4)))
    assert list(tmp_path.iterdir()) == []
