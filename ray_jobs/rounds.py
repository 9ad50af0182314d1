"""Multi-round self-augmentation: round k's fine-tuned model generates round k+1's neutral data.

Round 1 generates neutral D_a with the configured generator, fine-tunes the downstream model on
D_o + D_a at `round_ratio` and scores it; round k+1 generates with the base generator plus round
k's LoRA adapter. Every round is a nested child run (tag `bias_inherit.round`) with the same task
metrics as the grid, so drift across rounds shows in MLflow. Each round fine-tunes the base model
afresh: what accumulates is the data, as in the study.
"""
from __future__ import annotations

import time

from bias import metric_names as names
from bias.config import ExperimentConfig
from bias.errors import ExperimentError
from ray_jobs.engine_scoring import score_grid_with_engine
from ray_jobs.experiment import cell_logger, cell_trainable, choose_engine, finish_grid, grid_tuner
from ray_jobs.tracking import adapter_location, find_cell_run
from bias.taxonomy import NEUTRAL


def run_rounds(cfg: ExperimentConfig, tracking_uri: str, experiment_id: str, parent_run_id: str,
               echo=print) -> dict[int, str]:
    """Run rounds 1..K per seed; returns {round: adapter path} of the first seed's chain."""
    import mlflow
    import mlflow.data

    from generation.pipeline import generate
    from training.grid import make_cell

    import ray
    engine = choose_engine(cfg, ray.cluster_resources().get("GPU", 0))
    mlflow.set_tag("bias_inherit.rounds_engine", engine)
    echo(f"multi-round: {cfg.rounds} rounds per seed, engine={engine}")
    adapters: dict[int, str] = {}
    for seed in cfg.seeds:
        adapter = None
        for k in range(1, cfg.rounds + 1):
            started = time.perf_counter()
            round_cfg = cfg.model_copy(update={"generation": cfg.generation.model_copy(
                update={"adapter": adapter})})
            gen = generate(round_cfg, NEUTRAL, seed, engine=engine)
            mlflow.log_input(mlflow.data.from_pandas(gen.read(), source=gen.uri,
                                                     name=f"round{k}-{NEUTRAL}-s{seed}"),
                             context=f"round{k}")
            mlflow.log_metrics({names.round_metric(k, seed, "generation.kept"): gen.stats["kept"],
                                names.round_metric(k, seed, "generation.requested"):
                                    gen.stats["requested"]})
            echo(f"round {k} seed {seed}: {gen.stats['kept']}/{gen.stats['requested']} neutral "
                 f"generations kept{' (cache hit)' if gen.cache_hit else ''}"
                 f"{' from round ' + str(k - 1) + ' model' if adapter else ''}")
            cell = make_cell("train", NEUTRAL, cfg.round_ratio, "none", seed, round=k)
            tuner = grid_tuner(cell_trainable(cfg, {(NEUTRAL, seed): gen}), [cell.model_dump()],
                               cfg.storage_path, f"{cfg.name}-{parent_run_id[:8]}-round{k}-s{seed}",
                               1, cfg.resources.max_failures,
                               [cell_logger(cfg, tracking_uri, experiment_id, parent_run_id, [cell])])
            results = finish_grid(mlflow, tuner, 1, parent_run_id)
            score_grid_with_engine(cfg, results, tracking_uri, experiment_id, parent_run_id, echo)
            result = results[0]
            client = mlflow.MlflowClient(tracking_uri)
            run = find_cell_run(client, experiment_id, parent_run_id, cell.cell_id)
            adapter = adapter_location(client, run, result.metrics.get("adapter_path"))
            if not adapter:
                raise ExperimentError(f"round {k} (seed {seed}) reported no adapter checkpoint")
            mlflow.log_metric(names.round_metric(k, seed, "seconds"), time.perf_counter() - started)
            if seed == cfg.seeds[0]:
                adapters[k] = adapter
    return adapters
