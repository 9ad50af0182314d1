"""MLflow side of an experiment: URI resolution and pre-flight, the per-cell child-run logger, and
reading results back (everything `bias-inherit results` shows comes from MLflow, not local files).

Child runs are written by one process (the Tune driver, through `CellRunLogger`), so the embedded
SQLite store never sees concurrent writers; a tracking server works the same way.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import pandas as pd

from bias.errors import TrackingUnreachableError  # noqa: F401  (re-exported: its old home)

TAG_KIND = "bias_inherit.kind"          # parent | cell
TAG_CELL = "bias_inherit.cell_id"
TAG_PARENT = "mlflow.parentRunId"
TAG_STARTS = "bias_inherit.trial_starts"  # how often the cell's trial started (retries, resume)
TAG_TUNE_PATH = "bias_inherit.tune_path"  # the Tune experiment directory, for `resume`
TAG_SKIPPED = "bias_inherit.skipped_tasks"  # JSON {task: what was missing}: not measured
TAG_ERROR = "bias_inherit.error"           # a cell's user error, one line (not retried)
TAG_ADAPTER_CHECKPOINT = "bias_inherit.adapter_checkpoint"   # the Train checkpoint's URI
TAG_ADAPTER_MODEL = "bias_inherit.adapter_model_id"          # the cell's logged model
# String results logged as tags: where the trial driver and the rank-0 Train worker ran.
NODE_KEYS = ("driver_node_id", "worker_node_id")
CELL_PARAMS = ("cell_id", "kind", "bias_type", "ratio", "mitigation", "seed", "round")
# Keys Tune adds to every result; they are bookkeeping, not metrics of the cell.
_TUNE_KEYS = {"done", "training_iteration", "timestamp", "time_this_iter_s", "time_total_s",
              "pid", "hostname", "node_ip", "time_since_restore", "iterations_since_restore",
              "checkpoint_dir_name", "should_checkpoint", "trial_id", "date", "experiment_tag",
              "config", "epoch"}


# Tracking URI schemes MLflow understands (database URIs may carry a driver: postgresql+psycopg2).
KNOWN_SCHEMES = {"http", "https", "sqlite", "file", "postgresql", "mysql", "mssql", "databricks",
                 "databricks-uc", "uc"}


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
    elif "://" in uri and uri.split("://", 1)[0].split("+", 1)[0] not in KNOWN_SCHEMES:
        raise TrackingUnreachableError(
            f"tracking URI {uri} has an unknown scheme; use http(s)://HOST:PORT for a tracking "
            f"server, sqlite:///PATH, or a database URI ({', '.join(sorted(KNOWN_SCHEMES))})")


def numeric_metrics(result: dict) -> dict[str, float]:
    out = {}
    for key, value in result.items():
        if key in _TUNE_KEYS or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(value):
            out[key] = float(value)
    return out


def find_cell_run(client, experiment_id: str, parent_run_id: str, cell_id: str):
    """The cell's child run under the parent, the oldest if a lost reply ever made two."""
    runs = client.search_runs([experiment_id],
                              filter_string=f"tags.`{TAG_PARENT}` = '{parent_run_id}' and "
                                            f"tags.`{TAG_CELL}` = '{cell_id}'",
                              order_by=["attributes.start_time ASC"], max_results=1)
    return runs[0] if runs else None


# Artifact stores whose locations peft, vLLM and pyarrow read directly; a proxied store
# (mlflow-artifacts:) is read through the tracking server, so there the checkpoint is used.
_DIRECT_STORES = ("file", "s3", "gs", "gcs", "")


