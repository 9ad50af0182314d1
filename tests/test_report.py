"""`bias-inherit report` and `results --format json` on a synthetic experiment in a real MLflow server.

The experiment (tests/synthetic.py) is logged as a real grid logs it, with planted slopes,
mitigation effects and round drift over four seeds. The report's slopes, CIs, paired tests and
BH-adjusted p-values are checked against numpy/scipy computed here from the logged values, the
findings table against the planted directions, and the HTML in headless Chromium (every image
decodes, no console errors).
"""
from __future__ import annotations

import html
import math
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from tests.conftest import REPO
from tests.synthetic import log_experiment, planted_cells

pytestmark = pytest.mark.timeout(900)
EXPERIMENT = "report-synthetic"
TYPE = "contrastive-intersectional-explicit"
GAP = "occupation_classification/stereotype_shift"


@pytest.fixture(scope="module")
def experiment(mlflow_server):
    from training.grid import make_cell
    cells = planted_cells()
    running = [{"cell": make_cell("train", TYPE, 0.5, "none", 9)}]   # still training
    parent = log_experiment(mlflow_server, EXPERIMENT, cells, running=running)
    return cells, parent


@pytest.fixture(scope="module")
def report(experiment, mlflow_server, tmp_path_factory):
    from ray_jobs.report import build_report
    out = tmp_path_factory.mktemp("report")
    result = build_report(EXPERIMENT, mlflow_server, out_dir=out)
    return result, json.loads(result.stats_json.read_text())


def _values(cells, metric, keep):
    return [(c["cell"], c["metrics"][metric]) for c in cells if keep(c["cell"])]


def _seed_slopes_by_hand(points):
    """Per seed, numpy's OLS slope; then the mean, its t-interval and a two-sided one-sample t
    p-value written out from the textbook formulas."""
    by_seed: dict[int, list] = {}
    for cell, value in points:
        by_seed.setdefault(cell.seed, []).append((cell.ratio, value))
    slopes = np.array([np.polyfit(*zip(*pts), 1)[0] for _, pts in sorted(by_seed.items())])
    n = len(slopes)
    se = slopes.std(ddof=1) / np.sqrt(n)
    t_crit = stats.t.ppf(0.975, n - 1)
    p = 2 * stats.t.sf(abs(slopes.mean() / se), n - 1)
    return slopes.mean(), slopes.mean() - t_crit * se, slopes.mean() + t_crit * se, p, n


def _bh(p):
    p = np.asarray(p, float)
    order = np.argsort(p)
    ranked = p[order] * len(p) / np.arange(1, len(p) + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1)
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def test_inheritance_slope_matches_an_independent_fit(experiment, report):
    cells, _ = experiment
    _, st = report
    points = _values(cells, GAP, lambda c: not c.round and c.kind == "train" and (
        c.ratio == 0 or (c.bias_type == TYPE and c.mitigation == "none")))
    slope, low, high, p, n_seeds = _seed_slopes_by_hand(points)
    row = next(r for r in st["slopes"] if r["metric"] == GAP and r["bias_type"] == TYPE
               and r["mitigation"] == "none")
    assert row["n"] == n_seeds == 4 and len(points) == 4 + 3 * 4   # seeds, not cells, are n
    assert row["slope"] == pytest.approx(slope, rel=1e-9)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    assert row["p_value"] == pytest.approx(p, rel=1e-6)
    assert 2.0 < slope < 3.0   # planted 5 x 0.5


