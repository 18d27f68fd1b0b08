"""The report in a real browser: headless Chromium loads report.html.

A tiny demo run writes a real report; a copy of it with a small script appended
is opened in headless Chromium, which writes what the page holds (its title,
headings, and for every image its alt text and whether it decoded) into the
DOM that ``--dump-dom`` prints. A screenshot is taken too. The test skips where
no Chromium or Chrome is installed (CI installs Debian's ``chromium``).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest

from galaxysim.app.cli import main

# Every test here trains networks or builds something large: not in the fast subset.
pytestmark = pytest.mark.slow

TINY = [
    "--n-samples",
    "60",
    "--image-size",
    "16",
    "--n-stages",
    "1",
    "--n-blocks",
    "1",
    "--base-channels",
    "4",
    "--max-epochs",
    "1",
    "--flow-max-epochs",
    "2",
    "--n-components",
    "4",
    "--quiet",
]

HEADINGS = [
    "Summary",
    "Query and its most similar galaxies",
    "Embedding map",
    "Training curves",
    "Autoencoder output of galaxies and of the query",
    "Generated galaxies",
]

# Writes a JSON summary of the loaded page into <pre id="probe">.
PROBE = """
<pre id="probe"></pre>
<script>
window.addEventListener("load", function () {
  function texts(selector) {
    return Array.prototype.map.call(document.querySelectorAll(selector),
                                    function (node) { return node.textContent.trim(); });
  }
  var images = Array.prototype.map.call(document.images, function (image) {
    return {alt: image.getAttribute("alt"), complete: image.complete,
            naturalWidth: image.naturalWidth};
  });
  document.getElementById("probe").textContent = JSON.stringify(
    {title: document.title, h1: texts("h1"), h2: texts("h2"), images: images});
});
</script>
"""

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium, chromium-browser or google-chrome on PATH")


def _run_browser(browser: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [browser, *BROWSER_FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture(scope="module")
def browser():
    return _browser()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "demo"
    assert main(["demo", "--out", str(out), *TINY]) == 0
    return out / "report.html"


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.alts = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.alts.append(dict(attrs).get("alt"))


def test_every_img_tag_has_an_alt_text(report):
    """The same check without a browser, so that it runs everywhere."""
    parser = _Images()
    parser.feed(report.read_text(encoding="utf-8"))
    assert len(parser.alts) >= 4 + 1 + 50
    assert all(alt and alt.strip() and not alt.endswith(".png") for alt in parser.alts), parser.alts
    assert "The query galaxy" in parser.alts
    assert any(alt.startswith("Galaxy ranked 1, ") for alt in parser.alts)


def test_every_image_loads_with_an_alt_text(browser, report, tmp_path):
    page = tmp_path / "probed.html"
    text = report.read_text(encoding="utf-8")
    page.write_text(text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    result = _run_browser(browser, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert found and found.group(1), "the probe script did not run"
    probe = json.loads(html.unescape(found.group(1)))

    assert probe["title"] == "galaxysim demo: the Milky Way challenge on built-in galaxies"
    assert probe["h1"] == [probe["title"]]
    assert probe["h2"][: len(HEADINGS)] == HEADINGS
    assert re.fullmatch(r"Top \d+ of the ranking", probe["h2"][-1])
    images = probe["images"]
    assert len(images) >= 4 + 1 + 50  # the figures, the query, a thumbnail per row
    for image in images:
        assert image["complete"] and image["naturalWidth"] > 0, image
        assert image["alt"] and image["alt"].strip(), image
        assert not image["alt"].endswith(".png"), image  # a description, not a file name
    assert len({image["alt"] for image in images[:4]}) == 4


def test_screenshot(browser, report, tmp_path):
    shot = tmp_path / "report.png"
    result = _run_browser(
        browser,
        f"--screenshot={shot}",
        "--window-size=1200,2400",
        "--hide-scrollbars",
        report.as_uri(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 2400)
    assert len(data) > 50_000  # a page of figures, not a blank one

    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").resize((120, 240)).getcolors(maxcolors=120 * 240)
    assert colours is None or len(colours) > 50
