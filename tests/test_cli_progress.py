"""Progress: bars count bytes and throughput, say what publish is doing after the last byte, and
leave one summary line, never a stale percentage (issue 14, item 10)."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from pathlib import Path

from hepbundle.cli._common import ProgressBar
from hepbundle.repository import publish_bytes, publish_many

from .repo_fixtures import make_bundle

MiB = 1 << 20


def test_bar_shows_bytes_throughput_and_ends_with_a_summary_line() -> None:
    out = io.StringIO()
    bar = ProgressBar(10 * MiB, "verifying", out, after="writing the catalogue")
    bar.update(4 * MiB)
    first = out.getvalue().split("\r")[-1]
    assert first.startswith("verifying [#########") and "4.0 MiB/10.0 MiB" in first, first
    assert "/s  ETA " in first and "%" not in first, first
    bar.stage("copying atlas/x@1.0.0")
    assert out.getvalue().split("\r")[-1].startswith("copying atlas/x@1.0.0 ["), out.getvalue()
    bar.update(6 * MiB)  # every byte counted: the bar says what is left, not "100%"
    assert out.getvalue().split("\r")[-1].rstrip().endswith("10.0 MiB  writing the catalogue…")
    bar.close()
    text = out.getvalue()
    last = text.split("\r")[-1]
    assert last.startswith("verifying: done, 10.0 MiB in ") and last.rstrip().endswith("/s)"), last
    assert text.endswith("\n") and text.count("\n") == 1
    # the summary is padded over the longer bar it replaces: nothing of it stays on screen
    drawn = text.split("\r")[-2]
    assert len(last.rstrip("\n")) >= len(drawn.rstrip()), (last, drawn)


def test_publish_reports_publish_bytes_and_its_stages(tmp_path: Path) -> None:
    """The callback gets exactly the total the CLI sizes the bar with (the local backend
    verifies while it copies: one pass; the tarball one verifies, then copies: two)."""
    b = make_bundle(tmp_path)
    payload = sum(f.size for f in b.manifest.files)
    copied = payload + (b.root / "hepbundle.json").stat().st_size  # unsigned: no .sig
    assert publish_bytes([b], "local") == publish_bytes([b], "cvmfs") == copied
    assert publish_bytes([b], "tarball") == payload + copied
    counted: list[int] = []
    stages: list[str] = []
    repo = tmp_path / "repo"
    publish_many([b], repo, allow_unsigned=True, progress=counted.append, stage=stages.append)
    assert sum(counted) == publish_bytes([b], "local")
    assert stages == [f"verifying {b.ref}", f"publishing into {repo} (local)"], stages


def test_cli_publish_on_a_terminal(tmp_path: Path) -> None:
    """`hepbundle publish` of a 65 MiB bundle with stderr on a terminal: stage words, bytes
    and throughput, then one summary line."""
    b = make_bundle(tmp_path, payload=os.urandom(65 * MiB))
    leader, follower = pty.openpty()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hepbundle",
            "publish",
            str(b.root),
            "--repo",
            str(tmp_path / "repo"),
            "--allow-unsigned",
        ],
        stdout=subprocess.PIPE,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    stdout, _ = proc.communicate(timeout=120)
    os.close(leader)
    err = b"".join(chunks).decode()
    assert proc.returncode == 0, err
    assert stdout.decode().startswith(f"published {b.ref}")
    frames = [f for f in err.replace("\r\n", "\n").split("\r") if f.strip()]
    assert any(f.startswith(f"verifying {b.ref}") for f in frames), frames
    # the bar counts bytes of the total and gives a throughput (the copy may be too fast for a
    # frame between the first and the last: those two are always drawn)
    assert any("/65.0 MiB" in f and "/s  ETA " in f for f in frames), frames
    assert "%" not in err
    assert frames[-1].startswith(f"publishing {b.ref}: done, 65.0 MiB in "), frames[-1]
    assert frames[-1].rstrip().endswith("/s)"), frames[-1]
