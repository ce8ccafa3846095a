"""The core commands through click's CliRunner: output, JSON, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import hepbundle
from hepbundle.cli import main


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def test_init_build_verify_show(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    code, out, _ = run("init", tmp_path / "m", "--name", "cms/btag")
    assert code == 0 and "hepbundle.yaml" in out
    assert (tmp_path / "m" / "model").is_dir()  # the folder the starter's files: entry names
    (tmp_path / "m" / "model" / "model.onnx").write_bytes(b"\x08\x01" * 100)
    # the unedited template is refused, field by field, before anything is written
    spec, card = tmp_path / "m" / "hepbundle.yaml", tmp_path / "m" / "MODEL_CARD.md"
    code, _, err = run("build", tmp_path / "m", "-o", tmp_path / "b")
    assert code == 2 and "summary: still the template's" in err and not (tmp_path / "b").exists()
    spec.write_text(spec.read_text().replace("One line saying what this model does.", "B-tag"))
    code, _, err = run("build", tmp_path / "m", "-o", tmp_path / "b")
    assert code == 2 and "'Your Name' is the template's placeholder" in err
    text = spec.read_text().replace("Your Name", "Jane Doe").replace("you@cern.ch", "j@cern.ch")
    spec.write_text(text)
    code, _, err = run("build", tmp_path / "m", "-o", tmp_path / "b", "--check")
    assert code == 0 and "MODEL_CARD.md is still the unedited template" in caplog.text  # warns
    caplog.clear()
    card.write_text(card.read_text().replace("What the model is for", "Tagging b-jets"))
    code, out, err = run("build", tmp_path / "m", "-o", tmp_path / "b", "--json")
    assert code == 0, err
    assert "unedited template" not in caplog.text
    res = json.loads(out)
    assert res["ref"] == "cms/btag@0.1.0" and res["files"] == 2
    assert run("key", "generate", "-o", tmp_path / "k.pem")[0] == 0
    assert run("sign", tmp_path / "b", "--key", tmp_path / "k.pem")[0] == 0
    code, out, _ = run("verify", tmp_path / "b", "--key", tmp_path / "k.pub.pem")
    assert code == 0 and out.startswith("OK cms/btag@0.1.0")
    code, out, _ = run("show", tmp_path / "b")
    assert code == 0 and "model/model.onnx" in out and "Intended use" in out


def test_init_with_summary_and_authors_builds_at_once(tmp_path: Path) -> None:
    code, _, _ = run(
        "init", tmp_path / "m", "--name", "cms/btag", "--summary", "B-tagging: a DNN",
        "--author", "Jane Doe <jane@cern.ch>", "--author", "Joe Bloggs <joe@cern.ch>",
    )  # fmt: skip
    assert code == 0
    (tmp_path / "m" / "model" / "model.onnx").write_bytes(b"\x08\x01" * 100)
    code, _, err = run("build", tmp_path / "m", "-o", tmp_path / "b", "--json")
    assert code == 0, err
    meta = json.loads((tmp_path / "b" / "hepbundle.json").read_text())
    assert meta["summary"] == "B-tagging: a DNN"
    assert [a["name"] for a in meta["authors"]] == ["Jane Doe", "Joe Bloggs"]


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    assert run("init", tmp_path)[0] == 0
    code, _, err = run("init", tmp_path)
    assert code == 2 and "already exists" in err


def test_verify_failure_exit_1_and_json(built: hepbundle.Bundle) -> None:
    (built.root / "model" / "weights.bin").write_bytes(b"evil")
    # unsigned: integrity checks only, asked for by name
    code, _, err = run("verify", built.root, "--integrity-only")
    assert code == 1
    assert err.count("\n") == 1 and "modified model/weights.bin" in err
    code, out, _ = run("verify", built.root, "--integrity-only", "--json")
    assert code == 1 and json.loads(out)["modified"] == ["model/weights.bin"]
    assert run("verify", built.root, "--integrity-only", "--file", "model/model.onnx")[0] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["verify", "/nonexistent/bundle"], "does not exist"),
        (["build", "/nonexistent/hepbundle.yaml"], "does not exist"),
        (["show", "/"], "hepbundle.json is missing"),
    ],
)
def test_bad_input_one_line_exit_nonzero(args: list[str], message: str) -> None:
    code, _, err = run(*args)
    assert code != 0
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_usage_error_exit_2() -> None:
    assert run("verify")[0] == 2


def test_build_check_lists_and_writes_nothing(model_dir: Path, tmp_path: Path) -> None:
    code, out, err = run("build", model_dir, "--check", "-o", tmp_path / "never")
    assert code == 0, err
    assert out.startswith("spec OK: atlas/tauid@1.2.0 would pack 3 files")
    assert "model/model.onnx" in out and "weights" in out
    assert not (tmp_path / "never").exists()
    code, out, _ = run("build", model_dir, "--check", "--json")
    assert {f["path"] for f in json.loads(out)["files"]} == {
        "MODEL_CARD.md",
        "model/model.onnx",
        "model/weights.bin",
    }
    (model_dir / "model" / "weights.bin").unlink()
    code, _, err = run("build", model_dir, "--check")
    assert code == 2 and "matches no file" in err


def test_show_summarises_long_roles_and_the_fpga_section(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parents[1] / "tools" / "fixtures"))
    from fpga import finn_build  # a realistic FINN build_dataflow output

    from .conftest import write_spec

    d = tmp_path / "src"
    finn_build(d / "finn_out")
    (d / "model.onnx").write_bytes(b"onnx")
    (d / "weights").mkdir()
    for i in range(20):
        (d / "weights" / f"w{i:02d}.txt").write_text(str(i))
    write_spec(
        d,
        "name: cms-l1t/t\nversion: 1.0.0\nfiles:\n  - {path: model.onnx, role: model}\n"
        "  - {path: weights, role: weights}\nfpga: {toolchain: finn, project: finn_out}\n",
    )
    b = hepbundle.build(d, tmp_path / "b")
    code, out, _ = run("show", b.root)
    assert code == 0 and "fpga\n  firmware  finn" in out
    assert "weights/w11.txt" in out and "weights/w12.txt" not in out
    assert "… and 8 more (" in out and "--all-files lists them" in out
    code, full, _ = run("show", b.root, "--all-files")
    assert code == 0 and "--all-files lists them" not in full
    assert all(f.path in full for f in b.manifest.files)


def test_json_failure_is_one_object_and_typos_get_suggestions(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["show", "atlas/nope@1.0.0", "--repo", str(tmp_path), "--json"])
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["ok"] is False and doc["error"] == "NotFoundError" and doc["exitCode"] == 2
    assert "atlas/nope" in doc["message"]
    assert "hepbundle: error:" in r.stderr  # people still get the one line
    r = CliRunner().invoke(main, ["pubish"])
    assert r.exit_code == 2 and "did you mean 'publish'?" in r.stderr