def adapter_location(client, run, fallback: str | None) -> str | None:
    """Where a cell's adapter is read from (`run`: the cell's run, as `find_cell_run` gives it):
    its logged model's peft folder, else `fallback` (the Train checkpoint)."""
    from urllib.parse import urlparse

    from training.adapter_models import PEFT_DIR
    model_id = run.data.tags.get(TAG_ADAPTER_MODEL)
    if not model_id:
        return fallback
    location = client.get_logged_model(model_id).artifact_location
    scheme = urlparse(location).scheme
    if scheme not in _DIRECT_STORES:
        return fallback
    return f"{location.removeprefix('file://') if scheme == 'file' else location}/{PEFT_DIR}"


def _download_checkpoint(path: str, storage_path: str) -> str:
    """A local directory holding the checkpoint at `path` (copied down from remote storage)."""
    from bias.models import local_dir
    return local_dir(path, storage_path)


def is_transient(error: BaseException) -> bool:
    """An MLflow failure worth retrying later (server down, restarting, overloaded)."""
    import requests
    from mlflow.exceptions import MlflowException
    if isinstance(error, (requests.RequestException, ConnectionError, TimeoutError)):
        return True
    if isinstance(error, MlflowException):
        return (error.error_code in ("INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE",
                                     "REQUEST_LIMIT_EXCEEDED")
                or error.get_http_status_code() >= 500)
    return False


try:
    from ray.tune import Callback as _TuneCallback
except ImportError:  # tracking helpers stay importable without ray (e.g. `results`)
    _TuneCallback = object


