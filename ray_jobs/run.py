"""Run one experiment end to end: validate -> Ray -> MLflow parent run -> generation -> Tune grid.

    python -m ray_jobs.run configs/smoke.yaml [key=value ...]          # local Ray, embedded MLflow
    ray job submit --address http://HEAD:8265 --working-dir . -- python -m ray_jobs.run configs/paper_gender.yaml

Everything that can be checked before Ray starts is checked first (ray_jobs/preflight.py: config,
models, data, tracking store, storage); the problems print as one paragraph and exit 2.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import yaml

from bias.config import ExperimentConfig
from ray_jobs.analyses import run_analyses
from ray_jobs.console import GridProgress
from ray_jobs.preflight import Preflight, preflight, without_skipped
from training.lora_loop import USER_ERROR_KEY
from ray_jobs.tracking import (TAG_KIND, TAG_SKIPPED, TAG_TUNE_PATH, CellRunLogger, check_tracking_reachable, finished_cells, resolve_tracking_uri)


class ExperimentError(RuntimeError):
    """A run that cannot go on; the message is for the user."""


def storage_uri(path: str) -> str:
    """Tune and Train want absolute paths or URIs."""
    return path if "://" in path else str(Path(path).resolve())


def prepare_models(cfg: ExperimentConfig) -> None:
    """Build the offline models once, here, not in every worker (pre-flight has checked them)."""
    from bias.models import ModelUnavailableError, resolve_model
    generates = bool(cfg.bias_types) or cfg.rounds > 1
    for name in {cfg.model.name, *([cfg.generation.model] if generates else [])}:
        try:
            resolve_model(name)
        except ModelUnavailableError as e:
            raise ExperimentError(str(e)) from None


def checked(cfg: ExperimentConfig, tracking_uri: str, echo=print) -> tuple[ExperimentConfig, Preflight]:
    """Pre-flight, its skip lines printed once, the models prepared; the config to run."""
    from bias.paths import data_dir
    result = preflight(cfg, tracking_uri)
    for line in result.skip_lines():
        echo(line)
    prepare_models(cfg)
    root = data_dir(cfg.data.dir)
    if root is not None:   # the workers read the data dir this driver checked, logged with it
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"dir": str(root)})})
    return without_skipped(cfg, result), result


def connect_ray(address: str | None, verbose: bool = True):
    """`verbose=False`: workers' output stays in Ray's session logs, not on the console."""
    import ray
    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return ray
    try:
        if address:
            ray.init(address=address, log_to_driver=verbose)
        else:
            # The dashboard also serves the State API that Ray Train's placement-group cleaner polls.
            from bias.local_ray import start_local_ray
            start_local_ray(log_to_driver=verbose)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ExperimentError(f"cannot connect to Ray at {address or 'a new local cluster'}: "
                              f"{str(e).splitlines()[0]}") from None
    return ray


def flat_params(cfg: ExperimentConfig) -> dict[str, str]:
    def walk(prefix: str, node) -> dict[str, str]:
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                out.update(walk(f"{prefix}.{k}" if prefix else k, v))
            return out
        return {prefix: json.dumps(node) if isinstance(node, (list, dict)) else str(node)}
    return {k: v[:6000] for k, v in walk("", cfg.model_dump(mode="json")).items()}


def log_generated(mlflow, generated: dict, cfg: ExperimentConfig) -> None:
    """Each augmented set as a dataset input of the open run (source: the set's URI; digest: of
    its rows), with its stats, drop counts, a sample, and its group balance: counts per group and
    occupation as a table plus a chi-square test against balance (generation/balance.py)."""
    import mlflow.data

    from generation.balance import balance_table, balance_test, group_shares
    for (bias_type, seed), gen in generated.items():
        frame = gen.read()
        with warnings.catch_warnings():   # a local path fits two source kinds; ints are ints
            warnings.filterwarnings("ignore", message="The specified dataset source")
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
            dataset = mlflow.data.from_pandas(frame, source=gen.uri,
                                              name=f"augmented-{bias_type}-s{seed}")
            mlflow.log_input(dataset, context="augmented",
                             tags={"generation_key": gen.key, "bias_type": bias_type,
                                   "seed": str(seed), "cache_hit": str(gen.cache_hit).lower()})
        prefix = f"generation.{bias_type}.s{seed}"
        table = balance_table(frame, cfg.social_bias)
        test = balance_test(table)
        mlflow.log_metrics({f"{prefix}.kept": gen.stats["kept"],
                            f"{prefix}.requested": gen.stats["requested"],
                            **{f"{prefix}.dropped_{k}": v for k, v in gen.stats["dropped"].items()},
                            **{f"{prefix}.duplicates_{k}": v
                               for k, v in gen.stats.get("duplicates", {}).items()},
                            **({f"{prefix}.tokens_per_second": gen.stats["tokens_per_second"]}
                               if gen.stats.get("tokens_per_second") else {}),
                            f"{prefix}.balance_chi2": test["chi2"],
                            f"{prefix}.balance_p_value": test["p_value"],
                            **{f"{prefix}.share_{g}": v
                               for g, v in group_shares(frame, cfg.social_bias).items()}})
        mlflow.log_dict({**gen.stats, "balance_test": test},
                        f"generation/{bias_type}-s{seed}-stats.json")
        mlflow.log_table(table, artifact_file=f"generation/{bias_type}-s{seed}-group-balance.json")
        # The sample covers every occupation x group cell before it repeats one.
        sample = (frame.assign(_k=frame.groupby(["occupation", "group"]).cumcount())
                  .sort_values(["_k", "prompt_index"]).drop(columns="_k").head(50))
        mlflow.log_table(sample, artifact_file=f"generation/{bias_type}-s{seed}-sample.json")


def check_enough_generations(generated: dict, cfg: ExperimentConfig) -> None:
    from training.mixing import mix_counts
    need = mix_counts(max(cfg.ratios), cfg.data.dataset_size)[1]
    short = {f"{t} (seed {s})": g.stats["kept"] for (t, s), g in generated.items() if g.stats["kept"] < need}
    if short:
        raise ExperimentError(
            f"γ={max(cfg.ratios)} needs {need} augmented rows per type but only {short} valid "
            f"generations were kept (drop reasons are logged on the parent run); raise "
            f"generation.samples_per_type. Finished generations stay cached.")


def cell_logger(cfg: ExperimentConfig, tracking_uri: str, experiment_id: str,
                parent_run_id: str, cells: list) -> CellRunLogger:
    return CellRunLogger(tracking_uri, experiment_id, parent_run_id,
                         {c.cell_id: c.model_dump() for c in cells},
                         {"social_bias": cfg.social_bias, "model": cfg.model.name,
                          "generator": cfg.generation.model,
                          "dataset_size": str(cfg.data.dataset_size)}, cfg.storage_path)


def cell_trainable(cfg: ExperimentConfig, generated: dict, finished_cells: tuple[str, ...] = ()):
    """The Tune trainable: one `run_cell_trial` per cell, its driver sized by `resources`."""
    from ray import tune

    from training.trial import run_cell_trial
    return tune.with_resources(
        tune.with_parameters(run_cell_trial, experiment=cfg.model_dump(mode="json"),
                             augmented_uris={f"{t}|{s}": g.uri for (t, s), g in generated.items()},
                             finished_cells=finished_cells),
        {"cpu": cfg.resources.driver_cpus, **cfg.resources.driver_resources})


def grid_tuner(trainable, cells: list[dict], storage: str, tune_name: str, max_concurrent: int,
               max_failures: int, callbacks: list, reuse_actors: bool = False):
    """One Tune trial per cell, at most `max_concurrent` at a time, failed trials retried."""
    from ray import tune
    return tune.Tuner(
        trainable,
        param_space={"cell": tune.grid_search(cells), "train_storage": f"{storage}/{tune_name}/train"},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent,
                                    reuse_actors=reuse_actors),
        run_config=tune.RunConfig(name=tune_name, storage_path=storage, callbacks=callbacks,
                                  verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=max_failures)))


def user_error(result) -> str | None:
    """The user error a trial reported (training/lora_loop.py), if any: any report may hold it."""
    frame = result.metrics_dataframe
    if frame is None or USER_ERROR_KEY not in frame:
        return None
    reported = frame[USER_ERROR_KEY].dropna()
    return str(reported.iloc[-1]) if len(reported) else None


def failed_cells(results) -> dict[str, str]:
    """Cell id -> one line of cause, for every failed trial: a user error the cell reported
    (not retried) or an error that outlived its retries."""
    failed = {}
    for r in results:
        cell = (r.config or {}).get("cell", {}).get("cell_id", "?")
        lines = str(r.error).strip().splitlines() if r.error else []
        cause = (lines[-1] if lines else type(r.error).__name__) if r.error else user_error(r)
        if cause:
            failed[cell] = cause.splitlines()[0][:300]
    return failed


def finish_grid(mlflow, tuner, n_cells: int, parent_run_id: str):
    """Fit, log the grid's wall time and failures on the parent run; raise if cells failed."""
    grid_started = time.perf_counter()
    results = tuner.fit()
    mlflow.log_metric("grid_seconds", time.perf_counter() - grid_started)
    failed = failed_cells(results)
    mlflow.set_tag("bias_inherit.failed_cells", str(len(failed)))
    if failed:
        mlflow.log_dict(failed, "failed_cells.json")
        listed = "\n".join(f"  {cell}: {cause}" for cell, cause in sorted(failed.items()))
        user = any(user_error(r) for r in results if not r.error)
        again = ("fix the cause and run the config again (generations are cached)" if user
                 else "`bias-inherit resume` reruns them")
        raise ExperimentError(f"{len(failed)} of {n_cells} cells failed; finished cells are in "
                              f"MLflow run {parent_run_id}; {again}:\n{listed}")
    return results


