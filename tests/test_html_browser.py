"""The HTML report in a real headless browser (Debian's ``chromium``): the rendered DOM holds
the plots with their data points, and a screenshot shows the plot colours.

Chromium is a system package, not a pip dependency: without it these tests are skipped, except
where ``ARCHLINT_BROWSER_REQUIRED=1`` is set (``.ci/run`` sets it and installs ``chromium`` with
apt), where they fail.
Set ``ARCHLINT_SCREENSHOT=/some/file.png`` to keep the screenshot for a look.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from archlint import lint

ROOT = Path(__file__).resolve().parent.parent
MODEL = "fixtures/models/example_cnn_dynamo.onnx"
BROWSER = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
REQUIRED = os.environ.get("ARCHLINT_BROWSER_REQUIRED") == "1"
pytestmark = pytest.mark.skipif(BROWSER is None and not REQUIRED,
                                reason="no chromium on PATH (apt-get install -y chromium)")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    if BROWSER is None:
        pytest.fail("no chromium on PATH, and ARCHLINT_BROWSER_REQUIRED=1 requires it (apt-get install -y chromium)")
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("html")
    target = folder / "report.html"
    result = subprocess.run([sys.executable, "-c", "from archlint.cli import run; run()", MODEL,
                             "--format", "html", "--output", str(target)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    return target, lint(ROOT / MODEL)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_rendered_dom_has_the_plots_and_points(page, tmp_path):
    target, report = page
    result = chromium(tmp_path, "--dump-dom", target.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = _Tags()
    dom.feed(result.stdout)
    svgs = [a for t, a in dom.tags if t == "svg"]
    assert [a.get("data-plot") for a in svgs] == ["field", "macs"]
    circles = [a for t, a in dom.tags if t == "circle"]
    rf = [a["data-layer"] for a in circles if "pt-rf" in a.get("class", "")]
    assert rf == [r.name for r in report.layers if r.receptive_field]
    fmap = [a["data-layer"] for a in circles if "pt-fmap" in a.get("class", "")]
    assert fmap == [r.name for r in report.layers if r.output_shape and len(r.output_shape) >= 3]
    bars = [a for t, a in dom.tags if t == "g" and a.get("class") == "layer-bar"]
    assert [a["data-layer"] for a in bars] == [r.name for r in report.layers if r.macs > 0]
    saved_rects = [a for t, a in dom.tags if t == "rect" and a.get("class") == "bar saved"]
    assert len(saved_rects) == len({f.layer for f in report.findings if f.data.get("macs_saved")}) > 0
    # the browser laid out real geometry: coordinates are numbers inside the view box
    for a in circles:
        assert 0 <= float(a["cx"]) <= 960 and 0 <= float(a["cy"]) <= 300
    rows = [a for t, a in dom.tags if t == "tr" and re.fullmatch(r"r0-L\d+", a.get("id", ""))]
    assert len(rows) == len(report.layers)


def test_screenshot_shows_the_plots(page, tmp_path):
    from PIL import Image
    target, report = page
    shot = Path(os.environ.get("ARCHLINT_SCREENSHOT") or tmp_path / "report.png")
    result = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1400", target.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1400)
    colors = {rgb for _, rgb in image.getcolors(maxcolors=1 << 20)}

    def near(target_rgb, tol=6):
        return any(all(abs(c - t) <= tol for c, t in zip(rgb, target_rgb)) for rgb in colors)

    assert near((0x1f, 0x77, 0xb4)), "receptive-field points not painted"
    assert near((0x2c, 0xa0, 0x2c)), "feature-map points not painted"
    assert near((0x8f, 0xa8, 0xc8)), "MAC bars not painted"
    assert near((0xe6, 0x55, 0x0d)), "saved-MAC bars not painted"


class _DefinedAt(HTMLParser):
    """Texts of the ``code.defined-at`` elements of the findings table, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.in_findings = self.in_code = False
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.in_findings = attrs.get("class") == "findings"
        elif tag == "code" and self.in_findings and attrs.get("class") == "defined-at":
            self.in_code = True
            self.texts.append("")

    def handle_endtag(self, tag):
        if tag == "code":
            self.in_code = False
        elif tag == "table":
            self.in_findings = False

    def handle_data(self, data):
        if self.in_code:
            self.texts[-1] += data


def test_rendered_findings_show_the_definition_line(page, tmp_path):
    target, report = page
    result = chromium(tmp_path, "--dump-dom", target.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    parser = _DefinedAt()
    parser.feed(result.stdout)
    expected = []
    for f in report.findings:
        if f.defined_at:
            path, line = f.defined_at.file, f.defined_at.line
            full = Path(ROOT, path).resolve()
            shown = full.relative_to(ROOT).as_posix() if ROOT in full.parents else full.as_posix()
            expected.append(f"{shown}:{line}")
    assert expected and parser.texts == expected
