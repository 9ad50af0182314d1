"""`bias-inherit report EXPERIMENT`: one self-contained HTML report of an experiment, from MLflow.

    bias-inherit report smoke-gender [--parent-run ID] [--out DIR] [--tracking-uri URI]

Reads the parent run (the latest by default) and its FINISHED cell runs, so a still-running
experiment reports what has finished. Writes DIR/report.html (every plot embedded as a base64
PNG, so the file opens from disk with no server), DIR/plots/*.png and DIR/stats.json (every
figure of every table), and logs the directory to the parent run under `report/`.
This module computes the page's content (sections of headings, tables of formatted text, plots,
notes); the markup and the CSS are in the Jinja2 template templates/report.html.j2, rendered
once with autoescape on. Statistics: evaluation/statistics.py; metric map and findings:
evaluation/findings.py.
"""
from __future__ import annotations

import base64
import functools
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from bias import metric_names as names
from evaluation import findings as fd
from evaluation import statistics as st

ARTIFACT_PATH = "report"
DISTRIBUTION_ARTIFACTS = "analyses/distribution"
CELL_COLUMNS = ("cell", "kind", "bias_type", "ratio", "mitigation", "seed", "round")
TEMPLATE = "report.html.j2"   # in ray_jobs/templates/


class ReportResult(BaseModel):
    experiment: str
    parent_run_id: str
    html: Path
    stats_json: Path
    plots: list[Path]
    n_cells: int
    n_unfinished: int
    findings: list[fd.Verdict]
    seconds: float


def cells_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """mlflow.search_runs' frame -> one row per FINISHED cell: CELL_COLUMNS + task metrics."""
    if runs.empty or "params.ratio" not in runs:
        return pd.DataFrame(columns=list(CELL_COLUMNS))
    runs = runs[(runs["status"] == "FINISHED") & runs["params.ratio"].notna()]
    metrics = {c: c.removeprefix("metrics.") for c in runs.columns
               if c.startswith("metrics.") and "/" in c}
    out = pd.DataFrame({
        "cell": runs["tags.bias_inherit.cell_id"], "kind": runs["params.kind"],
        "bias_type": runs["params.bias_type"], "ratio": runs["params.ratio"].astype(float),
        "mitigation": runs["params.mitigation"], "seed": runs["params.seed"].astype(int),
        # rounds ran before the `round` param existed in some stores: no param = a grid cell
        "round": (runs["params.round"].fillna("0") if "params.round" in runs
                  else pd.Series("0", index=runs.index)).astype(int),
        **{name: runs[col] for col, name in metrics.items()}})
    return out.reset_index(drop=True)


# -- the page's content: what the template renders (plain text; the template escapes it) -------

@dataclass(frozen=True)
class Heading:
    """A subheading (h3) inside a section."""
    text: str
    kind: str = field(default="heading", init=False)


@dataclass(frozen=True)
class Image:
    png_base64: str
    alt: str
    kind: str = field(default="image", init=False)


@dataclass(frozen=True)
class Note:
    text: str
    kind: str = field(default="note", init=False)


@dataclass(frozen=True)
class Cell:
    """One table cell as shown: numbers right-aligned; `css` is the verdict column's colour code."""
    text: str
    numeric: bool = False
    css: str | None = None


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    kind: str = field(default="table", init=False)


@dataclass(frozen=True)
class Details:
    """A collapsed block under a one-line summary."""
    summary: str
    body: Table | Note
    kind: str = field(default="details", init=False)


Block = Heading | Image | Note | Table | Details


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list[Block]


@dataclass(frozen=True)
class Meta:
    """The line under the page title."""
    parent_run_id: str
    status: str
    n_cells: int
    n_unfinished: int
    n_bias_types: int
    mitigations: list[str]
    seeds: list[str]
    generated: str


def _img(png: bytes, alt: str) -> Image:
    return Image(base64.b64encode(png).decode(), alt)