def run_experiment(cfg: ExperimentConfig, address: str | None = None,
                   tracking_uri: str | None = None, echo=print, verbose: bool = True) -> str:
    """Run the whole experiment; returns the MLflow parent run id."""
    tracking_uri = resolve_tracking_uri(cfg.tracking.uri, tracking_uri)
    cfg, checks = checked(cfg, tracking_uri, echo)
    echo(f"pre-flight passed ({checks.seconds:.1f} s)")

    import mlflow

    from ray_jobs.generate import choose_engine, generate_sets
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
        finish_grid(mlflow, tuner, len(cells), parent.info.run_id)
        if cfg.rounds > 1:
            from ray_jobs.rounds import run_rounds
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

    from ray_jobs.generate import choose_engine, generate_sets
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
        finish_grid(mlflow, tuner, len(cells), parent_run_id)
        started = [cell for logger in loggers for cell in logger.started]
        echo(f"resumed: {len(started)} cells ran ({', '.join(sorted(started)) or 'none'})")
        stale = sorted(set(to_run) - set(started))
        if stale:   # finished in Tune, but their last MLflow writes died with the driver
            echo(f"warning: {len(stale)} cells finished in Tune but not in MLflow ({', '.join(stale)}); "
                 f"their results are in {tune_path}")
        return parent_run_id, started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ray_jobs.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="key=value, dotted keys, YAML values")
    parser.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS or local)")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    from ray_jobs.cli import run_command
    return run_command(args.config, args.overrides, args.address, args.tracking_uri)


if __name__ == "__main__":
    sys.exit(main())