def test_paired_mitigation_test_and_bh_match_scipy_and_a_hand_bh(experiment, report):
    cells, _ = experiment
    _, st = report

    def at(mitigation):
        return {c.seed: v for c, v in _values(cells, GAP, lambda c: not c.round and c.ratio == 0.5
                                              and c.bias_type == TYPE and c.mitigation == mitigation)}
    loss, none = at("loss"), at("none")
    # |bias| toward zero is a reduction: the test is on magnitudes, one pair per seed.
    expected = stats.ttest_rel([abs(loss[s]) for s in sorted(none)],
                               [abs(none[s]) for s in sorted(none)])
    row = next(r for r in st["paired"] if r["metric"] == GAP and r["bias_type"] == TYPE
               and r["ratio"] == 0.5 and r["mitigation"] == "loss")
    assert row["n_pairs"] == 4
    assert row["statistic"] == pytest.approx(expected.statistic, rel=1e-9)
    assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    family = [r for table in ("slopes", "paired", "ranking", "drift", "extra") for r in st[table]
              if r["p_value"] is not None]
    adjusted = _bh([r["p_value"] for r in family])
    assert [r["p_adjusted"] for r in family] == pytest.approx(list(adjusted), rel=1e-9)


def test_cell_means_and_t_intervals(experiment, report):
    cells, _ = experiment
    _, st = report
    values = [v for c, v in _values(cells, GAP, lambda c: not c.round and c.ratio == 0.2
                                    and c.bias_type == TYPE and c.mitigation == "token")]
    row = next(r for r in st["summary"] if r["metric"] == GAP and r["bias_type"] == TYPE
               and r["ratio"] == 0.2 and r["mitigation"] == "token")
    assert row["n"] == 4 and row["mean"] == pytest.approx(np.mean(values), rel=1e-12)
    half = stats.t.ppf(0.975, 3) * np.std(values, ddof=1) / 2
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(np.mean(values) - half, rel=1e-9),
                                               pytest.approx(np.mean(values) + half, rel=1e-9))


def test_findings_read_the_planted_directions(experiment, report):
    result, st = report
    verdicts = {f.claim: f.verdict for f in result.findings}   # slopes: the pooled row is last
    by_start = {claim.split(" (")[0]: v for claim, v in verdicts.items()}
    assert verdicts["Occupation classification: majority-group (male) accuracy rises with γ"] == "agrees"
    assert verdicts["Occupation classification: minority-group (female) accuracy falls with γ"] == "agrees"
    assert verdicts["The salary gap widens with γ"] == "disagrees"          # planted narrowing
    assert verdicts["Multi-round self-augmentation accumulates bias"] == "agrees"
    assert by_start["Token-based mitigation reduces bias"] == "agrees"
    assert by_start["Loss-based mitigation reduces bias"] == "agrees"
    assert by_start["Mask-based mitigation reduces bias"] == "not measured"  # no mask cells
    assert verdicts["Loss-based mitigation is the most robust"] == "agrees"
    assert verdicts["No mitigation removes inheritance fully"] == "agrees"
    assert "Recruitment shifts towards Spanish men" not in verdicts   # a culture claim
    primary = [f for f in result.findings if f.claim.startswith("Biased augmentation moves")]
    assert [f.bias_type for f in primary] == [*sorted(
        {c["cell"].bias_type for c in experiment[0] if c["cell"].ratio > 0
         and not c["cell"].round}), "all"]
    assert {f.verdict for f in primary} == {"agrees"}
    assert st["findings"][0]["metric"] == GAP


def test_report_leaves_running_cells_out_and_is_logged_to_the_parent(experiment, report,
                                                                     mlflow_server):
    from mlflow.tracking import MlflowClient
    cells, parent = experiment
    result, st = report
    assert result.n_cells == len(cells) and result.n_unfinished == 1
    logged = {a.path for a in MlflowClient(mlflow_server).list_artifacts(parent, "report")}
    assert {"report/report.html", "report/stats.json", "report/plots"} <= logged
    plots = {a.path for a in MlflowClient(mlflow_server).list_artifacts(parent, "report/plots")}
    assert {f"report/plots/{p.name}" for p in result.plots} == plots
    assert {"inheritance", "mitigations", "pareto", "rounds", "analysis_mmd"} <= \
        {p.stem for p in result.plots}
    page = result.html.read_text()
    assert page.count("data:image/png;base64,") == len(result.plots)
    assert "src=\"http" not in page and "<script" not in page      # self-contained