def _cell(column, v) -> Cell:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return Cell("–" if isinstance(v, float) and math.isnan(v) else f"{v:.4g}", numeric=True)
    return Cell(str(v), css=str(v) if column == "verdict" else None)   # colour code


def _table(frame: pd.DataFrame, columns: list[str] | None = None) -> Table | Note:
    if frame.empty:
        return Note("none")
    shown = frame[columns] if columns else frame
    return Table([str(c) for c in shown.columns],
                 [[_cell(c, v) for c, v in zip(shown.columns, row)]
                  for row in shown.itertuples(index=False)])


@functools.cache
def _template():
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template(TEMPLATE)


def render_page(experiment: str, meta: Meta, sections: list[Section], methods: str) -> str:
    """The whole HTML page: the title and meta line, the sections in order, then Methods."""
    return _template().render(experiment=experiment, meta=meta, sections=sections,
                              methods=methods)


METHODS = ("The seed is the unit of replication: every test first reduces each seed to one "
           "number, then tests across seeds (df = seeds − 1); with fewer than 3 seeds a row says "
           "'too few seeds' and is not tested. Cell means: mean over seeds with a t-interval. "
           "Inheritance coefficient: per seed, the OLS slope of the metric against γ over that "
           "seed's cells (γ = 0 is the shared original-only cell; pooled = every bias type of the "
           "seed in one fit); the estimate is the mean per-seed slope, with a one-sample t-test "
           "and t-interval. Mitigations: per seed, |bias| under the mitigation minus |bias| under "
           "none at the same γ and bias type (pooled: averaged within the seed first), one-sample "
           "t-test; reducing bias means moving it toward zero, so a sign flip is not a success. "
           "Mitigation rankings are the same per-seed |bias| differences, pairwise. mde: the "
           "smallest true effect each test detects with 80% power at α = 0.05, from the spread "
           "across seeds; a 'not significant' below it says nothing about effects smaller than "
           "it. Bias metrics are signed as their tasks declare (positive = toward the stereotype "
           "or the majority group; see the README's 'What the numbers mean'). All p-values of "
           "the report form one Benjamini–Hochberg family; a finding agrees or disagrees when "
           "its adjusted p < {alpha}.")


