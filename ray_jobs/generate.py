"""`bias-inherit generate CONFIG`: the generation stage alone, logged to its own MLflow run.

    bias-inherit generate configs/smoke.yaml [key=value ...] [--address ADDR] [--tracking-uri URI]

For every (bias type, seed) of the config it generates the augmented set, or takes it from the
cache, or finishes a set a killed run left half done (only the missing shards are generated).
The MLflow parent run is tagged `bias_inherit.kind=generation`; each set is a dataset input with
its stats, a sample and its group-balance table (see `ray_jobs.run.log_generated`). A later
`bias-inherit run` of the same config finds the sets in the cache and does no model work.
User errors print one `error:` line and exit 2.
"""
from __future__ import annotations

import time

import yaml

from bias.config import ExperimentConfig
from bias.errors import USER_ERRORS
from ray_jobs.console import add_experiment_arguments, fail
from ray_jobs.experiment import (choose_engine, connect_ray, flat_params, generate_sets,
                                 log_generated, prepare_models, shortfall, storage_uri)

KIND_GENERATION = "generation"


def generate_experiment(cfg: ExperimentConfig, address: str | None = None,
                        tracking_uri: str | None = None, echo=print) -> str:
    """Generate every set of the config; returns the MLflow generation run id."""
    from ray_jobs.preflight import preflight
    from ray_jobs.tracking import TAG_KIND, resolve_tracking_uri
    tracking_uri = resolve_tracking_uri(cfg.tracking.uri, tracking_uri)
    preflight(cfg, tracking_uri, tasks=False)
    prepare_models(cfg)
    if cfg.generation.engine != "auto":
        choose_engine(cfg, 0)          # engine=vllm without vllm fails here, before Ray starts

    import mlflow
    ray = connect_ray(address)
    cfg = cfg.model_copy(update={"storage_path": storage_uri(cfg.storage_path)})
    engine = choose_engine(cfg, ray.cluster_resources().get("GPU", 0))
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(cfg.experiment_name)
    with mlflow.start_run(run_name=f"{cfg.name}-generate-{time.strftime('%Y%m%d-%H%M%S')}",
                          tags={TAG_KIND: KIND_GENERATION,
                                "bias_inherit.config_digest": cfg.digest(),
                                "bias_inherit.engine": engine}) as run:
        echo(f"MLflow generation run {run.info.run_id} in experiment {cfg.experiment_name!r} "
             f"({tracking_uri}), engine={engine}")
        mlflow.log_params(flat_params(cfg))
        mlflow.log_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False), "config.yaml")
        started = time.perf_counter()
        generated = generate_sets(cfg, engine, echo)
        mlflow.log_metric("generation_seconds", time.perf_counter() - started)
        log_generated(mlflow, generated, cfg)
        short = shortfall(generated, cfg)
        if short:
            mlflow.set_tag("bias_inherit.shortfall", short[:5000])
            echo(f"warning: {short}")
        return run.info.run_id


def generate_command(config: str, overrides: list[str], address: str | None,
                     tracking_uri: str | None) -> int:
    from bias.config import load_config
    try:
        generate_experiment(load_config(config, overrides), address, tracking_uri,
                            echo=lambda *a: print(*a, flush=True))   # progress, even when piped
    except USER_ERRORS as e:
        return fail(str(e))
    except KeyboardInterrupt:
        return fail("interrupted; finished shards stay cached and a rerun generates the rest")
    return 0


def add_commands(sub) -> None:
    """Register `generate` on the CLI's subparsers (`handler`)."""
    p = sub.add_parser("generate", help="generate (or reuse) the augmented sets of a config, alone")
    add_experiment_arguments(p)
    p.set_defaults(handler=lambda args: generate_command(args.config, args.overrides,
                                                         args.address, args.tracking_uri))
