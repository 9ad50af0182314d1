"""`bias-inherit`: the command line of the service.

    bias-inherit run CONFIG [--address ADDR] [--tracking-uri URI] [key=value ...]
    bias-inherit generate CONFIG [--address ADDR] [--tracking-uri URI] [key=value ...]
    bias-inherit validate CONFIG [key=value ...]
    bias-inherit results [--experiment NAME] [--tracking-uri URI] [filters] [--format table|csv|json]
    bias-inherit tasks
    bias-inherit evaluate --model NAME [--adapter DIR] [--tasks all|a,b] [--limit N] [--data-dir D]
    bias-inherit submit CONFIG --address http://HEAD:8265 [--no-wait]   (and status, logs, stop, list)
    bias-inherit plan CONFIG [--gpus N]
    bias-inherit resume EXPERIMENT [--tracking-uri URI] [--address ADDR]
    bias-inherit report EXPERIMENT [--parent-run ID] [--out DIR] [--tracking-uri URI]
    bias-inherit data list|fetch TASK|verify [--data-dir D]

A user mistake (bad config, missing data, unreachable MLflow or Ray) prints one line starting
with "error:" and exits 2; no traceback.
"""
from __future__ import annotations

import argparse
import fnmatch
import sys

ERROR_EXIT = 2
HEADLINE_METRICS = (
    "occupation_classification/accuracy", "occupation_classification/accuracy_gap",
    "occupation_classification/tpr_gap_rms", "salary_recommendation/mean_salary",
    "salary_recommendation/salary_gap", "salary_recommendation/parse_rate",
)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return ERROR_EXIT


def _user_errors() -> tuple[type[BaseException], ...]:
    from bias.config import ConfigError
    from bias.models import ModelUnavailableError
    from bias.paths import MissingDataError
    from ray_jobs.preflight import PreflightError
    from ray_jobs.run import ExperimentError
    from ray_jobs.tracking import TrackingUnreachableError
    from training.grid import ClusterTooSmallError
    from training.mixing import NotEnoughDataError
    return (ConfigError, PreflightError, ExperimentError, TrackingUnreachableError, MissingDataError,
            ModelUnavailableError, ClusterTooSmallError, NotEnoughDataError, LookupError)


def start_console(cfg, verbose: bool) -> None:
    """The libraries' logs to a file in the storage dir (printed), the console for stage lines."""
    from ray_jobs.console import log_file_for, route_library_logs
    path = log_file_for(cfg.storage_path, cfg.name)
    route_library_logs(path, verbose)
    print(f"{cfg.name}: logs in {path}" + ("" if verbose else " (--verbose shows them here)"),
          flush=True)


def run_command(config: str, overrides: list[str], address: str | None,
                tracking_uri: str | None, verbose: bool = False) -> int:
    from bias.config import load_config
    from ray_jobs.run import run_experiment
    from ray_jobs.tracking import resolve_tracking_uri
    try:
        cfg = load_config(config, overrides)
        start_console(cfg, verbose)
        parent_run_id = run_experiment(cfg, address=address, tracking_uri=tracking_uri,
                                       echo=lambda *a: print(*a, flush=True), verbose=verbose)
        uri = resolve_tracking_uri(cfg.tracking.uri, tracking_uri)
        print_results(cfg.experiment_name, uri, parent_run_id=parent_run_id,
                      metrics=summary_metrics(cfg.evaluation.tasks, cfg.social_bias))
        print(f"every metric: bias-inherit results --experiment {cfg.experiment_name}; "
              f"the report: bias-inherit report {cfg.experiment_name}")
    except _user_errors() as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return _fail("interrupted; finished cells are in MLflow and generations stay cached")
    return 0


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


def _quiet_warnings() -> None:
    import warnings
    for category in (UserWarning, FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)


