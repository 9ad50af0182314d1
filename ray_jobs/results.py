"""The grid's cells x metrics as a table, read back from MLflow: what `run`, `resume` and
`results` print.

    python -m ray_jobs.results EXPERIMENT [TRACKING_URI]
"""
from __future__ import annotations

import fnmatch
import sys

HEADLINE_METRICS = (
    "occupation_classification/accuracy", "occupation_classification/accuracy_gap",
    "occupation_classification/tpr_gap_rms", "salary_recommendation/mean_salary",
    "salary_recommendation/salary_gap", "salary_recommendation/parse_rate",
)


def summary_metrics(tasks: list[str], social_bias: str) -> list[str]:
    """What a finished run prints: each task's declared bias metric for the study's social bias,
    plus the first task's headline (`results` has every metric)."""
    from evaluation.tasks import TASKS
    known = [TASKS[t] for t in tasks if t in TASKS]
    head = [f"{known[0].name}/{known[0].headline}"] if known else []
    return head + [f"{t.name}/{t.bias_metric(social_bias).name}" for t in known
                   if t.bias_metric(social_bias)]


def print_results(experiment: str, tracking_uri: str, parent_run_id: str | None = None,
                  filters: dict | None = None, metrics: list[str] | None = None,
                  fmt: str = "table", tasks: list[str] | None = None) -> None:
    from ray_jobs.tracking import fetch_cells
    frame = fetch_cells(experiment, tracking_uri, parent_run_id)
    parent = frame.attrs["parent_run_id"]
    table = results_table(frame, filters or {}, metrics, tasks)
    if fmt == "csv":
        print(table.to_csv(index=False), end="")
    elif fmt == "json":
        import json

        from ray_jobs.tracking import frame_records
        print(json.dumps(frame_records(table), indent=1))
    else:
        _print_rich(table, f"{experiment} · parent run {parent}")
    skipped = skipped_tasks(tracking_uri, parent)
    if skipped and fmt == "table":
        print(f"not measured (no data): {', '.join(skipped)}; see `bias-inherit data list`")


def skipped_tasks(tracking_uri: str, parent_run_id: str) -> dict[str, str]:
    """The tasks pre-flight skipped for want of data (the parent run's tag), task -> why."""
    import json

    from mlflow.tracking import MlflowClient

    from ray_jobs.tracking import TAG_SKIPPED
    tag = MlflowClient(tracking_uri).get_run(parent_run_id).data.tags.get(TAG_SKIPPED)
    return json.loads(tag) if tag else {}


def results_table(frame, filters: dict, metrics: list[str] | None, tasks: list[str] | None = None):
    """Cells x metrics. `filters` maps a cell param (social_bias, bias_type, ratio, mitigation) to
    the values kept; `tasks` keeps the metrics of those tasks (all of them unless `metrics` picks).
    A cell whose run has not logged its params yet (just created) is left out."""
    import pandas as pd
    if frame.empty or "params.ratio" not in frame:
        return pd.DataFrame()
    frame = frame[frame["params.ratio"].notna()]
    for key, wanted in filters.items():
        if wanted is None:
            continue
        column = f"params.{key}"
        if column not in frame:
            return pd.DataFrame()
        values = frame[column].astype(float) if key == "ratio" else frame[column]
        frame = frame[values.isin([float(w) for w in wanted] if key == "ratio" else wanted)]
    metric_cols = [c.removeprefix("metrics.") for c in frame.columns if c.startswith("metrics.")]
    if tasks:
        metric_cols = [m for m in metric_cols if m.partition("/")[0] in tasks]
    if metrics:
        chosen = [m for m in metric_cols if any(fnmatch.fnmatch(m, p) or m == p for p in metrics)]
    elif tasks:
        chosen = sorted(metric_cols)
    else:
        chosen = [m for m in HEADLINE_METRICS if m in metric_cols]
    out = pd.DataFrame({
        "cell": frame["tags.bias_inherit.cell_id"], "bias_type": frame["params.bias_type"],
        "ratio": frame["params.ratio"].astype(float), "mitigation": frame["params.mitigation"],
        "seed": frame["params.seed"].astype(int), "status": frame["status"],
        **{m: frame[f"metrics.{m}"] for m in chosen}})
    base_first = (out["cell"] != "base").astype(int)
    return (out.assign(_b=base_first).sort_values(["_b", "ratio", "bias_type", "mitigation", "seed"])
            .drop(columns="_b").reset_index(drop=True))


_SHORT_WORDS = {"accuracy": "acc", "salary": "sal", "recommendation": "rec", "ratio": "γ",
                "mitigation": "mitig", "parse_rate": "parsed", "female": "f", "male": "m"}


def _short(column: str) -> str:
    task, _, metric = column.rpartition("/")
    for long, short in _SHORT_WORDS.items():
        metric = metric.replace(long, short)
    return f"{''.join(w[0] for w in task.split('_'))}/{metric}" if task else metric


def _print_rich(table, title: str) -> None:
    """One line per cell: the cell id is dropped (its parts have their own columns) and task
    names are abbreviated to initials (occupation_classification -> oc), listed in the caption."""
    from rich.console import Console
    from rich.table import Table
    shown = table.drop(columns=["cell"]) if "cell" in table else table
    if "status" in shown and (shown["status"] == "FINISHED").all():
        shown = shown.drop(columns=["status"])
    tasks = sorted({c.rpartition("/")[0] for c in shown.columns if "/" in c})
    view = Table(title=title, caption=", ".join(f"{_short(t + '/x')[:-2]} = {t}" for t in tasks))
    for col in shown.columns:
        view.add_column(_short(col), no_wrap=True)
    for _, row in shown.iterrows():
        view.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row.tolist()])
    # A pipe or a log file has no width: rich would squeeze the table into 80 columns.
    Console(width=None if sys.stdout.isatty() else 240).print(view)


if __name__ == "__main__":
    from ray_jobs.tracking import resolve_tracking_uri
    print_results(sys.argv[1], resolve_tracking_uri(None, sys.argv[2] if len(sys.argv) > 2 else None))