class CellRunLogger(_TuneCallback):
    """One nested MLflow child run per grid cell, found again by its cell-id tag (idempotent).

    Idempotent across trial retries, driver restarts and `bias-inherit resume`: the run is
    looked up in MLflow (tag `bias_inherit.cell_id` under the parent), never remembered only in
    memory, and a create whose reply was lost is looked up again before it is retried.

    Survives a tracking-server outage: a write that fails with a transient error is queued and
    replayed, in order, at the next event; the end of the grid waits up to `flush_timeout_s` for
    the server before it gives up and names what was not written.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str,
                 cells: dict[str, dict], shared_params: dict[str, str], storage_path: str,
                 flush_timeout_s: float = 300.0):
        self.tracking_uri, self.experiment_id = tracking_uri, experiment_id
        self.parent_run_id, self.cells = parent_run_id, cells
        self.shared_params, self.storage_path = shared_params, storage_path
        self.flush_timeout_s = flush_timeout_s
        self.started: list[str] = []     # cell ids whose trial started in this process
        self.skip_cells: set[str] = set()
        self.transient_failures = 0      # write attempts that found MLflow away (then replayed)
        self.user_errors: dict[str, str] = {}   # cell id -> its user error (failed, not retried)
        self._runs: dict[str, str] = {}
        self._pending: list[tuple[str, object]] = []
        self._client = None

    def __getstate__(self):
        # Pickled into Tune's tuner.pkl: keep configuration, drop clients and per-process state.
        state = self.__dict__.copy()
        state.update(_client=None, _runs={}, _pending=[], started=[], skip_cells=set(),
                     user_errors={},
                     transient_failures=0)
        return state

    def retarget(self, tracking_uri: str, skip_cells=()) -> None:
        """Point a logger restored from tuner.pkl at the tracking URI of this session; events of
        `skip_cells` (finished in MLflow already) are not logged again."""
        self.tracking_uri, self._client = tracking_uri, None
        self.skip_cells = set(skip_cells)

    @property
    def client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    # -- writes: in order, queued while the server is away ---------------------------------
    def _write(self, what: str, op) -> None:
        self._pending.append((what, op))
        self._flush()

    def _flush(self) -> bool:
        """Replay queued writes in order; stop at the first transient failure. True when empty."""
        import logging
        while self._pending:
            what, op = self._pending[0]
            try:
                op()
            except Exception as e:  # noqa: BLE001 - sorted into transient / permanent below
                if is_transient(e):
                    self.transient_failures += 1
                    return False
                logging.getLogger(__name__).warning("MLflow write dropped (%s): %s", what, e)
            self._pending.pop(0)
        return True

    def _run_id(self, cell: dict) -> str:
        """The cell's child run, created on first need; raises a transient error when MLflow is
        away (callers queue the write that needed it)."""
        from mlflow.entities import Param
        cell_id = cell["cell_id"]
        if cell_id not in self._runs:
            run = find_cell_run(self.client, self.experiment_id, self.parent_run_id, cell_id)
            if run is None:
                run = self.client.create_run(self.experiment_id, run_name=cell_id, tags={
                    TAG_PARENT: self.parent_run_id, TAG_CELL: cell_id, TAG_KIND: "cell"})
            params = {**self.shared_params, **{k: str(cell[k]) for k in CELL_PARAMS}}
            missing = [Param(k, v) for k, v in params.items() if k not in run.data.params]
            if missing:   # a new run, or one whose create went through but whose params did not
                self.client.log_batch(run.info.run_id, params=missing)
            self._runs[cell_id] = run.info.run_id
        return self._runs[cell_id]

    # -- Tune events -------------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        cell = trial.config["cell"]
        if cell["cell_id"] in self.skip_cells:
            return
        self.started.append(cell["cell_id"])

        def start():
            run_id = self._run_id(cell)
            tags = self.client.get_run(run_id).data.tags
            starts = int(tags.get(TAG_STARTS, "0")) + 1
            self.client.set_tag(run_id, TAG_STARTS, str(starts))
            self.client.set_tag(run_id, "ray.trial_id", trial.trial_id)
            if starts > 1:   # a retried or resumed cell: RUNNING again until it ends
                self.client.update_run(run_id, status="RUNNING")
        self._write(f"start {cell['cell_id']}", start)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        from mlflow.entities import Metric

        # Imported here, not at the top: `bias-inherit results` reads MLflow without torch.
        from training.checkpointing import REPLAYED_KEY
        cell = trial.config["cell"]
        if cell["cell_id"] in self.skip_cells:
            return
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        now = int(result.get("timestamp", 0) * 1000) or int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in numeric_metrics(result).items()]
        tags = {f"bias_inherit.{k}": str(result[k]) for k in NODE_KEYS if result.get(k)}
        checkpoint_path = result.get("checkpoint_path")
        is_adapter = checkpoint_path and result.get("checkpoint_kind") != "epoch"
        replayed = bool(result.get(REPLAYED_KEY))
        user_error = result.get("user_error")
        if user_error:
            self.user_errors[cell["cell_id"]] = user_error
        details = result.get("user_error_traceback")

        def log():
            run_id = self._run_id(cell)
            new = self._not_yet_logged(run_id, metrics) if replayed else metrics
            if is_adapter:
                local = _download_checkpoint(checkpoint_path, self.storage_path)
                model_id = self._log_adapter_model(run_id, cell, local, step)
                self.client.set_tag(run_id, TAG_ADAPTER_CHECKPOINT, checkpoint_path)
                if model_id:   # the report that brings the adapter carries its metrics
                    new = [Metric(m.key, m.value, m.timestamp, m.step, model_id=model_id)
                           for m in new]
            if new:
                self.client.log_batch(run_id, metrics=new)
            for key, value in tags.items():
                self.client.set_tag(run_id, key, value)
            if user_error:
                self.client.set_tag(run_id, TAG_ERROR, str(user_error)[:5000])
            if details:
                self.client.log_text(run_id, details, "error.txt")
        self._write(f"result {cell['cell_id']} step {step}", log)

    def _log_adapter_model(self, run_id: str, cell: dict, local: str, step: int) -> str | None:
        """The checkpoint's MLflow model (training/adapter_models.py) as a logged model of the
        cell's run; its id, or None for a checkpoint without one (written by an older release:
        its peft files are logged as the run's `adapter` artifact instead)."""
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus

        from training.adapter_models import MLFLOW_MODEL_DIR
        folder = Path(local) / MLFLOW_MODEL_DIR
        if not (folder / "MLmodel").is_file():
            self.client.log_artifacts(run_id, local, artifact_path="adapter")
            return None
        params = {k: str(cell[k]) for k in CELL_PARAMS if k in cell}
        model = self.client.create_logged_model(
            self.experiment_id, name="adapter", source_run_id=run_id, params=params,
            tags={"bias_inherit.parent_run_id": self.parent_run_id, TAG_CELL: cell["cell_id"]},
            model_type="peft-lora")
        self.client.log_model_artifacts(model.model_id, str(folder))
        self.client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
        self.client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step)])
        self.client.set_tag(run_id, TAG_ADAPTER_MODEL, model.model_id)
        return model.model_id

    def _not_yet_logged(self, run_id: str, metrics: list) -> list:
        """The metrics of a replayed epoch report whose step the run does not hold yet (a resumed
        run sends every restored epoch again; most of them reached MLflow the first time)."""
        held = {key: {m.step for m in self.client.get_metric_history(run_id, key)}
                for key in {m.key for m in metrics}}
        return [m for m in metrics if m.step not in held[m.key]]

    def _end(self, trial, status: str) -> None:
        cell = trial.config["cell"]
        if cell["cell_id"] in self.skip_cells:
            return
        self._write(f"{status} {cell['cell_id']}",
                    lambda: self.client.set_terminated(self._run_id(cell), status=status))

    def on_trial_complete(self, iteration, trials, trial, **info):
        failed = trial.config["cell"]["cell_id"] in self.user_errors
        self._end(trial, "FAILED" if failed else "FINISHED")

    def on_trial_error(self, iteration, trials, trial, **info):
        cell = trial.config["cell"]
        path = getattr(trial, "error_file", None)
        if path and Path(path).is_file() and cell["cell_id"] not in self.skip_cells:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
            self._write(f"error {cell['cell_id']}",
                        lambda: self.client.log_text(self._run_id(cell), text, "error.txt"))
        self._end(trial, "FAILED")

    def on_experiment_end(self, trials, **info):
        deadline = time.monotonic() + self.flush_timeout_s
        while not self._flush() and time.monotonic() < deadline:
            time.sleep(2.0)
        import logging
        log = logging.getLogger(__name__)
        if self._pending:
            log.error("MLflow at %s stayed unreachable; %d writes were not logged: %s",
                      self.tracking_uri, len(self._pending), [w for w, _ in self._pending][:10])
        elif self.transient_failures:
            log.warning("MLflow at %s was unreachable %d times during the grid; every queued "
                        "write went through later", self.tracking_uri, self.transient_failures)