def add_experiment_arguments(p) -> None:
    """CONFIG, overrides, --address and --tracking-uri: shared by run and generate."""
    p.add_argument("config", help="experiment YAML, e.g. configs/smoke.yaml")
    p.add_argument("overrides", nargs="*", help="key=value overrides, dotted keys, YAML values")
    p.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local cluster)")
    p.add_argument("--tracking-uri", help="MLflow URI (default: config, MLFLOW_TRACKING_URI, "
                                          "else sqlite:///./mlflow.db)")
    p.add_argument("--verbose", action="store_true",
                   help="Ray's, Tune's and the libraries' logs on the console too (always in "
                        "the log file)")


def main(argv: list[str] | None = None) -> int:
    _quiet_warnings()
    parser = argparse.ArgumentParser(prog="bias-inherit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    add_experiment_arguments(sub.add_parser(
        "run", help="run an experiment (generation + grid + evaluation)"))

    p_val = sub.add_parser("validate", help="check a config (pre-flight) and print its grid")
    p_val.add_argument("config")
    p_val.add_argument("overrides", nargs="*")
    p_val.add_argument("--tracking-uri")

    p_res = sub.add_parser("results", help="print the grid's cells x metrics, read from MLflow")
    p_res.add_argument("--experiment", help="MLflow experiment (default: from --config)")
    p_res.add_argument("--config", help="take the experiment name and tracking URI from a config")
    p_res.add_argument("--tracking-uri")
    p_res.add_argument("--parent-run", help="a parent run id (default: the latest)")
    p_res.add_argument("--social-bias", action="append", help="gender or culture")
    p_res.add_argument("--bias-type", action="append")
    p_res.add_argument("--ratio", action="append")
    p_res.add_argument("--mitigation", action="append")
    p_res.add_argument("--task", action="append", help="keep this task's metrics (all of them "
                                                      "unless --metric picks)")
    p_res.add_argument("--metric", action="append", help="metric name or glob, e.g. 'salary*/*'")
    p_res.add_argument("--format", choices=("table", "csv", "json"), default="table")

    sub.add_parser("tasks", help="list the evaluation tasks")
    # Operations: submit, status, logs, stop, list (jobs.py), plan (plan.py), resume.
    from ray_jobs import data, jobs, plan
    ops = {**jobs.add_commands(sub), **plan.add_commands(sub), **add_resume_command(sub),
           **add_report_command(sub), **data.add_commands(sub)}

    from ray_jobs.evaluate import add_parser as add_evaluate_parser  # `evaluate` lives there
    add_evaluate_parser(sub)
    from ray_jobs.generate import add_parser as add_generate_parser
    add_generate_parser(sub)   # `generate`: dispatched through args.handler

    args = parser.parse_args(argv)
    if args.command == "run":
        return run_command(args.config, args.overrides, args.address, args.tracking_uri,
                           args.verbose)
    try:
        if getattr(args, "handler", None):   # subcommands registered by their own module
            return args.handler(args)
        if args.command in ops:
            return ops[args.command](args)
        if args.command == "validate":
            return validate_command(args.config, args.overrides, args.tracking_uri)
        if args.command == "results":
            return results_command(args)
        if args.command == "tasks":
            from evaluation.tasks import TASKS
            for task in TASKS.values():
                print(f"{task.name:28} {task.kind:15} {task.relation:9} {task.description}")
            return 0
    except _user_errors() as e:
        return _fail(str(e))
    return 0


def experiment_and_uri(experiment: str, uri: str | None) -> tuple[str, str]:
    """EXPERIMENT may be an MLflow experiment name or the experiment's config file."""
    from pathlib import Path

    from ray_jobs.tracking import resolve_tracking_uri
    configured = None
    if experiment.endswith((".yaml", ".yml")) and Path(experiment).is_file():
        from bias.config import load_config
        cfg = load_config(experiment)
        experiment, configured = cfg.experiment_name, cfg.tracking.uri
    return experiment, resolve_tracking_uri(configured, uri)


