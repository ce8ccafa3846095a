"""hepbundle eval: a real ONNX model run on NPZ data, metrics, comparison, evaluation records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

import hepbundle
from hepbundle.cli import main
from hepbundle.data import metrics
from hepbundle.data.evaluate import available_metrics, evaluate
from hepbundle.errors import DataError
from hepbundle.repository.publish import publish
from hepbundle.repository.records import list_records

from .conftest import write_spec

W = np.array([[1.5], [-2.0]], dtype=np.float32)


def logistic_onnx(path: Path, width: int | None = 2) -> None:
    """sigmoid(x @ W + b): a real two-feature classifier (``width=None``: undeclared)."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["z0"]),
            helper.make_node("Add", ["z0", "b"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["p"]),
        ],
        "logistic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, [None, 1])],
        [
            helper.make_tensor("W", TensorProto.FLOAT, [2, 1], W.ravel().tolist()),
            helper.make_tensor("b", TensorProto.FLOAT, [1], [0.25]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def dataset(path: Path, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
    p = 1 / (1 + np.exp(-(1.5 * a - 2.0 * b + 0.25)))
    y = (rng.uniform(size=n) < p).astype(np.int8)
    np.savez(path, a=a, b=b, y=y)
    return y, p


@pytest.fixture
def model_bundle(tmp_path: Path) -> tuple[Path, float]:
    src = tmp_path / "src"
    src.mkdir()
    logistic_onnx(src / "model.onnx")
    y, p = dataset(tmp_path / "test.npz", 50_000, 0)
    true_auc = metrics.auc(y, p)
    write_spec(
        src,
        f"""
        name: cms/logit
        version: 1.0.0
        framework: onnx
        files:
          - path: model.onnx
            role: model
        metrics: {{auc: {true_auc:.4f}, accuracy: 0.5}}
        """,
    )
    return hepbundle.build(src, tmp_path / "b").root, true_auc


def run(*args: object) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def run_eval(bundle: Path, tmp_path: Path, *args: object) -> tuple[int, str, str]:
    """``hepbundle eval BUNDLE --integrity-only --data tmp_path/test.npz --labels y ARGS…`` (the
    test bundles are unsigned: their integrity is checked, which must be asked for by name)."""
    return run(
        "eval", bundle, "--integrity-only", "--data", tmp_path / "test.npz", "--labels", "y", *args
    )


def test_auc_matches_sklearn_with_ties() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2000)
    s = np.round(rng.uniform(size=2000) + 0.3 * y, 1)  # many ties
    assert metrics.auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert metrics.accuracy(y, s) == pytest.approx(sk.accuracy_score(y, s >= 0.5))
    two = np.c_[1 - s, s + 1e-9]  # softmax-like pair: argmax = (s > 0.5) for untied s
    assert metrics.accuracy(y, two) == pytest.approx(sk.accuracy_score(y, np.argmax(two, 1)))
    assert metrics.logloss(y, s) == pytest.approx(sk.log_loss(y, np.clip(s, 1e-7, 1 - 1e-7)))


def test_multiclass_auc_is_macro_one_vs_rest() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(4)
    y = rng.integers(0, 5, 3000)
    s = rng.dirichlet(np.ones(5), 3000) + 0.4 * np.eye(5)[y]
    s /= s.sum(axis=1, keepdims=True)
    assert metrics.auc(y, s) == pytest.approx(sk.roc_auc_score(y, s, multi_class="ovr"), abs=1e-12)
    assert metrics.accuracy(y, s) == pytest.approx(np.mean(np.argmax(s, 1) == y))


def test_builtins_are_registered_as_entry_points() -> None:
    import importlib.metadata

    eps = {e.name: e.value for e in importlib.metadata.entry_points(group="hepbundle.evaluators")}
    assert eps["auc"] == "hepbundle.data.metrics:auc"
    assert {"auc", "accuracy", "logloss", "mse"} <= set(available_metrics())


def test_eval_runs_onnx_and_compares(tmp_path: Path, model_bundle: tuple[Path, float]) -> None:
    root, true_auc = model_bundle
    res = evaluate(
        hepbundle.open(root, verify="integrity"),
        tmp_path / "test.npz",
        "y",
        metric_names=["auc", "logloss"],
    )
    assert res.runner == "onnx" and res.samples == 50_000
    assert res.metrics["auc"] == pytest.approx(true_auc, abs=1e-6)  # float32 model vs float64
    (row,) = res.comparison
    assert row["name"] == "auc" and row["within"] and abs(row["diff"]) < 1e-4


def test_eval_cli_out_and_regression_exit(tmp_path: Path, model_bundle: tuple[Path, float]) -> None:
    root, _ = model_bundle
    out = tmp_path / "eval.json"
    code, stdout, err = run_eval(root, tmp_path, "--metric", "auc", "--out", out)
    assert code == 0, err
    assert "auc" in stdout and json.loads(out.read_text())["passed"] is True
    # accuracy was recorded as 0.5: the real model is far better, so it "changed"
    code, stdout, err = run_eval(root, tmp_path, "--json")
    assert code == 1 and "accuracy is 0.8" in err and "recorded 0.5" in err
    assert json.loads(stdout)["passed"] is False


def test_eval_errors(tmp_path: Path, model_bundle: tuple[Path, float]) -> None:
    root, _ = model_bundle
    code, _, err = run(
        "eval", root, "--integrity-only", "--data", tmp_path / "test.npz", "--labels", "label"
    )
    assert code == 2 and "no labels array 'label'; arrays: a, b, y" in err
    code, _, err = run_eval(root, tmp_path, "--metric", "f1")
    assert code == 2 and "unknown metric 'f1'" in err and "hepbundle.evaluators" in err
    with pytest.raises(DataError, match="labels 0/1"):
        metrics.auc(np.array([0, 2]), np.array([0.1, 0.2]))


def test_eval_appends_record_to_published_bundle(
    tmp_path: Path, model_bundle: tuple[Path, float]
) -> None:
    root, _ = model_bundle
    repo = tmp_path / "repo"
    publish(root, repo, allow_unsigned=True)
    published = repo / "bundles" / "cms" / "logit" / "1.0.0"
    code, out, err = run_eval(published, tmp_path, "--metric", "auc", "--json")
    assert code == 0, err
    (rec,) = list_records(repo, "cms/logit", "1.0.0", "evaluation")
    assert json.loads(out)["written"]["record"] == str(rec.path)
    assert rec.payload["metrics"]["auc"] > 0.8 and rec.payload["passed"] is True


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.fixture
def columns(tmp_path: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    n = 2000
    a, b = rng.normal(size=n).astype(np.float32), rng.normal(size=n).astype(np.float32)
    y = (1.5 * a - 2.0 * b + 0.25 + rng.logistic(size=n) > 0).astype(np.int8)
    return {"a": a, "b": b, "y": y, "x": np.stack([a, b], axis=1)}


def test_eval_picks_inputs_from_the_model_itself(
    tmp_path: Path, model_bundle: tuple[Path, float], columns: dict[str, np.ndarray]
) -> None:
    """The issue's case: more arrays than the model takes (13 columns for a 3-wide input used
    to reach ONNX Runtime and print its traceback)."""
    root, _ = model_bundle
    c = columns
    extra = np.zeros((len(c["y"]), 11), dtype=np.float32)
    weight = np.ones(len(c["y"]), dtype=np.float32)
    # an array named like the model's input wins
    data = _npz(tmp_path / "named.npz", x=c["x"], extra=extra, weight=weight, y=c["y"])
    code, out, err = run(
        "eval", root, "--integrity-only", "--data", data, "--labels", "y", "--json"
    )
    assert code in (0, 1), err
    assert json.loads(out)["metrics"]["auc"] > 0.8
    # else the only array as wide as the input
    data = _npz(tmp_path / "wide.npz", feats=c["x"], extra=extra, weight=weight, y=c["y"])
    code, out, err = run(
        "eval", root, "--integrity-only", "--data", data, "--labels", "y", "--json"
    )
    assert code in (0, 1), err
    assert json.loads(out)["metrics"]["auc"] > 0.8
    # nothing fits: one line naming the model's input and the arrays, exit 2
    data = _npz(tmp_path / "bad.npz", a=c["a"], b=c["b"], extra=extra, weight=weight, y=c["y"])
    code, out, err = run("eval", root, "--integrity-only", "--data", data, "--labels", "y")
    assert code == 2 and "Traceback" not in err
    assert "x (2 values per row)" in err and "extra (11 per row)" in err and "--inputs" in err
    assert len(err.strip().splitlines()) == 1
    # explicit arrays that do not add up to the input's width: refused before the model runs
    code, out, err = run(
        "eval", root, "--integrity-only", "--data", data, "--labels", "y", "--inputs", "a,extra"
    )
    assert code == 2 and "takes 2 values per row" in err and "give 12" in err
    code, out, err = run(
        "eval", root, "--integrity-only", "--data", data, "--labels", "y", "--inputs", "a,b"
    )
    assert code in (0, 1), err


def test_eval_model_refusing_inputs_is_one_line(
    tmp_path: Path, columns: dict[str, np.ndarray]
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    logistic_onnx(src / "model.onnx", width=None)
    write_spec(
        src,
        """
        name: cms/logit-any
        version: 1.0.0
        framework: onnx
        files:
          - path: model.onnx
            role: model
        """,
    )
    root = hepbundle.build(src, tmp_path / "b").root
    c = columns
    data = _npz(tmp_path / "d.npz", a=c["a"], b=c["b"], x3=np.zeros((len(c["y"]), 3)), y=c["y"])
    code, _, err = run(
        "eval", root, "--integrity-only", "--data", data, "--labels", "y", "--inputs", "x3"
    )
    assert code == 2 and "refused the inputs" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(
        "eval", root, "--integrity-only", "--data", data, "--labels", "y", "--inputs", "a,b"
    )
    assert code in (0, 1), err


def test_eval_record_signed_with_a_grid_certificate(
    tmp_path: Path, model_bundle: tuple[Path, float]
) -> None:
    """Records take every signer `sign` takes: here an RSA grid certificate (--cert/--key), not
    only an EC key; the record verifies under a CA + subject policy."""
    from hepbundle.policy import TrustPolicy
    from hepbundle.repository.records import verify_record

    from . import pki

    root, _ = model_bundle
    repo = tmp_path / "repo"
    publish(root, repo, allow_unsigned=True)
    ca = pki.make_ca()
    ca_pem = pki.write_pem(tmp_path / "ca.pem", ca.cert)
    cert, key = pki.make_cert(ca, key=pki.rsa_key()).write(tmp_path, "usercert")
    published = repo / "bundles" / "cms" / "logit" / "1.0.0"
    code, _, err = run_eval(published, tmp_path, "--metric", "auc", "--cert", cert, "--key", key)
    assert code == 0, err
    (rec,) = list_records(repo, "cms/logit", "1.0.0", "evaluation")
    assert rec.signed
    policy = TrustPolicy.from_flags(ca=[ca_pem], subjects=["/DC=ch/DC=cern/OU=Users/CN=jdoe/*"])
    assert policy is not None
    (signer,) = verify_record(rec, policy)
    assert signer.kind == "x509" and "CN=jdoe" in signer.identity
