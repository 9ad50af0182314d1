"""The Ray Tune trial for one grid cell: build a TorchTrainer, fit it, pass its reports on to Tune.

The trial process itself is only a small driver (a fraction of a CPU, never a GPU); the model
work happens in the Train workers, whose reports reach Tune through `reports_forwarded_to_tune`.

Why not Ray's `TuneReportCallback`: it hands reports to the trial through a one-slot queue that
the trial actor's main thread drains inside Tune's `get_next`, where it also puts into the
session's one-slot result queue. A report from the trial function itself (our final metrics, or
the end-of-function marker Tune adds) that lands while the last Train report still sits in that
queue fills the result queue first, and the main thread then blocks on a put that only it could
unblock: the trial hangs forever. It shows when the Tune loop is slow to poll (a busy machine, an
MLflow outage stalling callbacks). Here one thread of the trial reports everything, in order.

Fault tolerance has two levels. A failed Train worker group is restarted by Train
(`FailureConfig` on the trainer); a failed trial is restarted by Tune (`FailureConfig` on the
Tuner) or rerun by `bias-inherit resume`. Either way the Train run keeps its name and storage, so
Train V2 finds the run's checkpoint snapshot and the workers resume from the last epoch.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from ray.train import UserCallback

from bias.config import ExperimentConfig
from training.grid import Cell, worker_threads
from training.lora_loop import train_loop_per_worker
from training.worker_env import train_worker_runtime_env


def run_cell_trial(tune_config: dict, experiment: dict, augmented_uris: dict[str, str],
                   finished_cells: tuple[str, ...] = ()) -> None:
    """`finished_cells`: cells MLflow already holds as finished (a resume whose Tune state lagged
    behind); their trials end at once, without training."""
    import ray.train
    from ray import tune
    from ray.train.torch import TorchTrainer

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
    with reports_forwarded_to_tune() as forward:
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
                callbacks=[forward],
                worker_runtime_env=train_worker_runtime_env(res.worker_allocator)),
        )
        result = trainer.fit()
    final = {"trial_seconds": time.perf_counter() - started,
             "driver_node_id": ray.get_runtime_context().get_node_id()}
    if result.checkpoint is not None:
        final["adapter_path"] = checkpoint_uri(result.checkpoint)   # the next round's generator
    tune.report(final)


# pyarrow filesystem type -> URI scheme, where they differ.
_SCHEMES = {"gcs": "gs"}


def checkpoint_uri(checkpoint) -> str:
    """The checkpoint's location as a URI any pyarrow reader resolves: Ray reports the path inside
    its filesystem, which for object stores drops the scheme (s3://bucket/x comes back as
    bucket/x, and would then be read as a local path)."""
    fs = checkpoint.filesystem
    kind = getattr(fs, "type_name", "local")
    if kind == "local":
        return checkpoint.path
    return f"{_SCHEMES.get(kind, kind)}://{checkpoint.path}"


class ForwardReportsToTune(UserCallback):
    """Train controller callback: every report (rank 0's metrics, plus the checkpoint's path) goes
    into an unbounded queue, so a slow Tune loop never stalls training."""

    def __init__(self, queue):
        self.queue = queue

    def after_report(self, run_context, metrics: list[dict], checkpoint) -> None:
        item = dict(metrics[0])
        if checkpoint is not None:
            item["checkpoint_path"] = checkpoint.path
        self.queue.put(item)


_FIT_DONE = "__fit_done__"   # the last item: fit() has returned, so every report is queued


def _forward(queue, errors: list) -> None:
    from ray import tune
    try:
        # One blocking get per item, not a timed poll: a poll wakes the queue actor and this
        # thread twice a second, CPU taken from a 2-core node's training all run long.
        while (item := queue.get()) != _FIT_DONE:
            tune.report(item)
    except Exception as e:  # noqa: BLE001 - re-raised in the trial thread after the join
        errors.append(e)


@contextmanager
def reports_forwarded_to_tune():
    """Yield a Train callback whose reports reach Tune from one forwarding thread, in order.

    On exit (after `fit()`) the forwarder drains what is left and stops, so the caller may then
    `tune.report` itself without racing it.
    """
    from ray.util.queue import Queue
    queue = Queue(actor_options={"num_cpus": 0})
    errors: list = []
    forwarder = threading.Thread(target=_forward, args=(queue, errors), daemon=True,
                                 name="train-reports-to-tune")
    forwarder.start()
    try:
        yield ForwardReportsToTune(queue)
    finally:
        queue.put(_FIT_DONE)   # after every callback's put: fit() has returned
        forwarder.join()
    if errors:
        raise errors[0]