def add_report_command(sub) -> dict:
    """`report EXPERIMENT`: the HTML report (plots, statistics, findings), logged to the parent run."""
    p = sub.add_parser("report", help="write the experiment's HTML report and log it to MLflow")
    p.add_argument("experiment", help="MLflow experiment name, or the experiment's config file")
    p.add_argument("--parent-run", help="the parent run to report (default: the latest)")
    p.add_argument("--out", help="output directory (default: reports/EXPERIMENT-PARENT8)")
    p.add_argument("--tracking-uri")

    def on_report(args) -> int:
        import os
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")   # keep stdout clean
        from ray_jobs.report import ARTIFACT_PATH, build_report
        from ray_jobs.tracking import check_tracking_reachable
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
        return 0
    return {"report": on_report}


def add_resume_command(sub) -> dict:
    """`resume EXPERIMENT`: finish an interrupted grid (Tuner.restore), into the same MLflow runs."""
    p = sub.add_parser("resume", help="finish the unfinished cells of an interrupted grid")
    p.add_argument("experiment", help="MLflow experiment name, or the experiment's config file")
    p.add_argument("--parent-run", help="the parent run to resume (default: the latest)")
    p.add_argument("--tracking-uri")
    p.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local cluster)")
    p.add_argument("--verbose", action="store_true", help="the libraries' logs on the console too")

    def on_resume(args) -> int:
        from ray_jobs.run import resume_experiment
        from ray_jobs.tracking import resolve_tracking_uri
        experiment, uri = experiment_and_uri(args.experiment, args.tracking_uri)
        try:
            parent_run_id, _ = resume_experiment(
                experiment, uri, args.address, args.parent_run,
                echo=lambda *a: print(*a, flush=True), verbose=args.verbose,
                on_config=lambda cfg: start_console(cfg, args.verbose))
        except KeyboardInterrupt:
            return _fail("interrupted; run resume again to go on")
        print_results(experiment, resolve_tracking_uri(None, uri), parent_run_id=parent_run_id)
        return 0
    return {"resume": on_resume}


def validate_command(config: str, overrides: list[str], tracking_uri: str | None = None) -> int:
    """Schema, then the whole pre-flight (models, data, tracking, storage); prints the grid."""
    from bias.config import load_config
    from ray_jobs.preflight import preflight
    from ray_jobs.tracking import resolve_tracking_uri
    from training.grid import expand_cells
    cfg = load_config(config, overrides)
    checks = preflight(cfg, resolve_tracking_uri(cfg.tracking.uri, tracking_uri))
    for line in checks.skip_lines():
        print(line)
    cells = expand_cells(cfg)
    print(f"{config}: valid; pre-flight passed in {checks.seconds:.1f} s. "
          f"experiment={cfg.experiment_name} social_bias={cfg.social_bias} "
          f"{len(cells)} cells after collapsing:")
    for cell in cells:
        print(f"  {cell.cell_id}")
    return 0


def results_command(args) -> int:
    from bias.config import load_config
    from ray_jobs.tracking import resolve_tracking_uri
    configured_uri, experiment = None, args.experiment
    if args.config:
        cfg = load_config(args.config)
        configured_uri, experiment = cfg.tracking.uri, experiment or cfg.experiment_name
    if not experiment:
        return _fail("results needs --experiment NAME or --config FILE")
    uri = resolve_tracking_uri(configured_uri, args.tracking_uri)
    from ray_jobs.tracking import check_tracking_reachable
    check_tracking_reachable(uri)
    print_results(experiment, uri, parent_run_id=args.parent_run,
                  filters={"social_bias": args.social_bias, "bias_type": args.bias_type,
                           "ratio": args.ratio, "mitigation": args.mitigation},
                  metrics=args.metric, fmt=args.format, tasks=args.task)
    return 0


def entry() -> None:
    """Console-script entry: a closed pipe (`| head`) ends quietly, not with a traceback."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


if __name__ == "__main__":
    entry()