def build_report(experiment: str, tracking_uri: str, parent_run_id: str | None = None,
                 out_dir: str | Path | None = None, log_to_mlflow: bool = True) -> ReportResult:
    """Read the experiment, compute the statistics, write the report; log it to the parent run."""
    from mlflow.tracking import MlflowClient

    from ray_jobs.tracking import TAG_SKIPPED, fetch_cells, frame_records
    started = time.perf_counter()
    runs = fetch_cells(experiment, tracking_uri, parent_run_id)
    parent_run_id = runs.attrs["parent_run_id"]
    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_run_id)
    cells_all = cells_frame(runs)
    base = cells_all[cells_all["kind"] == "base"]
    cells = cells_all[cells_all["kind"] != "base"].reset_index(drop=True)
    names = [c for c in cells.columns if "/" in c]
    social_bias = parent.data.params.get("social_bias", "gender")
    tasks = fd.tasks_in(names, social_bias)
    tests = fd.run_tests(cells, social_bias)
    verdicts = fd.check_findings(tests, names)

    out = Path(out_dir or f"reports/{experiment}-{parent_run_id[:8]}")
    (out / "plots").mkdir(parents=True, exist_ok=True)
    plots: dict[str, bytes] = {}
    sections: list[Section] = []
    stats: dict = {"experiment": experiment, "parent_run_id": parent_run_id,
                   "n_cells": len(cells_all), "methods": METHODS.format(alpha=tests.alpha),
                   "alpha": tests.alpha,
                   **{k: frame_records(v) for k, v in tests.tables().items()},
                   "findings": frame_records(pd.DataFrame([v.model_dump() for v in verdicts]))}

    from ray_jobs import report_plots as rp
    # 1. findings first: the page opens on the answer, the evidence follows
    sections.append(Section("Findings of the paper, checked", [_table(
        pd.DataFrame([v.model_dump() for v in verdicts]),
        ["claim", "metric", "bias_type", "test", "estimate", "p_adjusted", "mde", "verdict",
         "note"])]))

    # 2. inheritance curves + coefficients
    if tasks and not cells.empty:
        plots["inheritance"] = rp.inheritance_curves(cells, tasks, base)
        cols = ["metric", "bias_type", "n", "slope", "ci_low", "ci_high", "p_value", "p_adjusted",
                "mde", "note"]
        slopes = (tests.slopes if not tests.slopes.empty          # one γ only: no slope at all
                  else pd.DataFrame(columns=["mitigation", *cols]))
        coefficients = slopes[slopes["metric"].isin([s.bias for s in tasks.values()])]
        summary = pd.concat([st.summarize(cells[cells["round"] == 0], spec.headline)
                             for spec in tasks.values() if spec.headline in cells]
                            + [st.summarize(cells[cells["round"] == 0], spec.bias)
                               for spec in tasks.values() if spec.bias in cells], ignore_index=True)
        stats["summary"] = frame_records(summary)
        sections.append(Section("Inheritance", [
            _img(plots["inheritance"], "inheritance curves"),
            Heading("Inheritance coefficient (slope of the bias metric against γ, mitigation none)"),
            _table(coefficients[coefficients["mitigation"] == "none"], cols),
            Details("slopes under every mitigation", _table(coefficients, ["mitigation", *cols])),
            Details("cell means ± 95% t-interval over seeds",
                    _table(summary, ["metric", "bias_type", "ratio", "mitigation", "n", "mean",
                                     "ci_low", "ci_high"]))]))
    else:
        sections.append(Section("Inheritance", [Note("no finished cell with task metrics yet")]))

    # 3. mitigations + Pareto, on the primary bias metric
    primary = fd.primary_bias(names, social_bias)
    if primary and len(st.mitigations(cells)) > 1:
        plots["mitigations"] = rp.mitigation_bars(cells, primary)
        task = primary.partition("/")[0]
        performance = tasks[task].headline
        points = rp.pareto_points(cells, performance, primary)
        plots["pareto"] = rp.pareto(points, performance, primary)
        cost = (points[points["ratio"] > 0].groupby("mitigation", sort=False)
                .agg(performance=("performance", "mean"), abs_bias=("abs_bias", "mean"),
                     frontier_points=("frontier", "sum")).reset_index())
        none = cost[cost["mitigation"] == "none"]
        if not none.empty:
            cost["performance_cost"] = none["performance"].iloc[0] - cost["performance"]
            cost["bias_reduction"] = none["abs_bias"].iloc[0] - cost["abs_bias"]
        stats["pareto"] = frame_records(points)
        stats["mitigation_cost"] = frame_records(cost)
        sections.append(Section("Mitigations", [
            _img(plots["mitigations"], "mitigation comparison"),
            Heading("|bias| under each mitigation minus under none (one pair per seed)"),
            _table(tests.paired, ["metric", "bias_type", "ratio", "mitigation", "n_pairs",
                                  "mean_diff", "signed_diff", "statistic", "p_value",
                                  "p_adjusted", "mde", "note"]),
            Heading("Mitigations against each other (|bias|, per seed, pooled)"),
            (_table(tests.ranking, ["metric", "mitigation", "versus", "n_pairs", "mean_diff",
                                    "p_value", "p_adjusted", "mde", "note"])
             if not tests.ranking.empty else Note("fewer than two mitigations besides none")),
            Heading(f"What each mitigation costs: {performance} vs |{primary}|"),
            _img(plots["pareto"], "pareto view"), _table(cost)]))
    else:
        sections.append(Section("Mitigations", [Note(
            "only one mitigation in this experiment" if primary else "no bias metric measured")]))

    # 4. multi-round drift
    if (cells["round"] > 0).any():
        drift_metrics = [m for s in tasks.values() for m in (s.bias, s.headline) if m in cells]
        plots["rounds"] = rp.round_drift(cells, drift_metrics)
        sections.append(Section("Multi-round drift", [
            _img(plots["rounds"], "round drift"),
            _table(tests.drift, ["metric", "n", "slope", "ci_low", "ci_high", "p_value",
                                 "p_adjusted", "mde", "note"])]))
    else:
        sections.append(Section("Multi-round drift", [
            Note("no multi-round cells in this experiment (rounds: 1)")]))

    # 5. misalignment analyses (logged on the parent by ray_jobs/analyses.py and run.py)
    sections.append(_analyses_section(client, parent, plots, stats))
    skipped = json.loads(parent.data.tags.get(TAG_SKIPPED, "{}"))
    stats["not_measured"] = skipped
    if skipped:
        sections.append(Section("Not measured", [_table(pd.DataFrame(
            [{"task": task, "why": f"not measured: no data ({where})"}
             for task, where in skipped.items()]))]))

    for name, png in plots.items():
        (out / "plots" / f"{name}.png").write_bytes(png)
    unfinished = int((runs["status"] != "FINISHED").sum()) if not runs.empty else 0
    meta = Meta(parent_run_id=parent_run_id, status=parent.info.status, n_cells=len(cells_all),
                n_unfinished=unfinished, n_bias_types=len(st.bias_types(cells)),
                mitigations=list(st.mitigations(cells)),
                seeds=[str(s) for s in sorted(cells["seed"].unique())],
                generated=time.strftime("%Y-%m-%d %H:%M"))
    page = render_page(experiment, meta, sections, METHODS.format(alpha=tests.alpha))
    (out / "report.html").write_text(page, encoding="utf-8")
    stats["unfinished_cells"] = unfinished
    # allow_nan=False: stats.json must stay strict JSON for non-Python readers
    (out / "stats.json").write_text(json.dumps(stats, indent=1, default=str, allow_nan=False))
    if log_to_mlflow:
        client.log_artifacts(parent_run_id, str(out), artifact_path=ARTIFACT_PATH)
    return ReportResult(experiment=experiment, parent_run_id=parent_run_id, html=out / "report.html",
                        stats_json=out / "stats.json",
                        plots=[out / "plots" / f"{n}.png" for n in plots], n_cells=len(cells_all),
                        n_unfinished=unfinished, findings=verdicts,
                        seconds=time.perf_counter() - started)


