"""--diagram: the state flow drawn as SVG, checked as a structure (lanes, cells, arrows, hover
text, nothing fetched from a network) and in a real browser (headless Chromium, which .ci/run
installs): every lane and arrow rendered, nothing overlapping the title, no blank render."""

import json
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree

import pytest
from click.testing import CliRunner

from lstm_inspect.cli import main

SVG = "{http://www.w3.org/2000/svg}"
STATEFUL = ["--shape", "12,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--epochs", "2", "--predict-samples",
            "4", "--no-evidence", "--backend", "torch"]
MANUAL_EPOCHS = ["--shape", "8,5,1", "--batch", "4", "--stateful", "--backend", "torch", "--no-evidence", "--calls",
                 "(fit(batch_size=4, shuffle=False), reset_state()) * 3; predict(3, batch_size=1)"]
THOUSAND_SLOTS = ["--shape", "5000,5,1", "--batch", "1000", "--stateful", "--shuffle", "batch", "--dry-run",
                  "--backend", "torch"]


def drawn(arguments, tmp_path):
    path = tmp_path / "flow.svg"
    result = CliRunner().invoke(main, [*arguments, "--diagram", str(path), "--format", "json"])
    assert result.exit_code in (0, 3), result.output
    return path.read_text(), json.loads(result.stdout)


def cells(tree):
    return [group for group in tree.iter(f"{SVG}g") if group.find(f"{SVG}rect") is not None]


def arrows(tree):
    return [path for path in tree.iter(f"{SVG}path") if path.get("class") in ("continued", "unrelated")
            and not path.get("d", "").startswith("M8,")]  # the legend's start at x=8


@pytest.mark.parametrize("arguments, lanes, steps", [(STATEFUL, 4, 7), (MANUAL_EPOCHS, 4, 7),
                                                      (THOUSAND_SLOTS, 5, 5)])
def test_every_lane_cell_and_arrow_is_drawn_with_its_hover_text(tmp_path, arguments, lanes, steps):
    text, report = drawn(arguments, tmp_path)
    tree = ElementTree.fromstring(text)
    labels = [element.text for element in tree.iter(f"{SVG}text") if (element.text or "").startswith("slot")]
    assert len(labels) == lanes
    drawn_cells = cells(tree)
    assert len(drawn_cells) == lanes * steps
    assert all(group.find(f"{SVG}title").text.startswith("step ") for group in drawn_cells)
    carried = [cell for cell in drawn_cells if "starts from the final state" in cell.find(f"{SVG}title").text]
    assert len(arrows(tree)) == len(carried)
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained
    assert report["summary"]["steps"] == steps


def test_continuations_and_unrelated_carries_are_drawn_apart(tmp_path):
    kinds = [path.get("class") for path in arrows(ElementTree.fromstring(drawn(STATEFUL, tmp_path)[0]))]
    # Within an epoch slot i continues its data; into the second epoch and into predict it does not.
    assert (kinds.count("continued"), kinds.count("unrelated")) == (4 * 4, 2 * 4)


def test_repeated_calls_are_told_apart_and_the_raising_step_is_marked(tmp_path):
    text, _ = drawn(MANUAL_EPOCHS, tmp_path)
    assert "train#2 e0" in text and "train#3 e0" in text
    assert text.count('class="raises"') >= 4 and "Keras raises here (ValueError)" in text
    assert text.count('class="zeros"') == 3 * 4 + 1  # each fit's first batch, and the legend


def test_a_long_run_folds_its_middle_and_says_so(tmp_path):
    text, _ = drawn(["--shape", "400,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--dry-run",
                     "--backend", "torch"], tmp_path)
    assert "… 76" in text and "76 steps folded" in text
    assert len(cells(ElementTree.fromstring(text))) == 4 * 24


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PAGE = """<!doctype html><html><body style="margin:0">{svg}
<pre id="found"></pre><script>
const svg = document.querySelector("svg"), box = svg.getBoundingClientRect();
const title = [...svg.querySelectorAll("text.title")].map(t => t.getBoundingClientRect());
const rest = [...svg.querySelectorAll("text:not(.title), rect")].map(t => t.getBoundingClientRect());
const below = Math.max(...title.map(t => t.bottom));
const found = {{
  lanes: [...svg.querySelectorAll("text")].filter(t => t.textContent.startsWith("slot")).length,
  arrows: [...svg.querySelectorAll("path.continued, path.unrelated")].filter(p => p.getTotalLength() > 0).length,
  overlapping: rest.filter(r => r.top < below && r.width > 0).length,
  outside: [...title, ...rest].filter(r => r.right > box.right + 0.5 || r.bottom > box.bottom + 0.5).length,
}};
document.getElementById("found").textContent = JSON.stringify(found);
</script></body></html>"""


def chromium(*arguments):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", *arguments],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (.ci/run installs Debian's)")
@pytest.mark.parametrize("arguments", [STATEFUL, MANUAL_EPOCHS, THOUSAND_SLOTS], ids=["stateful", "manual epochs",
                                                                                      "1,000 slots"])
def test_chromium_renders_every_lane_and_arrow_and_nothing_overlaps_the_title(tmp_path, arguments):
    text, _ = drawn(arguments, tmp_path)
    tree = ElementTree.fromstring(text)
    page = tmp_path / "page.html"
    page.write_text(PAGE.format(svg=text))
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", page.as_uri()).stdout
    found = json.loads(dom.split('<pre id="found">')[1].split("</pre>")[0])
    legend = 2
    assert found["lanes"] == len([e for e in tree.iter(f"{SVG}text") if (e.text or "").startswith("slot")])
    assert found["arrows"] == len(arrows(tree)) + legend
    assert found["overlapping"] == 0 and found["outside"] == 0
    width, height = int(tree.get("width")), int(tree.get("height"))
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", f"--window-size={width},{height}", (tmp_path / "flow.svg").as_uri())
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20]) == width
    assert len(png) > 8000  # a blank render of this size compresses to far less


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (.ci/run installs Debian's)")
def test_chromium_renders_the_html_page_the_diagram_then_real_tables(tmp_path):
    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, [*STATEFUL, "--html", str(page)])
    assert result.exit_code == 0
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", """<pre id="found"></pre><script>
document.getElementById("found").textContent = JSON.stringify({
  diagrams: document.querySelectorAll("svg").length, tables: document.querySelectorAll("table").length,
  rows: document.querySelectorAll("table:first-of-type tbody tr").length,
  pre: document.querySelectorAll("pre").length - 1, verdict: document.body.innerText.includes("Verdict:")});
</script></body>"""))
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri()).stdout
    found = json.loads(dom.split('<pre id="found">')[1].split("</pre>")[0])
    # The diagram, then the steps and the advice as tables (no evidence, so no claims), no <pre> capture.
    assert found == {"diagrams": 1, "tables": 2, "rows": 7, "pre": 0, "verdict": True}