def finished_cells(tracking_uri: str, experiment_id: str, parent_run_id: str) -> list[str]:
    """Cell ids whose child run under the parent has FINISHED."""
    from mlflow.tracking import MlflowClient
    runs = MlflowClient(tracking_uri).search_runs(
        [experiment_id], filter_string=f"tags.`{TAG_PARENT}` = '{parent_run_id}' and "
                                       f"attributes.status = 'FINISHED'", max_results=10000)
    return sorted({r.data.tags[TAG_CELL] for r in runs if TAG_CELL in r.data.tags})


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


def frame_records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain dicts for JSON: exact floats (pandas' to_json rounds to 10 digits), NaN as
    None, numpy scalars as Python ones."""
    def plain(value):
        if hasattr(value, "item"):
            value = value.item()
        return None if isinstance(value, float) and math.isnan(value) else value
    return [{k: plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def experiment_and_uri(experiment: str, uri: str | None) -> tuple[str, str]:
    """EXPERIMENT may be an MLflow experiment name or the experiment's config file."""
    from pathlib import Path

    configured = None
    if experiment.endswith((".yaml", ".yml")) and Path(experiment).is_file():
        from bias.config import load_config
        cfg = load_config(experiment)
        experiment, configured = cfg.experiment_name, cfg.tracking.uri
    return experiment, resolve_tracking_uri(configured, uri)
