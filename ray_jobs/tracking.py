"""MLflow side of an experiment: URI resolution and pre-flight, the per-cell child-run logger, and
reading results back (everything `bias-inherit results` shows comes from MLflow, not local files).

Child runs are written by one process (the Tune driver, through `CellRunLogger`), so the embedded
SQLite store never sees concurrent writers; a tracking server works the same way.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import pandas as pd

TAG_KIND = "bias_inherit.kind"          # parent | cell
TAG_CELL = "bias_inherit.cell_id"
TAG_PARENT = "mlflow.parentRunId"
CELL_PARAMS = ("cell_id", "kind", "bias_type", "ratio", "mitigation", "seed", "round")
# Keys Tune adds to every result; they are bookkeeping, not metrics of the cell.
_TUNE_KEYS = {"done", "training_iteration", "timestamp", "time_this_iter_s", "time_total_s",
              "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore",
              "checkpoint_dir_name", "should_checkpoint", "trial_id", "date", "experiment_tag",
              "config", "epoch"}


class TrackingUnreachableError(RuntimeError):
    """The MLflow tracking URI cannot be used; the message names it and says why."""


def resolve_tracking_uri(configured: str | None, override: str | None = None) -> str:
    uri = override or configured or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def check_tracking_reachable(uri: str, timeout: float = 5.0) -> None:
    """Fail fast, before any Ray or model work, when the tracking store cannot be used."""
    if uri.startswith(("http://", "https://")):
        import requests
        try:
            reply = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
        except requests.RequestException as e:
            raise TrackingUnreachableError(
                f"MLflow tracking server {uri} is unreachable ({type(e).__name__}); start it "
                f"(mlflow server --host 127.0.0.1 --port 5000) or pass --tracking-uri") from None
        if reply.status_code != 200:
            raise TrackingUnreachableError(
                f"MLflow tracking server {uri} answered /health with HTTP {reply.status_code}")
    elif uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise TrackingUnreachableError(f"cannot write the MLflow SQLite store {uri}: "
                                           f"{folder} is not a writable directory")


def numeric_metrics(result: dict) -> dict[str, float]:
    out = {}
    for key, value in result.items():
        if key in _TUNE_KEYS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


def find_cell_run(client, experiment_id: str, parent_run_id: str, cell_id: str):
    runs = client.search_runs([experiment_id],
                              filter_string=f"tags.`{TAG_PARENT}` = '{parent_run_id}' and "
                                            f"tags.`{TAG_CELL}` = '{cell_id}'", max_results=1)
    return runs[0] if runs else None


def _download_checkpoint(path: str, storage_path: str) -> str:
    """A local directory holding the checkpoint at `path` (copied down from remote storage)."""
    if Path(path).is_dir():
        return path
    import pyarrow.fs as pafs
    fs, _ = pafs.FileSystem.from_uri(storage_path)
    local = tempfile.mkdtemp(prefix="adapter-")
    pafs.copy_files(path, local, source_filesystem=fs)
    return local


try:
    from ray.tune import Callback as _TuneCallback
except ImportError:  # tracking helpers stay importable without ray (e.g. `results`)
    _TuneCallback = object


class CellRunLogger(_TuneCallback):
    """One nested MLflow child run per grid cell, found again by its cell-id tag (idempotent)."""

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str,
                 cells: dict[str, dict], shared_params: dict[str, str], storage_path: str):
        self.tracking_uri, self.experiment_id = tracking_uri, experiment_id
        self.parent_run_id, self.cells = parent_run_id, cells
        self.shared_params, self.storage_path = shared_params, storage_path
        self._runs: dict[str, str] = {}
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def _run_id(self, trial) -> str:
        from mlflow.entities import Param
        cell = trial.config["cell"]
        cell_id = cell["cell_id"]
        if cell_id not in self._runs:
            run = find_cell_run(self.client, self.experiment_id, self.parent_run_id, cell_id)
            if run is None:
                run = self.client.create_run(self.experiment_id, run_name=cell_id, tags={
                    TAG_PARENT: self.parent_run_id, TAG_CELL: cell_id, TAG_KIND: "cell"})
                params = {**self.shared_params, **{k: str(cell[k]) for k in CELL_PARAMS}}
                self.client.log_batch(run.info.run_id,
                                      params=[Param(k, v) for k, v in params.items()])
            self._runs[cell_id] = run.info.run_id
        return self._runs[cell_id]

    def on_trial_start(self, iteration, trials, trial, **info):
        run_id = self._run_id(trial)
        self.client.set_tag(run_id, "ray.trial_id", trial.trial_id)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        from mlflow.entities import Metric
        run_id = self._run_id(trial)
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        now = int(result.get("timestamp", 0) * 1000) or None
        metrics = [Metric(k, v, now or 0, step) for k, v in numeric_metrics(result).items()]
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)
        checkpoint_path = result.get("checkpoint_path")
        if checkpoint_path:
            local = _download_checkpoint(checkpoint_path, self.storage_path)
            self.client.log_artifacts(run_id, local, artifact_path="adapter")
            self.client.set_tag(run_id, "bias_inherit.adapter_checkpoint", checkpoint_path)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.client.set_terminated(self._run_id(trial), status="FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.client.set_terminated(self._run_id(trial), status="FAILED")


def latest_parent_run(experiment: str, tracking_uri: str):
    import mlflow
    mlflow.set_tracking_uri(tracking_uri)
    frame = mlflow.search_runs(experiment_names=[experiment],
                               filter_string=f"tags.`{TAG_KIND}` = 'parent'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    return None if frame.empty else frame.iloc[0]["run_id"]


def fetch_cells(experiment: str, tracking_uri: str, parent_run_id: str | None = None) -> pd.DataFrame:
    """One row per cell of a parent run (the latest by default): params.* and metrics.* columns."""
    import mlflow
    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        raise LookupError(f"no MLflow experiment named {experiment!r} at {tracking_uri}")
    parent_run_id = parent_run_id or latest_parent_run(experiment, tracking_uri)
    if parent_run_id is None:
        raise LookupError(f"experiment {experiment!r} has no bias-inherit parent run yet")
    frame = mlflow.search_runs(experiment_names=[experiment],
                               filter_string=f"tags.`{TAG_PARENT}` = '{parent_run_id}'")
    frame.attrs["parent_run_id"] = parent_run_id
    return frame
