"""The report's figures, drawn with matplotlib (Agg) from a cells frame; each returns PNG bytes.

Used by `ray_jobs/report.py` (`bias-inherit report EXPERIMENT`); nothing here reads MLflow.
Means and CIs come from evaluation.statistics, so a figure and its table always agree.
"""
from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")   # no display on a cluster node or in CI; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from evaluation import statistics as st  # noqa: E402
from evaluation.findings import TaskMetrics  # noqa: E402

COLUMNS = 3
DPI = 90


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _grid(n: int, width: float = 4.4, height: float = 3.3):
    cols = min(COLUMNS, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             layout="constrained")   # keeps the suptitle off the panel titles
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _errorbar(ax, summary: pd.DataFrame, x: str, label: str, color=None, offset: float = 0.0):
    yerr = np.vstack([summary["mean"] - summary["ci_low"], summary["ci_high"] - summary["mean"]])
    ax.errorbar(summary[x] + offset, summary["mean"], yerr=np.nan_to_num(yerr), marker="o",
                ms=4, capsize=3, label=label, color=color)


def _short(metric: str) -> str:
    return metric.partition("/")[2] or metric


def inheritance_curves(cells: pd.DataFrame, tasks: dict[str, TaskMetrics],
                       base: pd.DataFrame) -> bytes:
    """One panel per task: the headline metric against γ per bias type (mitigation none, mean
    ± 95% t-interval over seeds); the band spans the task's group metrics (e.g. male to female
    accuracy), so the gap is visible as its width. Dashed: the untrained base model."""
    fig, axes = _grid(len(tasks))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (task, spec) in zip(axes, tasks.items()):
        for i, bias_type in enumerate(st.bias_types(cells)):
            color = colors[i % len(colors)]
            curve = st.curve_cells(cells, bias_type, "none")
            summary = st.summarize(curve, spec.headline, by=("ratio",))
            if not summary.empty:
                _errorbar(ax, summary, "ratio", bias_type, color)
            if spec.groups:
                means = curve.groupby("ratio")[list(spec.groups)].mean()
                ax.fill_between(means.index, means.min(axis=1), means.max(axis=1), color=color,
                                alpha=0.15, linewidth=0)
        if spec.headline in base and base[spec.headline].notna().any():
            ax.axhline(base[spec.headline].mean(), color="grey", ls="--", lw=1, label="base model")
        band = f"; band: {', '.join(_short(g) for g in spec.groups)}" if spec.groups else ""
        ax.set_title(f"{task}\n{_short(spec.headline)}{band}", fontsize=9)
        ax.set_xlabel("bias ratio γ")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Inheritance curves (mitigation none, mean ± 95% t-interval over seeds)",
                 fontsize=11)
    return _png(fig)


def mitigation_bars(cells: pd.DataFrame, metric: str) -> bytes:
    """One panel per bias type: the bias metric at each γ, one bar per mitigation (± CI)."""
    types = st.bias_types(cells)
    fig, axes = _grid(len(types))
    mitigations = st.mitigations(cells)
    width = 0.8 / max(len(mitigations), 1)
    for ax, bias_type in zip(axes, types):
        grid = cells[(cells["round"] == 0) & (cells["bias_type"] == bias_type)]
        summary = st.summarize(grid, metric, by=("ratio", "mitigation"))
        ratios = sorted(summary["ratio"].unique())
        for j, mitigation in enumerate(mitigations):
            part = summary[summary["mitigation"] == mitigation].set_index("ratio").reindex(ratios)
            yerr = np.vstack([part["mean"] - part["ci_low"], part["ci_high"] - part["mean"]])
            ax.bar(np.arange(len(ratios)) + (j - (len(mitigations) - 1) / 2) * width, part["mean"],
                   width, yerr=np.nan_to_num(yerr), capsize=2, label=mitigation)
        ax.set_xticks(range(len(ratios)), [f"{r:g}" for r in ratios])
        ax.axhline(0, color="black", lw=0.6)
        ax.set_title(bias_type, fontsize=9)
        ax.set_xlabel("bias ratio γ")
        ax.set_ylabel(_short(metric), fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Mitigations at each γ: {metric} (mean ± 95% CI)", fontsize=11)
    return _png(fig)


def round_drift(cells: pd.DataFrame, metrics: list[str]) -> bytes:
    """The metrics against the self-augmentation round (mean ± CI over seeds)."""
    fig, axes = _grid(len(metrics))
    rounds = cells[cells["round"] > 0]
    for ax, metric in zip(axes, metrics):
        summary = st.summarize(rounds, metric, by=("round",))
        if not summary.empty:
            _errorbar(ax, summary, "round", metric)
        ax.set_title(metric, fontsize=9)
        ax.set_xlabel("round")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    fig.suptitle("Multi-round drift", fontsize=11)
    return _png(fig)


def pareto_points(cells: pd.DataFrame, performance: str, bias: str) -> pd.DataFrame:
    """Mean performance and mean |bias| per (mitigation, bias type, γ), with the frontier flag:
    no other point has both a smaller |bias| and a higher performance."""
    grid = cells[cells["round"] == 0].assign(abs_bias=lambda f: f[bias].abs())
    points = (grid.groupby(["mitigation", "bias_type", "ratio"], as_index=False)
              .agg(performance=(performance, "mean"), abs_bias=("abs_bias", "mean"))
              .dropna(subset=["performance", "abs_bias"]))
    order = points.sort_values(["abs_bias", "performance"], ascending=[True, False])
    best, frontier = -np.inf, set()
    for index, row in order.iterrows():
        if row["performance"] > best:
            frontier.add(index)
            best = row["performance"]
    return points.assign(frontier=points.index.isin(frontier))


def pareto(points: pd.DataFrame, performance: str, bias: str) -> bytes:
    """Task performance against |bias gap|, one colour per mitigation; the line is the frontier."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), layout="constrained")
    for mitigation, part in points.groupby("mitigation", sort=False):
        dots = ax.scatter(part["abs_bias"], part["performance"], label=mitigation, alpha=0.8, s=28)
        ax.scatter(part["abs_bias"].mean(), part["performance"].mean(), marker="*", s=160,
                   color=dots.get_facecolor()[0], edgecolors="black")
    front = points[points["frontier"]].sort_values("abs_bias")
    ax.step(front["abs_bias"], front["performance"], where="post", color="black", lw=1,
            label="frontier")
    ax.set_xlabel(f"|{bias}| (lower is fairer)")
    ax.set_ylabel(f"{performance} (higher is better)")
    ax.set_title("Performance vs bias per mitigation (★ = mitigation mean)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def analysis_bars(values: dict[str, float], title: str, ylabel: str) -> bytes:
    fig, ax = plt.subplots(figsize=(6.4, 3.2), layout="constrained")
    ax.bar(range(len(values)), list(values.values()))
    ax.set_xticks(range(len(values)), list(values), rotation=20, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)
