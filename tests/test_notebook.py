"""What a notebook and a rich console show of a report: a small notebook executed for real
(nbclient, an ipykernel), and the same displays checked directly."""

import dataclasses
import io

import nbformat
import pytest
from nbclient import NotebookClient
from rich.console import Console

from lstm_inspect import Spec, inspect
from lstm_inspect.torch import watch

SPEC = Spec(12, 5, 1, batch_size=4, stateful=True, shuffle=False, epochs=2)


def test_a_notebook_shows_the_report_as_html_tables_and_an_inspection_in_one_line():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from lstm_inspect import Spec, inspect\n"
                                  "spec = Spec(12, 5, 1, batch_size=4, stateful=True, shuffle=False, epochs=2,\n"
                                  "            backend='torch')\n"
                                  "report = inspect(spec, evidence=False).run()\nreport"),
        nbformat.v4.new_code_cell("inspect(spec)"),
        nbformat.v4.new_code_cell("report.show(max_rows=4)"),
    ])
    NotebookClient(notebook, timeout=240, kernel_name="python3").execute()
    shown = notebook.cells[0].outputs[0]["data"]
    assert "<table>" in shown["text/html"] and "train e1 b0" in shown["text/html"]
    assert shown["text/html"].count("<svg") == 1 and 'class="continued"' in shown["text/html"]  # the diagram
    assert "Verdict:" in shown["text/html"] and len(shown["text/plain"]) < 200
    assert shown["text/plain"] == "<Report: Keras 3 (torch), stateful LSTM; 6 steps, 6 kept; ok>"
    assert notebook.cells[1].outputs[0]["data"]["text/plain"] == (
        "<Inspection of Keras 3 (torch), stateful LSTM: not started (iterate it, or .run())>")
    # rich, in a kernel, displays its output (text/html and text/plain) rather than printing it.
    printed = "".join(output.get("text", "") + output.get("data", {}).get("text/plain", "")
                      for output in notebook.cells[2].outputs)
    assert "Steps of Keras 3 (torch), checked on a PyTorch LSTM" in printed and "more steps" in printed


def test_a_rich_console_prints_the_table_and_verdict():
    report = inspect(SPEC, evidence=False).run()
    out = io.StringIO()
    Console(file=out, width=100).print(report)
    assert "train e1 b2" in out.getvalue() and "Verdict:" in out.getvalue()


def test_the_html_escapes_what_it_shows_and_folds_long_runs():
    report = inspect(Spec(400, 5, 1, batch_size=4), evidence=False).run()
    page = dataclasses.replace(report, verdict="<script>alert(1)</script>")._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count("<tr>") < 50 and "more steps" in page  # 100 steps folded to max_rows


def test_an_inspection_says_where_it_is():
    inspection = inspect(SPEC, evidence=False)
    assert "not started" in repr(inspection)
    next(iter(inspection))
    assert "running, 1 steps so far" in repr(inspection)


def test_a_probes_report_shows_itself_too():
    import torch

    model = torch.nn.GRU(1, 3, batch_first=True)
    with watch(model) as probe, torch.no_grad():
        _, h = model(torch.randn(4, 5, 1))
        model(torch.randn(4, 5, 1), h)
    report = probe.result()
    assert repr(report) == "<Report: your PyTorch loop, GRU; 2 steps, 2 kept, seen by TorchProbe; ok>"
    assert "<td>predict e0 b1</td>" in report._repr_html_() and "carried x4" in report._repr_html_()
    with pytest.raises(ValueError, match="view is"):
        report.show(view="graph")
