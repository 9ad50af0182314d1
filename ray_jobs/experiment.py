"""The orchestration `run`, `resume`, `generate` and multi-round runs share: pre-flight and model
preparation, the Ray connection, the generation stage, MLflow logging of the generated sets, and
the Tune grid (trainable, tuner, failures). The command modules import this one; it imports no
command module.

    python -m ray_jobs.experiment configs/smoke.yaml    # the engine and sets a run would use
"""
from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

from bias import metric_names as names
from bias.config import ExperimentConfig
from bias.errors import USER_ERROR_KEY, ExperimentError
from ray_jobs.preflight import Preflight, preflight, without_skipped
from ray_jobs.tracking import CellRunLogger


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
        table = balance_table(frame, cfg.social_bias)
        test = balance_test(table)
        figures = {"kept": gen.stats["kept"], "requested": gen.stats["requested"],
                   **{f"dropped_{k}": v for k, v in gen.stats["dropped"].items()},
                   **{f"duplicates_{k}": v for k, v in gen.stats.get("duplicates", {}).items()},
                   **({"tokens_per_second": gen.stats["tokens_per_second"]}
                      if gen.stats.get("tokens_per_second") else {}),
                   "balance_chi2": test["chi2"], "balance_p_value": test["p_value"],
                   **{f"share_{g}": v for g, v in group_shares(frame, cfg.social_bias).items()}}
        mlflow.log_metrics({names.generation_metric(bias_type, seed, field): value
                            for field, value in figures.items()})
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


def choose_engine(cfg: ExperimentConfig, cluster_gpus: float) -> str:
    from generation.engines import pick_engine
    try:
        return pick_engine(cfg.generation.engine, cluster_gpus)
    except RuntimeError as e:          # engine=vllm without the gpu extra: the user's to fix
        raise ExperimentError(str(e)) from None


def generate_sets(cfg: ExperimentConfig, engine: str, echo=print,
                  jobs: list[tuple[str, int]] | None = None) -> dict:
    """{(bias_type, seed): GeneratedSet} for `jobs` (default: every type x seed of the config),
    one line per set; existing sets are cache hits."""
    from bias.config import CONTROL_NULL, CONTROL_SKEWED
    from generation.control import write_control_sets
    from generation.file_source import write_file_set
    from generation.pipeline import generate_many
    generated = {}
    if jobs is None:
        jobs = [(t, s) for s in cfg.seeds for t in cfg.augmented_sets]
    by_engine = [(t, s) for t, s in jobs
                 if t not in (CONTROL_SKEWED, CONTROL_NULL) and not cfg.file_source(t)]
    engine_sets = generate_many(cfg, by_engine, engine,
                                on_shard=lambda t, s, r: echo(f"  {t} seed {s}: shard "
                                                              f"{r[0]}-{r[1]} written"))
    for bias_type, seed in jobs:
        if bias_type in (CONTROL_SKEWED, CONTROL_NULL):
            if (bias_type, seed) not in generated:
                generated.update(write_control_sets(cfg, seed))
            gen = generated[(bias_type, seed)]
            echo(f"control set {bias_type} seed {seed}: {gen.stats['kept']} rows "
                 f"({'cache hit' if gen.cache_hit else 'written'}) -> {gen.uri}")
            continue
        if cfg.file_source(bias_type):
            generated.update(write_file_set(cfg, bias_type, seed))
            gen = generated[(bias_type, seed)]
            echo(f"file set {bias_type} seed {seed}: {gen.stats['kept']}/{gen.stats['requested']} "
                 f"rows kept ({'cache hit' if gen.cache_hit else 'read'}) -> {gen.uri}")
            continue
        gen = engine_sets[(bias_type, seed)]
        work = gen.work
        how = ("cache hit" if gen.cache_hit else
               f"{work['shards_generated']} shards generated, {work['shards_reused']} reused")
        echo(f"generation {bias_type} seed {seed}: {gen.stats['kept']}/"
             f"{gen.stats['requested']} kept ({how}) -> {gen.uri}")
        generated[(bias_type, seed)] = gen
    return generated


def shortfall(generated: dict, cfg: ExperimentConfig) -> str | None:
    """The message `run` would fail with when a set has too few kept rows, or None."""
    try:
        check_enough_generations(generated, cfg)
    except ExperimentError as e:
        return str(e)
    return None


if __name__ == "__main__":
    from bias.config import load_config
    from training.grid import expand_cells, generation_jobs
    config = load_config(sys.argv[1], sys.argv[2:])
    print(f"engine (no GPU): {choose_engine(config, 0)}; sets: "
          f"{generation_jobs(expand_cells(config))}")
