"""The report page from its Jinja2 template (ray_jobs/templates/report.html.j2), with no MLflow.

A hand-built page: sections of headings, tables, images, notes and details go through
`render_page`; the page escapes every value, keeps the blocks in order, and formats numbers as
the report always has (4 significant digits, "–" for NaN, right-aligned; a bool, a string or a
numpy integer in an object column is text).
"""
from __future__ import annotations

import base64
import math
import re

import numpy as np
import pandas as pd
import pytest

from ray_jobs.report import (Details, Heading, Meta, Note, Section, _img, _table, cells_frame,
                             render_page)

pytestmark = pytest.mark.unit

PNG = b"\x89PNG\r\n\x1a\n not really a png, only bytes to encode"


def _meta(**changes) -> Meta:
    values = dict(parent_run_id="abc123", status="FINISHED", n_cells=12, n_unfinished=0,
                  n_bias_types=2, mitigations=["none", "loss"], seeds=["0", "1", "2"],
                  generated="2026-01-02 03:04")
    return Meta(**{**values, **changes})


def _page(sections, **meta) -> str:
    return render_page("exp <1>", _meta(**meta), sections, "Methods say p < 0.05 & 'more'.")


def test_values_are_escaped_and_the_page_has_no_script():
    frame = pd.DataFrame([{"claim": "<script>alert('x')</script>", "verdict": "agrees"}])
    page = _page([Section("Findings & <more>", [_table(frame),
                                                 _img(PNG, 'plot "a" <b>'),
                                                 Note("note with <i>tags</i> & ampersand")])])
    assert "<script" not in page and "<i>" not in page
    assert "<td>&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</td>" in page
    assert "<h2>Findings &amp; &lt;more&gt;</h2>" in page
    assert '<img alt="plot &#34;a&#34; &lt;b&gt;" src="data:image/png;base64,' \
        f'{base64.b64encode(PNG).decode()}">' in page
    assert "<p class=note>note with &lt;i&gt;tags&lt;/i&gt; &amp; ampersand</p>" in page
    assert "<title>exp &lt;1&gt; report</title>" in page
    assert "<h1>bias-inherit report: exp &lt;1&gt;</h1>" in page
    assert "<h2>Methods</h2>\n<p>Methods say p &lt; 0.05 &amp; &#39;more&#39;.</p>" in page
    assert page.count("<head>") == 1 and page.count("<img") == 1
    assert page.count("data:image/png;base64,") == 1


def test_sections_and_blocks_keep_their_order():
    table = _table(pd.DataFrame({"metric": ["m/a", "m/b"], "slope": [1.0, 2.0]}))
    sections = [
        Section("First", [Heading("Sub one"), table, Note("first note"),
                          Details("more rows", _table(pd.DataFrame({"x": [1.5]})))]),
        Section("Second", [_img(PNG, "second plot"), Note("second note")]),
        Section("Not measured", [_table(pd.DataFrame(
            [{"task": "crows_pairs", "why": "not measured: no data (/data/crows)"}]))]),
    ]
    page = _page(sections)
    markers = ["<h1>", "<p class=meta>", "<h2>First</h2>", "<h3>Sub one</h3>",
               "<th>metric</th><th>slope</th>", "<td>m/a</td>", "<td>m/b</td>",
               "<p class=note>first note</p>", "<details><summary>more rows</summary><table>",
               "<td class=num>1.5</td>", "</details>", "<h2>Second</h2>", 'alt="second plot"',
               "<p class=note>second note</p>", "<h2>Not measured</h2>",
               "<td>crows_pairs</td><td>not measured: no data (/data/crows)</td>",
               "<h2>Methods</h2>", "</body>"]
    positions = [page.find(m) for m in markers]
    assert -1 not in positions, [m for m, p in zip(markers, positions) if p == -1]
    assert positions == sorted(positions)
    # a table's header row, then one row per frame row, each row on one line
    assert re.search(r"<table><thead><tr><th>metric</th><th>slope</th></tr></thead><tbody>\s*"
                     r"<tr><td>m/a</td><td class=num>1</td></tr>\s*"
                     r"<tr><td>m/b</td><td class=num>2</td></tr>\s*</tbody></table>", page)


def test_numbers_are_formatted_as_the_report_always_did():
    frame = pd.DataFrame({
        "small": [0.000123456, 1e-12, 0.5],
        "large": [12345678.9, -98765.4321, 100.0],
        "missing": [math.nan, 1.23456, -0.0],
        "count": [3, 40, 12345],                                   # int64: numbers
        "mixed": [np.int64(7), True, None],                        # object column: text
        "verdict": ["agrees", "not significant", "not measured"],
    })
    table = _table(frame)
    assert table.columns == ["small", "large", "missing", "count", "mixed", "verdict"]
    page = _page([Section("Numbers", [table])])
    rows = re.findall(r"<tr>(<td.*?)</tr>", page)
    assert rows == [
        '<td class=num>0.0001235</td><td class=num>1.235e+07</td><td class=num>–</td>'
        '<td class=num>3</td><td>7</td><td class="agrees">agrees</td>',
        '<td class=num>1e-12</td><td class=num>-9.877e+04</td><td class=num>1.235</td>'
        '<td class=num>40</td><td>True</td><td class="not significant">not significant</td>',
        '<td class=num>0.5</td><td class=num>100</td><td class=num>-0</td>'
        '<td class=num>1.234e+04</td><td>None</td><td class="not measured">not measured</td>',
    ]


def test_columns_are_chosen_and_an_empty_table_is_a_note():
    frame = pd.DataFrame({"a": [1.0], "b": ["x"], "c": [2.0]})
    table = _table(frame, ["c", "a"])
    assert table.columns == ["c", "a"]
    assert [[cell.text for cell in row] for row in table.rows] == [["2", "1"]]
    assert _table(pd.DataFrame(columns=["a", "b"]), ["a"]) == Note("none")
    page = _page([Section("Empty", [_table(pd.DataFrame())])])
    assert "<h2>Empty</h2>\n<p class=note>none</p>" in page


def test_the_meta_line():
    page = _page([], n_unfinished=2, mitigations=[])
    line = re.search(r"<p class=meta>(.*?)</p>", page).group(1)
    assert line == ("parent run abc123 · status FINISHED · 12 finished cells (2 not finished, "
                    "left out) · 2 bias types · mitigations – · seeds 0, 1, 2 · generated "
                    "2026-01-02 03:04")
    assert "not finished" not in _page([])


def test_cells_frame_of_an_empty_search_has_the_cell_columns():
    assert list(cells_frame(pd.DataFrame())) == ["cell", "kind", "bias_type", "ratio",
                                                 "mitigation", "seed", "round"]
