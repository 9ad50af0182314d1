"""`bias-inherit`: the command line of the service.

    bias-inherit run CONFIG [--address ADDR] [--tracking-uri URI] [key=value ...]
    bias-inherit generate CONFIG [--address ADDR] [--tracking-uri URI] [key=value ...]
    bias-inherit validate CONFIG [key=value ...]
    bias-inherit results [--experiment NAME] [--tracking-uri URI] [filters] [--format table|csv|json]
    bias-inherit tasks
    bias-inherit evaluate --model NAME [--adapter DIR] [--tasks all|a,b] [--limit N] [--data-dir D]
    bias-inherit submit CONFIG --address http://HEAD:8265 [--no-wait]   (and status, logs, stop, list)
    bias-inherit plan CONFIG [--gpus N]
    bias-inherit calibrate CONFIG [--address ADDR] [--dry-run]
    bias-inherit resume EXPERIMENT [--tracking-uri URI] [--address ADDR]
    bias-inherit report EXPERIMENT [--parent-run ID] [--out DIR] [--tracking-uri URI]
    bias-inherit data list|fetch TASK|verify [--data-dir D]

A user mistake (bad config, missing data, unreachable MLflow or Ray) prints one line starting
with "error:" and exits 2; no traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from bias.errors import USER_ERRORS
from ray_jobs.console import fail


def _quiet_warnings() -> None:
    import warnings
    for category in (UserWarning, FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)


# Every command module registers its commands with `add_commands(sub)`, each parser carrying its
# `handler`; this is the only module that imports command modules.
COMMAND_MODULES = ("ray_jobs.run", "ray_jobs.generate", "ray_jobs.cli", "ray_jobs.evaluate",
                   "ray_jobs.report", "ray_jobs.plan", "ray_jobs.jobs", "ray_jobs.data",
                   "ray_jobs.calibrate")


def add_commands(sub) -> None:
    """validate, results and tasks: the commands that only read a config or MLflow."""
    p = sub.add_parser("validate", help="check a config (pre-flight) and print its grid")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--tracking-uri")
    p.set_defaults(handler=lambda args: validate_command(args.config, args.overrides,
                                                         args.tracking_uri))

    p = sub.add_parser("results", help="print the grid's cells x metrics, read from MLflow")
    p.add_argument("--experiment", help="MLflow experiment (default: from --config)")
    p.add_argument("--config", help="take the experiment name and tracking URI from a config")
    p.add_argument("--tracking-uri")
    p.add_argument("--parent-run", help="a parent run id (default: the latest)")
    p.add_argument("--social-bias", action="append", help="a social bias: gender, culture, age")
    p.add_argument("--bias-type", action="append")
    p.add_argument("--ratio", action="append")
    p.add_argument("--mitigation", action="append")
    p.add_argument("--task", action="append", help="keep this task's metrics (all of them "
                                                  "unless --metric picks)")
    p.add_argument("--metric", action="append", help="metric name or glob, e.g. 'salary*/*'")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(handler=results_command)

    sub.add_parser("tasks", help="list the evaluation tasks").set_defaults(handler=tasks_command)


def main(argv: list[str] | None = None) -> int:
    _quiet_warnings()
    parser = argparse.ArgumentParser(prog="bias-inherit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except USER_ERRORS as e:
        return fail(str(e))


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
        return fail("results needs --experiment NAME or --config FILE")
    uri = resolve_tracking_uri(configured_uri, args.tracking_uri)
    from ray_jobs.tracking import check_tracking_reachable
    check_tracking_reachable(uri)
    from ray_jobs.results import print_results
    print_results(experiment, uri, parent_run_id=args.parent_run,
                  filters={"social_bias": args.social_bias, "bias_type": args.bias_type,
                           "ratio": args.ratio, "mitigation": args.mitigation},
                  metrics=args.metric, fmt=args.format, tasks=args.task)
    return 0


def tasks_command(args) -> int:
    from evaluation.tasks import TASKS
    for task in TASKS.values():
        print(f"{task.name:28} {task.kind:15} {task.relation:9} {task.description}")
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
