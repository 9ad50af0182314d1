"""The Ray Tune trial for one grid cell: build a TorchTrainer, fit it, pass its reports on to Tune.

The trial process itself is only a small driver (a fraction of a CPU, never a GPU); the model
work happens in the Train workers, whose reports reach Tune through `TuneReportCallback`.

Fault tolerance has two levels. A failed Train worker group is restarted by Train
(`FailureConfig` on the trainer); a failed trial is restarted by Tune (`FailureConfig` on the
Tuner) or rerun by `bias-inherit resume`. Either way the Train run keeps its name and storage, so
Train V2 finds the run's checkpoint snapshot and the workers resume from the last epoch.
"""
from __future__ import annotations

import time

from bias.config import ExperimentConfig
from training.grid import Cell, worker_threads
from training.lora_loop import train_loop_per_worker


def run_cell_trial(tune_config: dict, experiment: dict, augmented_uris: dict[str, str],
                   finished_cells: tuple[str, ...] = ()) -> None:
    """`finished_cells`: cells MLflow already holds as finished (a resume whose Tune state lagged
    behind); their trials end at once, without training."""
    import ray.train
    from ray import tune
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    started = time.perf_counter()
    cfg = ExperimentConfig.model_validate(experiment)
    cell = Cell.model_validate(tune_config["cell"])
    if cell.cell_id in finished_cells:
        tune.report({"already_finished": 1.0})
        return
    res = cfg.resources
    resources_per_worker = {"CPU": res.cpus_per_worker, **res.worker_resources}
    if res.gpus_per_worker:
        resources_per_worker["GPU"] = res.gpus_per_worker
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"experiment": experiment, "cell": cell.model_dump(),
                           "augmented_uri": augmented_uris.get(f"{cell.bias_type}|{cell.seed}"),
                           "threads": worker_threads(res.cpus_per_worker)},
        scaling_config=ray.train.ScalingConfig(num_workers=res.workers_per_trial,
                                               use_gpu=res.gpus_per_worker > 0,
                                               resources_per_worker=resources_per_worker),
        run_config=ray.train.RunConfig(
            name=f"{cfg.name}-{cell.cell_id}", storage_path=tune_config["train_storage"],
            failure_config=ray.train.FailureConfig(max_failures=res.max_failures),
            # Resuming needs only the latest checkpoint; the final one is the adapter.
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=1),
            callbacks=[TuneReportCallback()]),
    )
    result = trainer.fit()
    final = {"trial_seconds": time.perf_counter() - started,
             "driver_node_id": ray.get_runtime_context().get_node_id()}
    if result.checkpoint is not None:
        final["adapter_path"] = result.checkpoint.path   # the next round's generator reads it
    tune.report(final)
