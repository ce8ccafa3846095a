"""The catalogue site: what `hepbundle catalog html` writes, and what a real headless Chromium
shows when it loads the site from a static web server (search, bundle page, screenshot)."""

from __future__ import annotations

import functools
import http.server
import io
import json
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tools.fixtures import fpga as fx

from hepbundle.cli import main
from hepbundle.errors import ToolError
from hepbundle.repository import append_record, publish, set_alias, yank
from hepbundle.repository.layout import catalog_file
from hepbundle.signing import KeySigner, sign
from hepbundle.site import build_site
from hepbundle.site.collect import code_link

from .conftest import write_spec
from .needs import missing
from .test_fpga_capture import EXAMPLE_HLS4ML

# taken before the autouse socket guard patches it: the browser test talks to localhost only
_REAL_CONNECT = socket.socket.connect
ARTIFACTS = Path(__file__).parent / "artifacts"

CARD = """# Tau identification RNN

## Intended use
Offline tau identification in Run 3.

<script>document.title = "pwned"</script>

[click me](javascript:alert(1))

| input | unit |
|-------|------|
| pt    | GeV  |
"""


def _png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1, 2], [0.1, 0.5, 0.4])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _publish(
    tmp: Path,
    key: Path,
    repo: Path,
    name: str,
    version: str,
    summary: str,
    tags: str,
    validity: str = "",
    *,
    auc: float = 0.93,
    extra: str = "",
) -> None:
    src = tmp / "src" / name.replace("/", "_") / version
    (src / "model").mkdir(parents=True)
    (src / "model" / "model.onnx").write_bytes(version.encode() * 500)
    (src / "MODEL_CARD.md").write_text(CARD.replace("Tau identification RNN", summary))
    if extra:  # the L1 jet tagger: an hls4ml project with its reports, weights and a plot
        prj = src / "hls4ml_prj"
        shutil.copytree(EXAMPLE_HLS4ML, prj)
        with open(prj / "hls4ml_config.yml", "a", encoding="utf-8") as f:
            f.write("    Strategy: Latency\n")
        (prj / "project.tcl").write_text('set project_name "myproject"\nset backend "vivado"\n')
        fx.vivado_reports(prj)
        (prj / "firmware" / "weights").mkdir()
        for i in range(30):
            (prj / "firmware" / "weights" / f"w{i}.txt").write_text(f"{i}, 0.5, 0.25\n")
        (src / "plots").mkdir()
        (src / "plots" / "roc.png").write_bytes(_png())
    write_spec(
        src,
        f"""
        name: {name}
        version: {version}
        summary: {summary}
        authors: ["Jane Doe <jane@cern.ch>"]
        license: Apache-2.0
        framework: onnx
        tags: [{tags}]
        model_card: MODEL_CARD.md
        metrics: {{auc: {auc}}}
        data:
          - type: rucio
            did: "mc23_13p6TeV:DAOD_PHYS.{version}"
            bytes: 1000
            adler32: "0a1b2c3d"
        code:
          path: .
          command: python train.py --epochs 20
        files:
          - path: model/model.onnx
            role: model
          - path: plots/*.png
            role: docs
            optional: true
        """
        + validity
        + extra,
    )
    _git_commit(src)
    import hepbundle

    b = hepbundle.build(src, tmp / "dist" / name / version)
    sign(b.root, KeySigner(key))
    publish(b.root, repo)


def _git_commit(src: Path) -> None:
    """Make ``src`` the training-code checkout, with a GitLab remote, all committed."""
    import subprocess

    for args in (
        ["init", "-q", "-b", "main"],
        ["remote", "add", "origin", "https://gitlab.cern.ch/atlas-tau/tauid-training.git"],
        ["add", "-A"],
        ["-c", "user.name=T", "-c", "user.email=t@cern.ch", "commit", "-q", "-m", "train"],
    ):
        subprocess.run(["git", "-C", str(src), *args], check=True)


#: the validity scope of the atlas/tauid versions (bundle-spec/validity.md), one run range each
_VALIDITY = """validity:
          runs: [{}]
          releases: "Athena 25.0.*"
"""