def test_report_cli_and_its_user_errors(experiment, mlflow_server, tmp_path):
    cli = [sys.executable, "-m", "ray_jobs.cli", "report"]
    done = subprocess.run([*cli, EXPERIMENT, "--tracking-uri", mlflow_server, "--out",
                           str(tmp_path / "r")], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r" / "report.html").is_file() and "findings:" in done.stdout
    missing = subprocess.run([*cli, "no-such-experiment", "--tracking-uri", mlflow_server],
                             capture_output=True, text=True, cwd=REPO, timeout=300)
    assert missing.returncode == 2
    assert missing.stderr.strip().startswith("error:") and "Traceback" not in missing.stderr


def test_results_json_round_trips_including_a_running_cell(experiment, mlflow_server):
    cells, parent = experiment
    done = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "results", "--experiment",
                           EXPERIMENT, "--tracking-uri", mlflow_server, "--format", "json",
                           "--social-bias", "gender", "--task", "occupation_classification",
                           "--ratio", "0.5", "--mitigation", "none", "--mitigation", "loss"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    expected = {c["cell"].cell_id: c for c in cells if c["cell"].ratio == 0.5
                and c["cell"].mitigation in ("none", "loss")}
    by_cell = {r["cell"]: r for r in rows}
    assert set(by_cell) == set(expected) | {f"r0.50-{TYPE}-none-s9"}
    running = by_cell.pop(f"r0.50-{TYPE}-none-s9")
    assert running["status"] == "RUNNING" and running[GAP] is None
    for cell_id, row in by_cell.items():
        cell, metrics = expected[cell_id]["cell"], expected[cell_id]["metrics"]
        assert (row["bias_type"], row["ratio"], row["mitigation"], row["seed"], row["status"]) == \
            (cell.bias_type, cell.ratio, cell.mitigation, cell.seed, "FINISHED")
        task_metrics = {k: v for k, v in metrics.items() if k.startswith("occupation_classification/")}
        assert {k: row[k] for k in task_metrics} == task_metrics   # every metric, exact floats
        assert not any(k.startswith("salary") for k in row)


# -- the page in a real browser ---------------------------------------------------------------

@pytest.fixture(scope="session")
def chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        try:
            subprocess.run(["apt-get", "update"], capture_output=True, timeout=300, check=True)
            subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                           capture_output=True, timeout=900, check=True,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        except (subprocess.SubprocessError, OSError) as e:
            pytest.skip(f"chromium missing and apt-get install failed: {e}")
        found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("no chromium or chromium-browser on PATH (and not root to install it)")
    return found


# Runs before the page's own content: records errors, then writes the image check into the DOM.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
const __consoleError = console.error;
console.error = (...a) => { window.__errors.push(a.join(' ')); __consoleError(...a); };
window.addEventListener('load', () => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt);
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({images: images.length, broken: broken, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def test_report_renders_in_headless_chromium(report, chromium, tmp_path):
    result, _ = report
    page = result.html.read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1))
    done = subprocess.run(
        [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--enable-logging=stderr",
         "--v=0", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
         "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, (done.stdout[-2000:], done.stderr[-2000:])
    probe = json.loads(html.unescape(found.group(1)))
    assert probe["images"] == page.count("<img") == len(result.plots) > 0
    assert probe["broken"] == [] and probe["errors"] == []
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console


def test_a_flat_curve_has_slope_zero_and_p_one_not_nan():
    import pandas as pd

    from evaluation.statistics import slope_test
    frame = pd.DataFrame({"seed": [0, 0, 1, 1, 2, 2], "ratio": [0.0, 0.5] * 3, "m": [0.9] * 6})
    flat = slope_test(frame, "m")
    assert (flat.estimate, flat.p_value, flat.ci_low, flat.ci_high) == (0.0, 1.0, 0.0, 0.0)
    assert math.isnan(slope_test(frame[frame["seed"] < 2], "m").p_value)   # 2 seeds: untested
