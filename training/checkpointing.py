"""Per-epoch checkpoints of a LoRA Train worker, and resuming from the latest one.

A checkpoint holds the adapter (peft `save_pretrained`), the optimizer state, torch's RNG state
and the number of finished epochs. Ray Train V2 keeps the list of reported checkpoints in a
snapshot beside them in storage, so a worker group restarted after a failure, a trial restarted
by Tune, or a trial rerun by `bias-inherit resume` (same run name, same storage) gets the latest
one from `ray.train.get_checkpoint()` and goes on with the next epoch. With the RNG state restored
too, the resumed epochs shuffle and drop out exactly as an uninterrupted run would.

The final report's checkpoint is the adapter alone plus the state file (epochs done = all), so a
trial restarted after training finished skips straight to evaluation.

Every checkpoint's state also carries the epoch reports made so far, and a resumed worker sends
them again (marked `REPLAYED_KEY`) before it trains on. Why: a checkpoint can be registered while
its epoch's metrics are still on their way to MLflow (the driver is killed in between); the
resumed run skips that epoch, so without the replay its loss would never be logged. The MLflow
logger writes a replayed metric only at a step the run does not hold yet.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import torch

STATE_FILE = "bias_inherit_state.json"
OPTIMIZER_FILE = "optimizer.pt"
RNG_FILE = "torch_rng.pt"
ADAPTER_FILE = "adapter_model.safetensors"
EPOCH_KIND = "epoch"          # value of a report's `checkpoint_kind`; the final report has none
REPLAYED_KEY = "replayed"     # True on an epoch report sent again from a checkpoint's history


def write_state(directory: str | Path, epochs_done: int, epoch_reports: list[dict]) -> None:
    """The small JSON every checkpoint carries: how far training got, the epoch reports made so
    far, and who wrote it."""
    import ray
    state = {"epochs_done": epochs_done, "epoch_reports": epoch_reports, "pid": os.getpid(),
             "node_id": ray.get_runtime_context().get_node_id(), "written_at": time.time()}
    Path(directory, STATE_FILE).write_text(json.dumps(state))


def read_state(directory: str | Path) -> dict:
    return json.loads(Path(directory, STATE_FILE).read_text())


class EpochCheckpointer:
    """Restores a peft model from the run's latest checkpoint and writes one after every epoch.

    The train loop calls `replay_reports()` once, before training; `train_epochs` calls
    `attach(optimizer)` once its optimizer exists (restoring the optimizer and RNG state,
    returning the first epoch to run); the epoch hook calls `report_epoch`.
    """

    def __init__(self, model, rank: int, enabled: bool = True):
        import ray.train
        self.model, self.rank, self.enabled = model, rank, enabled
        self.optimizer = None
        self.epochs_done = 0
        self.epoch_reports: list[dict] = []   # one per finished epoch, restored ones included
        self.checkpoint_seconds = 0.0
        self._optimizer_state = None
        self._rng_state = None
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as directory:
                self._restore(Path(directory))
        self.resumed_from_epoch = self.epochs_done

    def _restore(self, directory: Path) -> None:
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file
        if not (directory / STATE_FILE).is_file():
            return   # not ours (e.g. written by an older version): train from scratch
        set_peft_model_state_dict(self.model, load_file(str(directory / ADAPTER_FILE)))
        if (directory / OPTIMIZER_FILE).is_file():
            self._optimizer_state = torch.load(directory / OPTIMIZER_FILE, weights_only=True)
        if (directory / RNG_FILE).is_file():
            self._rng_state = torch.load(directory / RNG_FILE, weights_only=True)
        state = read_state(directory)
        self.epochs_done = int(state["epochs_done"])
        self.epoch_reports = list(state.get("epoch_reports", []))

    def replay_reports(self) -> None:
        """Report the restored epochs' metrics again (every rank, as Train's report is collective)."""
        import ray.train
        for report in self.epoch_reports:
            ray.train.report({**report, REPLAYED_KEY: True})

    def attach(self, optimizer) -> int:
        """Restore the optimizer (and RNG) state; returns the first epoch still to run."""
        self.optimizer = optimizer
        if self._optimizer_state is not None:
            optimizer.load_state_dict(self._optimizer_state)
        if self._rng_state is not None:
            torch.set_rng_state(self._rng_state)
        return self.epochs_done

    def report_epoch(self, epoch: int, metrics: dict) -> None:
        """`ray.train.report` for a finished epoch; rank 0 attaches the checkpoint when enabled."""
        import ray.train
        self.epoch_reports.append(dict(metrics))   # the final checkpoint carries them too
        if not self.enabled:
            ray.train.report(metrics)
            return
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if self.rank == 0:
                self.model.save_pretrained(tmp)
                torch.save(self.optimizer.state_dict(), Path(tmp, OPTIMIZER_FILE))
                torch.save(torch.get_rng_state(), Path(tmp, RNG_FILE))
                write_state(tmp, epoch + 1, self.epoch_reports)
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report({**metrics, "checkpoint_kind": EPOCH_KIND}, checkpoint=checkpoint)
        self.epochs_done = epoch + 1
        self.checkpoint_seconds += time.perf_counter() - started

    def metrics(self) -> dict[str, float]:
        """Time spent writing checkpoints, and the epoch this attempt started from (0: fresh)."""
        return {"checkpoint_seconds": self.checkpoint_seconds,
                "resumed_from_epoch": float(self.resumed_from_epoch)}
