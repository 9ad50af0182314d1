"""The console of `run`, `resume` and `generate`: stage lines a person reads, logs in a file.

Ray's, Tune's, MLflow's and transformers' own log records go to a log file (its path is printed
first); `--verbose` sends them to the console too. The grid prints one line per finished or
failed cell with the counts and an ETA (`GridProgress`, a Tune callback); a failed cell's
traceback goes to the log file and to the cell's MLflow run, never to the console.

    bias-inherit run configs/smoke.yaml             # stage lines; logs in <storage>/logs/
    bias-inherit run configs/smoke.yaml --verbose   # the libraries' logs on the console too
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from ray.tune import Callback

# Loggers whose records are the libraries' business, not the user's.
LIBRARY_LOGGERS = ("ray", "ray.data", "ray.tune", "ray.train", "mlflow", "transformers",
                   "datasets", "urllib3", "filelock", "alembic", "peft", "huggingface_hub",
                   "py.warnings")
# Quiet by default (set before the libraries read them): MLflow leaves logging to us and prints
# no run links, Tune prints no experiment box.
QUIET_ENV = {"MLFLOW_CONFIGURE_LOGGING": "false", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
             "RAY_AIR_NEW_OUTPUT": "0"}


def log_file_for(storage_path: str, name: str) -> Path:
    """`<storage_path>/logs/<name>-<time>.log`; ./logs/ when storage is a remote URI, and the
    temp dir when neither can be written (pre-flight then reports the storage path)."""
    import tempfile
    stem = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    root = Path(storage_path).expanduser() if "://" not in storage_path else Path(".")
    for folder in (root / "logs", Path(tempfile.gettempdir()) / "bias-inherit-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / stem).touch()
            return (folder / stem).resolve()
        except OSError:
            continue
    raise OSError(f"no writable folder for the log file {stem}")


def route_library_logs(path: Path, verbose: bool = False) -> logging.Handler:
    """Every library logger writes to `path` (and to stderr when `verbose`)."""
    import os
    if not verbose:
        for key, value in QUIET_ENV.items():
            os.environ.setdefault(key, value)
    import ray.data  # noqa: F401 - Ray Data sets its own handlers on import: import it first
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.captureWarnings(True)
    # The root logger too: records of loggers not named here (alembic's migrations, which
    # reconfigure their own) end there.
    for name in ("", *LIBRARY_LOGGERS):
        logger = logging.getLogger(name)
        logger.handlers = [handler] + ([logging.StreamHandler(sys.stderr)] if verbose else [])
        logger.propagate = False
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
    return handler


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


class GridProgress(Callback):
    """Tune callback: a line per finished or failed cell, with done / running / failed, elapsed
    and ETA (from the mean cell time so far and the cells left, at the current concurrency)."""

    def __init__(self, n_cells: int, echo=print, log: logging.Logger | None = None):
        self.n_cells, self.echo = n_cells, echo
        self.log = log or logging.getLogger("ray.tune.progress")
        self.started = time.perf_counter()
        self.running: set[str] = set()
        self.done: list[str] = []
        self.failed: dict[str, str] = {}

    @staticmethod
    def _cell(trial) -> str:
        return trial.config["cell"]["cell_id"]

    def _line(self, what: str) -> None:
        finished = len(self.done) + len(self.failed)
        elapsed = time.perf_counter() - self.started
        left = self.n_cells - finished
        eta = elapsed / finished * left if finished else None
        self.echo(f"  [{finished}/{self.n_cells}] {what} · done {len(self.done)}, running "
                  f"{len(self.running)}, failed {len(self.failed)} · {_minutes(elapsed)} elapsed"
                  + (f", ETA {_minutes(eta)}" if eta is not None and left else ""))

    def __getstate__(self):   # pickled into Tune's tuner.pkl: no echo function, no counts
        return {"n_cells": self.n_cells}

    def __setstate__(self, state):
        self.__init__(state["n_cells"])

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running.add(self._cell(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        cell = self._cell(trial)
        if result.get("user_error") and cell not in self.failed:
            self.failed[cell] = str(result["user_error"]).splitlines()[0]
            self.log.error("cell %s failed:\n%s", cell,
                           result.get("user_error_traceback", result["user_error"]))

    def on_trial_complete(self, iteration, trials, trial, **info):
        cell = self._cell(trial)
        self.running.discard(cell)
        if cell in self.failed:
            self._line(f"{cell} failed: {self.failed[cell][:200]}")
        else:
            self.done.append(cell)
            self._line(f"{cell} done")

    def on_trial_error(self, iteration, trials, trial, **info):
        cell = self._cell(trial)
        self.running.discard(cell)
        error = _error_text(trial)
        self.failed[cell] = error.strip().splitlines()[-1] if error.strip() else "error"
        self.log.error("cell %s failed:\n%s", cell, error)
        self._line(f"{cell} failed: {self.failed[cell][:200]}")


def _error_text(trial) -> str:
    """The trial's error as Tune stored it (a traceback), or '' (also logged to the cell's
    MLflow run as error.txt by tracking.CellRunLogger)."""
    path = getattr(trial, "error_file", None)
    try:
        return Path(path).read_text(encoding="utf-8") if path else ""
    except OSError:
        return ""


ERROR_EXIT = 2


def fail(message: str) -> int:
    """A user error: one `error:` line on stderr, exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    return ERROR_EXIT


def start_console(cfg, verbose: bool) -> None:
    """The libraries' logs to a file in the storage dir (printed), the console for stage lines."""
    path = log_file_for(cfg.storage_path, cfg.name)
    route_library_logs(path, verbose)
    print(f"{cfg.name}: logs in {path}" + ("" if verbose else " (--verbose shows them here)"),
          flush=True)


def add_experiment_arguments(p) -> None:
    """CONFIG, overrides, --address and --tracking-uri: shared by run and generate."""
    p.add_argument("config", help="experiment YAML, e.g. configs/smoke.yaml")
    p.add_argument("overrides", nargs="*", help="key=value overrides, dotted keys, YAML values")
    p.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local cluster)")
    p.add_argument("--tracking-uri", help="MLflow URI (default: config, MLFLOW_TRACKING_URI, "
                                          "else sqlite:///./mlflow.db)")
    p.add_argument("--verbose", action="store_true",
                   help="Ray's, Tune's and the libraries' logs on the console too (always in "
                        "the log file)")