def _analyses_section(client, parent, plots: dict[str, bytes], stats: dict) -> Section:
    """MMD tests, group balance and values distances from the parent's metrics, plus the PCA
    plots the distribution analysis logged; a note for whatever is absent."""
    from ray_jobs import report_plots as rp
    metrics, tags = parent.data.metrics, parent.data.tags
    blocks: list[Block] = []
    mmd = {s: {"mmd2": v, "p_value": metrics.get(names.distribution_metric(s, "p_value"))}
           for k, v in metrics.items() if (s := names.distribution_set_of(k, "mmd2"))}
    balance = {s: v for k, v in metrics.items()
               if (s := names.generation_set_of(k, "balance_p_value"))}
    values = {c: v for k, v in metrics.items() if (c := names.values_field_of(k, "js_distance_"))}
    stats["analyses"] = {"distribution": mmd, "balance_p_value": balance, "values_js": values}
    if mmd:
        frame = pd.DataFrame([{"bias_type": k, **v} for k, v in sorted(mmd.items())])
        plots["analysis_mmd"] = rp.analysis_bars({k: v["mmd2"] for k, v in sorted(mmd.items())},
                                                 "D_o vs D_a: MMD² per bias type", "MMD²")
        blocks += [Heading("Data distribution (MMD permutation test)"),
                   _img(plots["analysis_mmd"], "MMD per bias type"), _table(frame)]
        with tempfile.TemporaryDirectory() as tmp:
            try:
                listed = client.list_artifacts(parent.info.run_id, DISTRIBUTION_ARTIFACTS)
            except Exception:   # noqa: BLE001 - a store without the folder: no PCA plots to show
                listed = []
            for item in listed:
                if item.path.endswith(".png"):
                    local = client.download_artifacts(parent.info.run_id, item.path, tmp)
                    name = f"pca_{Path(item.path).stem}"
                    plots[name] = Path(local).read_bytes()
                    blocks.append(_img(plots[name], f"PCA {Path(item.path).stem}"))
    else:
        reason = tags.get(names.skipped_tag("distribution"), "not enabled (analyses.distribution)")
        blocks.append(Note(f"distribution analysis absent: {reason}"))
    if balance:
        blocks += [Heading("Group data (chi-square against balance, per generated set)"),
                   _table(pd.DataFrame([{"set": k, "p_value": v}
                                        for k, v in sorted(balance.items())]))]
    else:
        blocks.append(Note("group-balance tests absent (no generated sets logged)"))
    if values:
        plots["analysis_values"] = rp.analysis_bars(values, "Values: JS distance per culture",
                                                    "Jensen–Shannon distance")
        blocks += [Heading("Values (GlobalOpinionQA)"), _img(plots["analysis_values"], "values")]
    else:
        reason = tags.get(names.skipped_tag("values"), "not enabled (analyses.values_source: none)")
        blocks.append(Note(f"values analysis absent: {reason}"))
    return Section("Misalignment analyses", blocks)


