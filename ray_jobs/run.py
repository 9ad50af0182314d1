"""Run one experiment end to end: validate -> Ray -> MLflow parent run -> generation -> Tune grid.

    python -m ray_jobs.run configs/smoke.yaml [key=value ...]          # local Ray, embedded MLflow
    ray job submit --address http://HEAD:8265 --working-dir . -- python -m ray_jobs.run configs/paper_gender.yaml

Everything that can be checked before Ray starts is checked first (ray_jobs/preflight.py: config,
models, data, tracking store, storage); the problems print as one paragraph and exit 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

from bias.config import ExperimentConfig
from bias.errors import USER_ERRORS, ExperimentError
from ray_jobs.analyses import run_analyses
from ray_jobs.console import GridProgress, add_experiment_arguments, fail, start_console
from ray_jobs.experiment import (cell_logger, cell_trainable, check_enough_generations, checked,
                                 choose_engine, connect_ray, finish_grid, flat_params,
                                 generate_sets, grid_tuner, log_generated, storage_uri)
from ray_jobs.engine_scoring import score_grid_with_engine
from ray_jobs.rounds import run_rounds
from ray_jobs.tracking import (TAG_KIND, TAG_SKIPPED, TAG_TUNE_PATH, CellRunLogger,
                               check_tracking_reachable, experiment_and_uri, finished_cells,
                               resolve_tracking_uri)


def run_experiment(cfg: ExperimentConfig, address: str | None = None,
                   tracking_uri: str | None = None, echo=print, verbose: bool = True) -> str:
    """Run the whole experiment; returns the MLflow parent run id."""
    tracking_uri = resolve_tracking_uri(cfg.tracking.uri, tracking_uri)
    cfg, checks = checked(cfg, tracking_uri, echo)
    echo(f"pre-flight passed ({checks.seconds:.1f} s)")

    import mlflow

    from training.grid import derive_max_concurrent_trials, expand_cells, generation_jobs

    ray = connect_ray(address, verbose)
    storage = storage_uri(cfg.storage_path)
    cfg = cfg.model_copy(update={"storage_path": storage})
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.set_experiment(cfg.experiment_name)
    cells = expand_cells(cfg)
    cluster = ray.cluster_resources()
    max_concurrent = derive_max_concurrent_trials(cfg.resources, cluster, len(cells))

    with mlflow.start_run(run_name=f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                          tags={TAG_KIND: "parent", "bias_inherit.config_digest": cfg.digest()}) as parent:
        echo(f"MLflow parent run {parent.info.run_id} in experiment {cfg.experiment_name!r} "
             f"({tracking_uri})")
        mlflow.log_params(flat_params(cfg))
        mlflow.log_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), "config.yaml")
        if checks.skipped:
            mlflow.set_tag(TAG_SKIPPED, json.dumps(checks.skipped))

        engine = choose_engine(cfg, cluster.get("GPU", 0))
        gen_started = time.perf_counter()
        generated = generate_sets(cfg, engine, echo, generation_jobs(cells))   # cache hits: no model work
        mlflow.log_metric("generation_seconds", time.perf_counter() - gen_started)
        log_generated(mlflow, generated, cfg)
        check_enough_generations(generated, cfg)
        run_analyses(cfg, generated, mlflow, echo)

        echo(f"grid: {len(cells)} cells, {max_concurrent} at a time, engine={engine}")
        logger = cell_logger(cfg, tracking_uri, experiment.experiment_id, parent.info.run_id, cells)
        # Train runs live inside the Tune experiment: a rerun of the config starts clean, while
        # a retried or resumed trial finds its own run's checkpoints again.
        tune_name = f"{cfg.name}-{parent.info.run_id[:8]}"
        mlflow.set_tag(TAG_TUNE_PATH, f"{storage}/{tune_name}")
        tuner = grid_tuner(cell_trainable(cfg, generated), [c.model_dump() for c in cells],
                           storage, tune_name, max_concurrent, cfg.resources.max_failures,
                           [logger, GridProgress(len(cells), echo)])
        results = finish_grid(mlflow, tuner, len(cells), parent.info.run_id)
        score_grid_with_engine(cfg, results, tracking_uri, experiment.experiment_id,
                               parent.info.run_id, echo)
        if cfg.rounds > 1:
            run_rounds(cfg, tracking_uri, experiment.experiment_id, parent.info.run_id, echo)
        return parent.info.run_id


def find_parent_run(experiment: str, tracking_uri: str, parent_run_id: str | None = None):
    """The parent run to resume (the latest of the experiment by default) and its config."""
    from mlflow.tracking import MlflowClient

    from ray_jobs.tracking import latest_parent_run
    client = MlflowClient(tracking_uri)
    if client.get_experiment_by_name(experiment) is None:
        raise ExperimentError(f"no MLflow experiment named {experiment!r} at {tracking_uri}")
    parent_run_id = parent_run_id or latest_parent_run(experiment, tracking_uri)
    if parent_run_id is None:
        raise ExperimentError(f"experiment {experiment!r} has no bias-inherit parent run to resume")
    run = client.get_run(parent_run_id)
    local = client.download_artifacts(parent_run_id, "config.yaml")
    cfg = ExperimentConfig.model_validate(yaml.safe_load(Path(local).read_text()))
    return run, cfg


def tune_experiment_state(path: str) -> dict[str, str]:
    """Trial id -> Tune status of a Tune experiment directory (TERMINATED = finished)."""
    from ray.tune import ExperimentAnalysis
    return {t.trial_id: t.status for t in ExperimentAnalysis(path).trials}


def resume_experiment(experiment: str, tracking_uri: str | None = None, address: str | None = None,
                      parent_run_id: str | None = None, echo=print, verbose: bool = True,
                      on_config=None) -> tuple[str, list[str]]:
    """Finish an interrupted grid with Tuner.restore: finished cells stay as they are, unfinished
    and failed ones run (resuming from their Train checkpoints), logging into the same child runs.
    Returns the parent run id and the cells that ran."""
    tracking_uri = resolve_tracking_uri(None, tracking_uri)
    check_tracking_reachable(tracking_uri)
    parent, cfg = find_parent_run(experiment, tracking_uri, parent_run_id)
    parent_run_id = parent.info.run_id
    tune_path = parent.data.tags.get(TAG_TUNE_PATH)
    if on_config is not None:   # the CLI's console, once the config is known
        on_config(cfg)
    cfg, _ = checked(cfg, tracking_uri, echo)

    import mlflow
    from ray import tune

    from training.grid import expand_cells, generation_jobs
    if not tune_path or not tune.Tuner.can_restore(tune_path):
        raise ExperimentError(
            f"parent run {parent_run_id} has no Tune experiment to restore "
            f"({tune_path or 'the grid never started'}); run the config again: finished "
            f"generations are cached")
    ray = connect_ray(address, verbose)
    cells = expand_cells(cfg)
    # MLflow is the record: a cell whose child run finished is done even where Tune's state
    # (saved every few seconds) had not caught up when the driver died.
    done = set(finished_cells(tracking_uri, parent.info.experiment_id, parent_run_id))
    status = tune_experiment_state(tune_path)
    to_run = sorted(c.cell_id for c in cells if c.cell_id not in done)
    echo(f"resume {tune_path}: {len(cells) - len(to_run)} of {len(cells)} cells finished, "
         f"{len(to_run)} to run ({', '.join(to_run) or 'none'}); Tune state: "
         f"{sum(s == 'TERMINATED' for s in status.values())} terminated")
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=parent_run_id):
        mlflow.set_tag("bias_inherit.resumed", time.strftime("%Y-%m-%dT%H:%M:%S"))
        engine = choose_engine(cfg, ray.cluster_resources().get("GPU", 0))
        generated = generate_sets(cfg, engine, echo, generation_jobs(cells))
        check_enough_generations(generated, cfg)
        tuner = tune.Tuner.restore(tune_path, cell_trainable(cfg, generated, tuple(sorted(done))),
                                   resume_unfinished=True, resume_errored=True)
        # The callbacks come back from tuner.pkl; point the cell logger at this session's URI.
        loggers = [cb for cb in tuner._local_tuner.get_run_config().callbacks
                   if isinstance(cb, CellRunLogger)]
        for logger in loggers:
            logger.retarget(tracking_uri, skip_cells=done)
        results = finish_grid(mlflow, tuner, len(cells), parent_run_id)
        score_grid_with_engine(cfg, results, tracking_uri, parent.info.experiment_id,
                               parent_run_id, echo)
        started = [cell for logger in loggers for cell in logger.started]
        echo(f"resumed: {len(started)} cells ran ({', '.join(sorted(started)) or 'none'})")
        stale = sorted(set(to_run) - set(started))
        if stale:   # finished in Tune, but their last MLflow writes died with the driver
            echo(f"warning: {len(stale)} cells finished in Tune but not in MLflow ({', '.join(stale)}); "
                 f"their results are in {tune_path}")
        return parent_run_id, started


def run_command(config: str, overrides: list[str], address: str | None,
                tracking_uri: str | None, verbose: bool = False) -> int:
    from bias.config import load_config
    from ray_jobs.results import print_results, summary_metrics
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
    except USER_ERRORS as e:
        return fail(str(e))
    except KeyboardInterrupt:
        return fail("interrupted; finished cells are in MLflow and generations stay cached")
    return 0


def add_commands(sub) -> None:
    """Register `run` and `resume` on the CLI's subparsers (`handler` each)."""
    p = sub.add_parser("run", help="run an experiment (generation + grid + evaluation)")
    add_experiment_arguments(p)
    p.set_defaults(handler=lambda args: run_command(args.config, args.overrides, args.address,
                                                    args.tracking_uri, args.verbose))
    p = sub.add_parser("resume", help="finish the unfinished cells of an interrupted grid")
    p.add_argument("experiment", help="MLflow experiment name, or the experiment's config file")
    p.add_argument("--parent-run", help="the parent run to resume (default: the latest)")
    p.add_argument("--tracking-uri")
    p.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local cluster)")
    p.add_argument("--verbose", action="store_true", help="the libraries' logs on the console too")

    def on_resume(args) -> int:
        from ray_jobs.results import print_results
        experiment, uri = experiment_and_uri(args.experiment, args.tracking_uri)
        try:
            parent_run_id, _ = resume_experiment(
                experiment, uri, args.address, args.parent_run,
                echo=lambda *a: print(*a, flush=True), verbose=args.verbose,
                on_config=lambda cfg: start_console(cfg, args.verbose))
        except KeyboardInterrupt:
            return fail("interrupted; run resume again to go on")
        print_results(experiment, resolve_tracking_uri(None, uri), parent_run_id=parent_run_id)
        return 0
    p.set_defaults(handler=on_resume)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ray_jobs.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="key=value, dotted keys, YAML values")
    parser.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS or local)")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    return run_command(args.config, args.overrides, args.address, args.tracking_uri)


if __name__ == "__main__":
    sys.exit(main())
