"""Run one experiment end to end: validate -> Ray -> MLflow parent run -> generation -> Tune grid.

    python -m ray_jobs.run configs/smoke.yaml [key=value ...]          # local Ray, embedded MLflow
    ray job submit --address http://HEAD:8265 --working-dir . -- python -m ray_jobs.run configs/paper_gender.yaml

Everything that can be checked before Ray starts is checked first (config, tracking store, data,
offline model); failures print one message and exit 2.
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

from bias.config import ConfigError, ExperimentConfig, load_config
from bias.paths import MissingDataError
from ray_jobs.analyses import run_analyses
from ray_jobs.tracking import (TAG_KIND, CellRunLogger, TrackingUnreachableError,
                               check_tracking_reachable, resolve_tracking_uri)


class ExperimentError(RuntimeError):
    """A run that cannot go on; the message is for the user."""


def storage_uri(path: str) -> str:
    """Tune and Train want absolute paths or URIs."""
    return path if "://" in path else str(Path(path).resolve())


def preflight(cfg: ExperimentConfig, tracking_uri: str) -> None:
    check_tracking_reachable(tracking_uri)
    from bias.models import ModelUnavailableError, resolve_model
    for name in {cfg.model.name, cfg.generation.model}:
        try:
            resolve_model(name)   # converts the offline model once, here, not in every worker
        except ModelUnavailableError as e:
            raise ExperimentError(str(e)) from None
    if cfg.data.original == "hub":
        try:
            import datasets  # noqa: F401
        except ImportError:
            raise ExperimentError("data.original=hub needs the `datasets` package") from None


# Worker-side noise that says nothing about the run: weight-loading bars, advisory warnings.
QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error",
             "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", "TOKENIZERS_PARALLELISM": "false",
             "PYTHONWARNINGS": "ignore::FutureWarning,ignore::UserWarning"}


def connect_ray(address: str | None):
    import ray
    address = address or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return ray
    runtime_env = {"env_vars": QUIET_ENV}
    try:
        if address:
            ray.init(address=address, log_to_driver=True, runtime_env=runtime_env)
        else:
            # The dashboard also serves the State API that Ray Train's placement-group cleaner polls.
            ray.init(log_to_driver=True, runtime_env=runtime_env)
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


def run_experiment(cfg: ExperimentConfig, address: str | None = None,
                   tracking_uri: str | None = None, echo=print) -> str:
    """Run the whole experiment; returns the MLflow parent run id."""
    tracking_uri = resolve_tracking_uri(cfg.tracking.uri, tracking_uri)
    preflight(cfg, tracking_uri)

    import mlflow

    from ray_jobs.generate import choose_engine, generate_sets
    from training.grid import derive_max_concurrent_trials, expand_cells

    ray = connect_ray(address)
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

        engine = choose_engine(cfg, cluster.get("GPU", 0))
        gen_started = time.perf_counter()
        generated = generate_sets(cfg, engine, echo)   # cached sets: no model work
        mlflow.log_metric("generation_seconds", time.perf_counter() - gen_started)
        log_generated(mlflow, generated, cfg)
        check_enough_generations(generated, cfg)
        run_analyses(cfg, generated, mlflow, echo)

        echo(f"grid: {len(cells)} cells, {max_concurrent} at a time, engine={engine}")
        tuner = build_tuner(cfg, cells, {f"{t}|{s}": g.uri for (t, s), g in generated.items()},
                            tracking_uri, experiment.experiment_id, parent.info.run_id,
                            f"{cfg.name}-{parent.info.run_id[:8]}", max_concurrent)
        grid_started = time.perf_counter()
        results = tuner.fit()
        mlflow.log_metric("grid_seconds", time.perf_counter() - grid_started)
        failed = [r for r in results if r.error]
        mlflow.set_tag("bias_inherit.failed_cells", str(len(failed)))
        if failed:
            raise ExperimentError(f"{len(failed)} of {len(cells)} cells failed; finished cells "
                                  f"are in MLflow run {parent.info.run_id}. First error: "
                                  f"{str(failed[0].error).splitlines()[0]}")
        if cfg.rounds > 1:
            from ray_jobs.rounds import run_rounds
            run_rounds(cfg, tracking_uri, experiment.experiment_id, parent.info.run_id, echo)
        return parent.info.run_id


def build_tuner(cfg: ExperimentConfig, cells: list, augmented_uris: dict[str, str],
                tracking_uri: str, experiment_id: str, parent_run_id: str, name: str,
                max_concurrent: int):
    """One Tune trial per cell, each a TorchTrainer; child runs logged by CellRunLogger."""
    from ray import tune

    from training.trial import run_cell_trial
    trainable = tune.with_resources(
        tune.with_parameters(run_cell_trial, experiment=cfg.model_dump(mode="json"),
                             augmented_uris=augmented_uris),
        {"cpu": cfg.resources.driver_cpus, **cfg.resources.driver_resources})
    logger = CellRunLogger(tracking_uri, experiment_id, parent_run_id,
                           {c.cell_id: c.model_dump() for c in cells},
                           {"social_bias": cfg.social_bias, "model": cfg.model.name,
                            "generator": cfg.generation.model,
                            "dataset_size": str(cfg.data.dataset_size)}, cfg.storage_path)
    return tune.Tuner(
        trainable,
        param_space={"cell": tune.grid_search([c.model_dump() for c in cells]),
                     "train_storage": f"{cfg.storage_path}/train"},
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent),
        run_config=tune.RunConfig(
            name=name, storage_path=cfg.storage_path, callbacks=[logger], verbose=0,
            failure_config=tune.FailureConfig(max_failures=cfg.resources.max_failures)),
    )


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