@pytest.fixture
def repo(tmp_path: Path, ec_key: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """atlas/tauid 1.0.0 (yanked) and 1.1.0 (prod, with an FPGA comparison record and plot),
    and cms/l1t-jets 0.3.0, all signed with ``ec_key`` under a key policy."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: 1\nrules:\n  - namespace: '*'\n    signers:\n      - key: {ec_key[1]}\n"
        "        name: Jane Doe, L1 release manager\n"
    )
    monkeypatch.setenv("HEPBUNDLE_POLICY", str(policy))
    root = tmp_path / "repo"
    tau = "Tau identification RNN"
    for name, version, summary, tags, validity in [
        (
            "atlas/tauid",
            "1.0.0",
            tau,
            "tau, rnn",
            _VALIDITY.format("{first: 450000, last: 456999}"),
        ),
        ("atlas/tauid", "1.1.0", tau, "tau, rnn", _VALIDITY.format("{first: 457000}")),
        ("cms/l1t-jets", "0.3.0", "Level-1 jet tagger for the FPGA trigger", "jets, fpga", ""),
    ]:
        _publish(
            tmp_path,
            ec_key[0],
            root,
            name,
            version,
            summary,
            tags,
            validity,
            auc=0.95 if version == "1.1.0" else 0.93,
            extra=_FIRMWARE if name == "cms/l1t-jets" else "",
        )
    set_alias("atlas/tauid@1.0.0", "prod", root)
    set_alias("atlas/tauid@1.1.0", "prod", root)
    yank("atlas/tauid@1.0.0", "wrong pile-up profile", root, force=True)
    append_record(
        root,
        "atlas/tauid",
        "1.1.0",
        "fpga-compare",
        {"maxAbsDiff": 0.0123, "agreement": {"top1": 0.998}},
        {"plots/compare.png": _png()},
    )
    append_record(root, "cms/l1t-jets", "0.3.0", "fpga-compare", _COMPARISON)
    return root


#: the firmware of cms/l1t-jets: an hls4ml project (its plot, plots/roc.png, is a file of the spec)
_FIRMWARE = """fpga:
          toolchain: hls4ml
          project: hls4ml_prj
          to: firmware/hls4ml
"""

#: what `hepbundle fpga compare` records (CompareReport.to_json): one output failing its
#: argmax gate, passing the relative-difference one
_COMPARISON = {
    "ref": "cms/l1t-jets@0.3.0",
    "emulation": "hls4ml",
    "floatModel": "model/model.onnx",
    "hardware": None,
    "inputs": {"x": "inputs.npz"},
    "manifestSha256": "0" * 64,
    "passed": False,
    "tolerance": {
        "float_atol": None,
        "hardware_atol": 0.0,
        "max_relative_diff": 0.1,
        "min_agreement": 1.0,
        "min_argmax_agreement": 0.9,
    },
    "outputs": [
        {
            "name": "layer6_out",
            "samples": 1000,
            "width": 5,
            "emulation_vs_hardware": None,
            "failures": ["float vs emulation argmax agreement 0.3880 < 0.9"],
            "float_vs_emulation": {
                "argmaxAgreement": 0.388,
                "floatRange": 0.97,
                "maxAbsDiff": 0.05,
                "maxRelativeDiff": 0.0515,
                "meanAbsDiff": 0.01,
            },
            "passed": False,
        }
    ],
}


def test_site_pages_and_index(repo: Path, tmp_path: Path) -> None:
    res = build_site(repo, tmp_path / "site")
    site = res.path
    assert (res.names, res.versions, res.pages, res.images) == (2, 3, 6, 2)
    index = json.loads((site / "index.json").read_text())
    assert [e["name"] for e in index] == ["atlas/tauid", "cms/l1t-jets"]
    tau = index[0]
    assert tau["version"] == "1.1.0" and tau["aliases"] == {"prod": "1.1.0"}
    assert tau["versions"] == ["1.1.0", "1.0.0"] and tau["signers"][0].startswith("sha256:")
    assert (site / "index.js").read_text().startswith("window.HEPBUNDLE_INDEX = [")
    page = (site / tau["url"]).read_text()
    assert "<h1>Tau identification RNN</h1>" in page  # the card, rendered
    assert "&lt;script&gt;" in page and "<script>document" not in page  # raw HTML shown as text
    assert 'href="javascript:' not in page
    assert tau["signers"][0] in page and "model/model.onnx" in page
    assert 'src="records/' in page and "0.998" in page
    assert 'id="code-link" href="https://gitlab.cern.ch/atlas-tau/tauid-training/commit/' in page
    assert "mc23_13p6TeV:DAOD_PHYS.1.1.0" in page
    assert re.search(r'<table id="validity-scope">.*<td>runs</td><td>457000–…</td>', page, re.S)
    assert "<td>releases</td><td>Athena 25.0.*</td>" in page
    cms = (site / index[1]["url"]).read_text()
    assert 'id="validity"' not in cms  # no scope recorded, no section
    _check_trigger_parts(site, tau["url"], index[1]["url"], tau["history"])
    plot = next((site / "b/atlas/tauid/1.1.0/records").rglob("compare.png"))
    assert plot.read_bytes().startswith(b"\x89PNG")
    history = (site / tau["history"]).read_text()
    assert "yanked" in history and "wrong pile-up profile" in history
    assert "(created)" in history  # the alias history: prod created on 1.0.0, then moved
    # the intervals of validity as a picture: a bar per run range, newest version on top
    svg = re.search(r'<svg id="iov-timeline".*?</svg>', history, re.S)
    assert svg, history
    bars = re.findall(
        r'<rect class="iov( yanked)?" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"', svg[0]
    )
    (new, old) = [(yanked, float(x), float(y), float(w)) for yanked, x, y, w in bars]
    assert new[2] < old[2] and old[0] == " yanked" and not new[0]  # 1.1.0 above 1.0.0 (yanked)
    assert old[1] == 0 and abs(old[1] + old[3] - new[1]) < 1  # consecutive ranges, 450000 first
    assert "1.1.0: runs 457000–…" in svg[0] and "→" in svg[0] and "run 450000" in svg[0]
    assert 'id="iov-timeline"' not in (site / index[1]["history"]).read_text()
    # every link is relative and points at a file of the site
    for html in site.rglob("*.html"):
        for href in _links(html.read_text()):
            if href.startswith(("https://", "http://")):
                continue
            assert not href.startswith("/"), f"{html}: absolute link {href}"
            target = (html.parent / href.split("#")[0]).resolve()
            assert target.is_file(), f"{html}: broken link {href}"


def _check_trigger_parts(site: Path, tau_url: str, cms_url: str, tau_history: str) -> None:
    """What a trigger group and a release manager look for (issue 14, item 11)."""
    cms = (site / cms_url).read_text()
    fw = re.search(r'<table class="facts" id="firmware-table">.*?</table>', cms, re.S)
    assert fw, "no firmware section"
    rows = dict(re.findall(r"<tr><th>(.*?)</th><td>(.*?)</td></tr>", fw[0]))
    assert rows["Part"] == "xcvu9p-flga2104-2L-e" and rows["Clock"] == "5 ns (200 MHz)"
    assert rows["Precision"] == "ap_fixed&lt;16,6&gt;" and rows["Strategy"] == "Latency"
    assert rows["Weight update"].startswith("needs a new synthesis")
    assert rows["Latency"] == "9–11 cycles (≤ 55 ns)"  # from the synthesis report
    assert rows["LUT"] == "61,234 of 1,182,240 (5.2 %)" and rows["DSP"].startswith("4,120 of")
    tau = (site / tau_url).read_text()
    assert 'id="firmware"' not in tau  # no fpga section, no firmware part
    # the signer by the name the trust root gives its key, next to the fingerprint
    assert re.search(
        r'<td id="signers"><span class="signer-name">Jane Doe, L1 release manager</span> '
        r'<span class="signer">sha256:[0-9a-f]{64}</span></td>',
        tau,
    ), tau
    index = json.loads((site / "index.json").read_text())
    assert [e["signerNames"] for e in index] == [["Jane Doe, L1 release manager"]] * 2
    history = (site / tau_history).read_text()
    assert "<strong>Jane Doe, L1 release manager</strong> sha256:" in history
    # the file a job loads, named in the snippet
    job = re.search(r'<td id="use-in-job">(.*?)</td>', cms, re.S)
    assert job and "<code>hepbundle path cms/l1t-jets@0.3.0 model/model.onnx</code>" in job[1]
    snippet = 'hepbundle.resolve("cms/l1t-jets@0.3.0").path("model/model.onnx")'
    assert f"<code>{snippet}</code>" in job[1]
    # 30 weight files are folded, the model's one file is not
    assert '<tbody class="files folded" data-role="weights">' in cms
    assert '<tbody class="files" data-role="model">' in cms and "show all</button>" in cms
    assert (
        cms.count('<tr class="file">') == 41 and '<p class="muted">41 files, ' in cms
    )  # every one
    # the Rucio reference, unresolved here (no Rucio server), says so in a badge with why
    assert '<span class="badge warn rucio" title="no Rucio server configured' in cms
    # the comparison record: a verdict, a picture of each gate against its threshold, and
    # readable rows instead of outputs[0].float_vs_emulation.argmaxAgreement
    assert '<span class="badge yanked verdict">FAILED</span>' in cms
    gates = re.findall(r'<rect class="gate (pass|fail)".*?<title>(.*?)</title>', cms)
    assert gates == [
        ("fail", "argmax agreement, float vs emulation: 0.388 (at least 0.9)"),
        ("pass", "max |diff| / float range: 0.0515 (at most 0.1)"),
    ], gates
    assert "<h4>outputs: layer6_out</h4>" in cms
    assert "<th>float vs emulation · argmax agreement</th><td>0.388</td>" in cms
    assert "outputs[0]" not in cms and "float_vs_emulation" not in cms
    assert "<th>min argmax agreement</th><td>0.9</td>" in cms
    # the plot the bundle carries, copied (its verified bytes) next to the page
    assert '<img src="files/plots/roc.png" alt="plots/roc.png">' in cms
    png = site / Path(cms_url).parent / "files" / "plots" / "roc.png"
    assert png.read_bytes().startswith(b"\x89PNG")
    # metrics across the versions of a name: one point per version, oldest left
    history = (site / tau_history).read_text()
    chart = re.search(r'<svg class="metric".*?</svg>', history, re.S)
    assert chart and 'aria-label="auc across versions of atlas/tauid"' in chart[0]
    points = re.findall(r'cx="([\d.]+)" cy="([\d.]+)".*?<title>(.*?)</title>', chart[0])
    assert [t for _, _, t in points] == ["1.0.0: 0.93", "1.1.0: 0.95"]
    assert float(points[0][0]) < float(points[1][0]) and float(points[0][1]) > float(points[1][1])


def _links(text: str) -> list[str]:
    import re

    return re.findall(r'(?:href|src)="([^"]+)"', text)


def test_regenerate_replaces_the_site_and_refuses_foreign_dirs(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(repo, out)
    first = _tree(out)
    (out / "stale.html").write_text("old")
    build_site(repo, out)
    assert not (out / "stale.html").exists()
    assert _tree(out) == first  # deterministic: same catalogue, same bytes
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site.")]  # no leftovers
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(ToolError, match="did not generate"):
        build_site(repo, foreign)
    assert (foreign / "keep.txt").read_text() == "mine"


def test_a_version_that_differs_from_its_catalogue_record_is_flagged(
    repo: Path, tmp_path: Path
) -> None:
    cat_file = catalog_file(repo, "cms/l1t-jets")
    cat = json.loads(cat_file.read_text())
    cat["versions"]["0.3.0"]["manifestSha256"] = "0" * 64
    cat_file.write_text(json.dumps(cat))
    site = build_site(repo, tmp_path / "site").path
    page = (site / "b/cms/l1t-jets/0.3.0/index.html").read_text()
    assert "differs from the catalogue" in page
    assert "<h1>Level-1 jet tagger" not in page and "is not shown" in page  # no unchecked card
    assert (
        "<h1>Tau identification RNN</h1>" in (site / "b/atlas/tauid/1.1.0/index.html").read_text()
    )


@pytest.mark.parametrize(
    ("remote", "link"),
    [
        (
            "https://gitlab.cern.ch/atlas-tau/training.git",
            "https://gitlab.cern.ch/atlas-tau/training",
        ),
        ("ssh://git@gitlab.cern.ch:7999/cms-l1t/jets.git", "https://gitlab.cern.ch/cms-l1t/jets"),
        ("git@github.com:hep/tagger.git", "https://github.com/hep/tagger"),
        ("https://github.com/hep/tagger/", "https://github.com/hep/tagger"),
        ("/eos/user/j/jdoe/training", None),
        ("../training", None),
        ('https://gitlab.cern.ch/a/b"><script>', None),
    ],
)
def test_code_link(remote: str, link: str | None) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    got = code_link({"remote": remote, "commit": commit})
    assert got == (None if link is None else f"{link}/commit/{commit}")
    assert code_link({"remote": remote, "commit": "HEAD; rm -rf"}) is None


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_cli_catalog_html(repo: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(
        main, ["catalog", "html", "--repo", str(repo), "-o", str(tmp_path / "s"), "--json"]
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["versions"] == 3
    bad = CliRunner().invoke(main, ["catalog", "html", "--repo", str(tmp_path), "-o", "x"])
    assert bad.exit_code == 2 and "not a hepbundle repository" in bad.output
    assert "Traceback" not in bad.output


# --- a real browser -------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lift the unit-test socket guard: the browser test talks to 127.0.0.1 (server, driver)."""
    monkeypatch.setattr(socket.socket, "connect", _REAL_CONNECT)


@pytest.fixture
def served(localhost: None, repo: Path, tmp_path: Path) -> Iterator[str]:
    """The generated site behind http.server on 127.0.0.1; yields its base URL."""
    site = build_site(repo, tmp_path / "site").path
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def browser(localhost: None, tmp_path: Path) -> Iterator[Any]:
    """Debian's headless Chromium through its chromedriver (skips only where they are absent)."""
    if not (CHROMIUM and CHROMEDRIVER):
        missing(
            "Debian's chromium and chromium-driver are not installed "
            "(tools/ci/install-system-deps.sh installs them)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.integration
@pytest.mark.slow
def test_site_in_headless_chromium(browser: Any, served: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    drv = browser
    drv.get(served + "index.html")
    wait = WebDriverWait(drv, 10)

    def names() -> list[str]:
        return [e.text for e in drv.find_elements(By.CSS_SELECTOR, "#results .result-name")]

    wait.until(lambda _: len(names()) == 2)
    assert names() == ["atlas/tauid@1.1.0", "cms/l1t-jets@0.3.0"]
    box = drv.find_element(By.ID, "search")
    box.send_keys("fpga jets")
    wait.until(lambda _: names() == ["cms/l1t-jets@0.3.0"])
    assert drv.find_element(By.ID, "count").text == "1 of 2 models"
    box.clear()
    box.send_keys("tau prod")
    wait.until(lambda _: names() == ["atlas/tauid@1.1.0"])
    box.clear()
    box.send_keys("release manager")  # the signer's name, from the trust root
    wait.until(lambda _: names() == ["atlas/tauid@1.1.0", "cms/l1t-jets@0.3.0"])
    box.clear()
    box.send_keys("no-such-model")
    wait.until(lambda _: names() == [])

    # from disk too: the index ships as index.js because browsers refuse fetch() under file://
    drv.get((tmp_path / "site" / "index.html").as_uri() + "?q=jets")
    wait.until(lambda _: names() == ["cms/l1t-jets@0.3.0"])

    drv.get(served + "index.html?q=tau")
    wait.until(lambda _: names() == ["atlas/tauid@1.1.0"])
    drv.find_element(By.LINK_TEXT, "atlas/tauid@1.1.0").click()
    wait.until(ec.presence_of_element_located((By.ID, "model-card")))
    assert drv.title.startswith("atlas/tauid@1.1.0")  # the card's <script> did not run
    card = drv.find_element(By.CSS_SELECTOR, "#model-card article")
    assert card.find_element(By.TAG_NAME, "h1").text == "Tau identification RNN"
    assert "<script>" in card.text  # shown as text
    rows = drv.find_elements(By.CSS_SELECTOR, "#files-table tr.file")
    table = {
        c[0]: c[1:] for c in ([td.text for td in r.find_elements(By.TAG_NAME, "td")] for r in rows)
    }
    assert table["MODEL_CARD.md"][0] == "docs"
    role, size, sha = table["model/model.onnx"]
    assert (role, size) == ("model", "2.4 KiB") and len(sha) == 64
    signer = drv.find_element(By.CSS_SELECTOR, "#signers .signer").text
    assert signer.startswith("sha256:")
    name = drv.find_element(By.CSS_SELECTOR, "#signers .signer-name").text
    assert name == "Jane Doe, L1 release manager"
    img = drv.find_element(By.CSS_SELECTOR, "#records img")
    assert drv.execute_script("return arguments[0].naturalWidth", img) > 0  # the plot loaded

    # the firmware page as a trigger group sees it (issue 14, item 11)
    drv.get(served + "b/cms/l1t-jets/0.3.0/index.html")
    wait.until(ec.presence_of_element_located((By.ID, "firmware-table")))
    fw = {
        r.find_element(By.TAG_NAME, "th").text: r.find_element(By.TAG_NAME, "td").text
        for r in drv.find_elements(By.CSS_SELECTOR, "#firmware-table tr")
    }
    assert fw["Clock"] == "5 ns (200 MHz)" and fw["Precision"] == "ap_fixed<16,6>"
    assert fw["Latency"].startswith("9–11 cycles") and fw["LUT"].startswith("61,234 of")
    job = drv.find_element(By.ID, "use-in-job").text
    assert "hepbundle path cms/l1t-jets@0.3.0 model/model.onnx" in job
    # the 30 weight files: 5 shown, the rest folded until "show all" is clicked
    weights = drv.find_elements(By.CSS_SELECTOR, 'tbody[data-role="weights"] tr.file')
    assert len(weights) == 30 and sum(w.is_displayed() for w in weights) == 5
    assert all(
        r.is_displayed() for r in drv.find_elements(By.CSS_SELECTOR, 'tbody[data-role="model"] tr')
    )
    unfold = drv.find_element(By.CSS_SELECTOR, 'tbody[data-role="weights"] button.unfold')
    unfold.click()
    wait.until(lambda _: all(w.is_displayed() for w in weights))
    assert unfold.text == "fold"
    badge = drv.find_element(By.CSS_SELECTOR, "#data .badge.rucio")
    assert badge.text == "not resolved by Rucio" and badge.is_displayed()
    verdict = drv.find_element(By.CSS_SELECTOR, "#records .verdict")
    assert verdict.text == "FAILED"
    bars = drv.find_elements(By.CSS_SELECTOR, "#records svg.gates rect.gate")
    widths = [b.rect["width"] for b in bars]  # drawn: argmax 0.388, relative diff 0.0515
    assert len(widths) == 2 and widths[0] > widths[1] > 0, widths
    assert len(drv.find_elements(By.CSS_SELECTOR, "#records svg.gates line.threshold")) == 2
    cells = [c.text for c in drv.find_elements(By.CSS_SELECTOR, "#records .record-table th")]
    assert "float vs emulation · argmax agreement" in cells
    plot = drv.find_element(By.CSS_SELECTOR, "#plots img")
    assert drv.execute_script("return arguments[0].naturalWidth", plot) > 0
    shot = tmp_path / "firmware-page.png"
    assert drv.save_screenshot(str(shot))
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "site-firmware-page.png")
    drv.get(served + "b/atlas/tauid/index.html")
    points = drv.find_elements(By.CSS_SELECTOR, "svg.metric circle.point")
    assert len(points) == 2 and points[0].rect["y"] > points[1].rect["y"]  # 0.93 then 0.95
    drv.get(served + "b/atlas/tauid/1.1.0/index.html")

    shot = tmp_path / "bundle-page.png"
    assert drv.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG")
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / "site-bundle-page.png")

    drv.find_element(By.LINK_TEXT, "All versions of atlas/tauid").click()
    wait.until(ec.presence_of_element_located((By.ID, "versions")))
    yanked = drv.find_element(By.CSS_SELECTOR, "#versions tr.yanked").text
    assert "1.0.0" in yanked and "wrong pile-up profile" in yanked
