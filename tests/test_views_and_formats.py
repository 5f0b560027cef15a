"""The timeline view, the markdown and CSV formats, and the SVG/HTML exports."""

import csv
import io
import os
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from click.testing import CliRunner

from lstm_inspect.cli import main
from lstm_inspect.views.files import write_atomically
from lstm_inspect.views.formats import CSV_COLUMNS

GOLDEN = Path(__file__).parent / "golden"
STATEFUL = ["--shape", "12,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--epochs", "2"]


def invoke(*args, **kwargs):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, **kwargs)


def grid_rows(text):
    return [line for line in text.splitlines() if re.match(r"slots? \d", line)]


def test_timeline_golden(update_golden):
    result = invoke(*STATEFUL, "--view", "timeline", "--no-evidence")
    assert result.exit_code == 0
    golden = GOLDEN / "timeline.txt"
    if update_golden:
        golden.write_text(result.stdout)
    assert result.stdout == golden.read_text()


def test_timeline_shows_4_slots_by_6_steps_with_the_reset_carry_pattern():
    rows = grid_rows(invoke(*STATEFUL, "--view", "timeline", "--no-evidence").stdout)
    assert len(rows) == 4
    for row in rows:
        cells = row[28:].replace("│", "").split()
        assert cells == ["○", "─", "─", "╳", "─", "─"]
    ascii_rows = grid_rows(invoke(*STATEFUL, "--view", "timeline", "--ascii", "--no-evidence").stdout)
    assert ascii_rows[0][28:].replace("|", "").split() == ["o", "-", "-", "x", "-", "-"]
    assert all(ord(char) < 128 for row in ascii_rows for char in row)


def test_timeline_has_a_legend_and_marks_the_raising_step():
    result = invoke("--shape", "10,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--view", "timeline")
    assert result.exit_code == 3
    assert "! Keras raises here" in result.stdout and "○ reset to zeros" in result.stdout
    assert all(row[28:].split()[-1] == "!" for row in grid_rows(result.stdout))


def test_reset_policy_and_shuffle_show_in_the_grid():
    rows = grid_rows(invoke("--shape", "16,5,1", "--batch", "4", "--stateful", "--no-shuffle", "--reset",
                            "every:2", "--view", "timeline", "--no-evidence").stdout)
    assert rows[0][28:].split() == ["○", "─", "○", "─"]
    shuffled = grid_rows(invoke("--shape", "400,5,1", "--batch", "4", "--stateful", "--view", "timeline",
                                "--dry-run").stdout)
    assert "╳" in shuffled[0]


def test_a_huge_timeline_folds_to_one_screen():
    result = invoke("--shape", "1000000,20,1", "--batch", "1000", "--view", "timeline", "--dry-run")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    timeline = lines[:lines.index(next(line for line in lines if line.startswith("Advice")))]
    assert len(timeline) <= 30 and max(len(line) for line in lines) <= 100  # the advice table follows it
    assert any(line.startswith("slots 3-998 (same pattern)") for line in lines)
    assert "985 of 1,000 steps hidden" in result.stdout or "steps hidden" in result.stdout


@pytest.mark.parametrize("columns", [20, 400])
def test_timeline_at_any_width(columns):
    result = invoke(*STATEFUL, "--view", "timeline", env={"COLUMNS": str(columns)})
    rows = grid_rows(result.stdout)
    assert result.exit_code == 0 and len(rows) == 4
    assert all(len(row) <= columns for row in rows)


def test_markdown_is_a_github_table():
    text = invoke(*STATEFUL, "--format", "markdown", "--no-evidence").stdout
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert table[0] == "| step | call | samples | slots started from | max \\|h0\\| | ok |"
    assert table[1].startswith("|---:|")
    assert len(table) == 2 + 6
    assert all(len(re.split(r"(?<!\\)\|", line)) == 8 for line in table)  # 6 cells between 7 pipes
    assert "| 3 | train e1 b0 | 0-3 | carried x4 from train e0 b2 (unrelated) |" in text
    assert "**Verdict:**" in text


def test_markdown_with_evidence_has_the_claims():
    text = invoke("--shape", "12,5,1", "--batch", "4", "--format", "markdown").stdout
    assert "| State is kept between the samples of a batch | FALSE |" in text


def test_csv_has_one_row_per_step_and_slot():
    text = invoke(*STATEFUL, "--val-samples", "6", "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == CSV_COLUMNS
    assert len(rows) == 3 * 4 + 4 + 2  # epoch 0's three batches, a validation batch, the raising one
    assert rows[4] == {"phase": "train", "epoch": "0", "batch": "1", "slot": "0", "sample": "4",
                       "start": "train:0", "verified": "true", "call": "train e0"}
    assert {row["start"] for row in rows if row["verified"] == ""} == {"raises"}


def test_svg_and_html_exports_render_without_a_terminal(tmp_path):
    svg, html = tmp_path / "view.svg", tmp_path / "view.html"
    result = invoke(*STATEFUL, "--view", "timeline", "--svg", str(svg), "--html", str(html))
    assert result.exit_code == 0
    root = ElementTree.parse(svg).getroot()
    assert root.tag.endswith("svg")
    text = "".join(root.itertext()).replace("\xa0", " ")
    assert "slot 0" in text and "step (last digit)" in text
    assert "slot 0" in html.read_text() and html.read_text().lstrip().startswith("<!DOCTYPE html>")
    table_svg = tmp_path / "table.svg"
    invoke(*STATEFUL, "--svg", str(table_svg))
    table_text = "".join(ElementTree.parse(table_svg).getroot().itertext()).replace("\xa0", " ")
    assert "train e1 b0" in table_text


def test_an_unwritable_export_path_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(main, [*STATEFUL, "--svg", str(tmp_path / "missing" / "x.svg")])
    assert result.exit_code == 2 and "no such directory" in result.stderr
    result = CliRunner().invoke(main, [*STATEFUL, "--html", str(tmp_path)])
    assert result.exit_code == 2


def test_a_failed_export_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "view.svg"

    class Exploding(io.StringIO):
        def write(self, text):
            raise OSError("disk full")

    monkeypatch.setattr(os, "fdopen", lambda *args, **kwargs: Exploding())
    with pytest.raises(OSError):
        write_atomically(str(target), "<svg/>")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["--view", "timeline", "--format", "json"], ["--svg", "x.svg", "--format", "csv"],
                                  ["--quiet", "--view", "timeline"], ["--ascii", "--format", "markdown"]])
def test_view_options_conflict_with_other_formats(args):
    result = CliRunner().invoke(main, [*STATEFUL, *args])
    assert result.exit_code == 2 and "cannot be combined" in result.stderr


def test_the_svg_export_fetches_nothing_from_a_network(tmp_path):
    svg = tmp_path / "view.svg"
    assert invoke(*STATEFUL, "--svg", str(svg)).exit_code == 0
    text = svg.read_text()
    assert "http" not in text.replace("http://www.w3.org/2000/svg", "").replace("https://www.textualize.io", "")
    assert 'local("FiraCode-Regular")' in text and "monospace" in text


def test_the_timeline_tells_the_fits_of_a_manual_epoch_loop_apart():
    shown = invoke("--shape", "8,5,1", "--batch", "4", "--stateful", "--no-evidence", "--view", "timeline", "--calls",
                   "(fit(batch_size=4, shuffle=False), reset_state()) * 3").stdout
    assert shown.splitlines()[1].split() == ["t0", "t#2", "t#3"]