def tested_findings(findings) -> list[str]:
    """One line per finding that was tested: verdict, claim, bias type, estimate, BH-adjusted p,
    and the smallest effect the test could have detected. A finding a grid has too few seeds to
    test is listed too when its estimate and an item-level mde exist (what the cells can say)."""
    lines = []
    for f in findings:
        if f.verdict != "not measured":
            lines.append(f"  {f.verdict:15} {f.claim} [{f.bias_type}]: estimate {f.estimate:.4g}, "
                         f"adjusted p {f.p_adjusted:.3g}, mde {f.mde:.3g}")
        elif math.isfinite(f.estimate) and math.isfinite(f.mde):
            lines.append(f"  {'not tested':15} {f.claim} [{f.bias_type}]: estimate {f.estimate:.4g}, "
                         f"{f.note.split(';')[0]}; mde {f.mde:.3g} from one cell's items")
    return lines


def add_commands(sub) -> None:
    """`report EXPERIMENT`: the HTML report (plots, statistics, findings), logged to the parent run."""
    p = sub.add_parser("report", help="write the experiment's HTML report and log it to MLflow")
    p.add_argument("experiment", help="MLflow experiment name, or the experiment's config file")
    p.add_argument("--parent-run", help="the parent run to report (default: the latest)")
    p.add_argument("--out", help="output directory (default: reports/EXPERIMENT-PARENT8)")
    p.add_argument("--tracking-uri")

    def on_report(args) -> int:
        import os
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")   # keep stdout clean
        from ray_jobs.tracking import check_tracking_reachable, experiment_and_uri
        experiment, uri = experiment_and_uri(args.experiment, args.tracking_uri)
        check_tracking_reachable(uri)
        result = build_report(experiment, uri, args.parent_run, args.out)
        verdicts = {}
        for f in result.findings:
            verdicts[f.verdict] = verdicts.get(f.verdict, 0) + 1
        print(f"{result.html} ({result.n_cells} finished cells, {len(result.plots)} plots, "
              f"{result.seconds:.1f} s); logged to parent run {result.parent_run_id} under "
              f"{ARTIFACT_PATH}/")
        print("findings: " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())))
        for line in tested_findings(result.findings):
            print(line)
        return 0
    p.set_defaults(handler=on_report)
