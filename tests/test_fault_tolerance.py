"""Fault tolerance with real processes killed: a Ray Train worker (SIGKILL), the driver (SIGKILL,
then `bias-inherit resume`), the MLflow tracking server (killed and restarted mid-grid).

Grids are γ = 0 cells of the tiny random Llama (no generation), several seeds, two trials at a
time on the session's local Ray (2 CPUs). Every check reads MLflow back: one child run per cell,
finished, with its final metrics.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from bias.config import load_config
from tests.conftest import REPO, free_port, start_mlflow_server, stop_process_group, write_config

pytestmark = pytest.mark.timeout(1200)   # a hang guard, generous for a loaded machine
FINAL_METRICS = ("occupation_classification/accuracy", "salary_recommendation/parse_rate",
                 "worker_seconds")


def grid_config(path: Path, name: str, seeds: list[int], epochs: int, dataset_size: int = 32,
                evaluate_base_model: bool = True) -> Path:
    """γ = 0 cells only (no generation needed), two trials at a time on 2 CPUs."""
    return write_config(path, name=name, ratios=[0.0], seeds=seeds,
                        evaluate_base_model=evaluate_base_model,
                        generation={"model": "tiny-random-llama", "samples_per_type": 8},
                        data={"dataset_size": dataset_size, "test_size": 12},
                        optim={"epochs": epochs, "batch_size": 4},
                        resources={"cpus_per_worker": 0.9, "driver_cpus": 0.1, "max_failures": 1},
                        storage_path=str(path.parent / "storage"))


def cell_runs(tracking_uri: str, experiment: str) -> dict[str, list]:
    """cell id -> child runs (a list, so duplicates would show)."""
    from mlflow.tracking import MlflowClient
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return {}
    out: dict[str, list] = {}
    for run in client.search_runs([exp.experiment_id], "tags.`bias_inherit.kind` = 'cell'"):
        out.setdefault(run.data.tags["bias_inherit.cell_id"], []).append(run)
    return out


def assert_one_finished_run_per_cell(tracking_uri: str, experiment: str, cfg) -> dict:
    from training.grid import expand_cells
    runs = cell_runs(tracking_uri, experiment)
    assert sorted(runs) == sorted(c.cell_id for c in expand_cells(cfg))
    for cell_id, found in runs.items():
        assert len(found) == 1, f"{cell_id}: {len(found)} child runs"
        run = found[0]
        assert run.info.status == "FINISHED", cell_id
        missing = [m for m in FINAL_METRICS if m not in run.data.metrics]
        assert not missing, (cell_id, missing)
        if run.data.params["kind"] == "train":
            assert "train_loss" in run.data.metrics and run.data.metrics["train_tokens"] >= 0
    return {cell_id: found[0] for cell_id, found in runs.items()}


def loss_steps(tracking_uri: str, run) -> list[int]:
    """The steps of the run's train_loss history, sorted, a step logged twice listed twice."""
    from mlflow.tracking import MlflowClient
    return sorted(m.step for m in MlflowClient(tracking_uri).get_metric_history(run.info.run_id,
                                                                                "train_loss"))


@contextmanager
def alongside(action, join_timeout: float = 120):
    """Run `action(done)` in a thread while the body runs (a saboteur); `done` is set after."""
    done = threading.Event()
    thread = threading.Thread(target=action, args=(done,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=join_timeout)


def is_train_worker(pid: int) -> bool:
    try:
        return b"RayTrainWorker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_killed_train_worker_resumes_from_its_epoch_checkpoint(tmp_path, ray_local, mlflow_server,
                                                               tiny_model):
    """SIGKILL the Train worker once its first epoch checkpoint is registered: Train restarts the
    worker group, which resumes from that checkpoint; the grid completes with one run per cell."""
    from ray_jobs.run import run_experiment
    epochs = 6
    cfg = load_config(grid_config(tmp_path / "grid.yaml", "ft-worker-kill", [0], epochs,
                                  dataset_size=64))
    storage = tmp_path / "storage"
    killed: dict = {}

    def kill_worker_after_first_checkpoint(done):
        deadline = time.time() + 500
        while not done.is_set() and time.time() < deadline:
            # Train writes this snapshot once it has registered a reported checkpoint.
            for snapshot in storage.glob("*/train/*original-only*/checkpoint_manager_snapshot.json"):
                for state in sorted(snapshot.parent.glob("checkpoint_*/bias_inherit_state.json")):
                    info = json.loads(state.read_text())
                    if is_train_worker(info["pid"]):
                        os.kill(info["pid"], signal.SIGKILL)
                        killed.update(info, at=time.time())
                        return
            time.sleep(0.2)

    with alongside(kill_worker_after_first_checkpoint):
        run_experiment(cfg, tracking_uri=mlflow_server, echo=lambda *_: None)

    assert killed, "no Train worker was killed (the first checkpoint never showed up)"
    runs = assert_one_finished_run_per_cell(mlflow_server, "ft-worker-kill", cfg)
    cell = runs["r0.00-original-only-none-s0"]
    # The worker group Train restarted started from a checkpoint, not from scratch ...
    assert cell.data.metrics["resumed_from_epoch"] >= 1, cell.data.metrics
    # ... inside the same trial: Train's FailureConfig handled it, Tune never saw a failure.
    assert cell.data.tags["bias_inherit.trial_starts"] == "1"
    assert loss_steps(mlflow_server, cell) == list(range(epochs))   # the replay adds none twice
    assert not is_train_worker(killed["pid"])


def test_driver_killed_mid_grid_then_resume_runs_only_unfinished_cells(tmp_path, ray_local,
                                                                      mlflow_server, tiny_model):
    """SIGKILL the `bias-inherit run` driver once a cell has finished; `bias-inherit resume` then
    runs exactly the cells MLflow does not hold as finished, into the same child runs."""
    from training.grid import expand_cells
    path = grid_config(tmp_path / "grid.yaml", "ft-resume", [0, 1], epochs=2)
    cfg = load_config(path)
    all_cells = {c.cell_id for c in expand_cells(cfg)}
    address = ray_local.get_runtime_context().gcs_address
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen([sys.executable, "-m", "ray_jobs.cli", "run", str(path), "--address",
                               address, "--tracking-uri", mlflow_server], cwd=REPO, env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 400
        while time.time() < deadline and driver.poll() is None:
            finished = {c for c, runs in cell_runs(mlflow_server, "ft-resume").items()
                        if runs[0].info.status == "FINISHED"}
            if finished:
                break
            time.sleep(0.5)
        assert driver.poll() is None, f"the driver ended early: {(tmp_path / 'driver.log').read_text()[-3000:]}"
        assert finished, "no cell finished in time"
    finally:
        stop_process_group(driver, signal.SIGKILL)
    time.sleep(1)
    before = {c: runs[0] for c, runs in cell_runs(mlflow_server, "ft-resume").items()}
    finished = {c for c, run in before.items() if run.info.status == "FINISHED"}
    assert finished != all_cells, "the whole grid finished before the driver was killed"

    proc = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "resume", "ft-resume", "--address",
                           address, "--tracking-uri", mlflow_server], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    ran = re.search(r"resumed: (\d+) cells ran \(([^)]*)\)", proc.stdout)
    assert ran, proc.stdout[-2000:]
    ran_cells = {c.strip() for c in ran.group(2).split(",") if c.strip()}
    assert int(ran.group(1)) == len(all_cells - finished)
    assert ran_cells == all_cells - finished

    runs = assert_one_finished_run_per_cell(mlflow_server, "ft-resume", cfg)
    for cell_id in finished:   # untouched: same run, started once, same end time
        assert runs[cell_id].info.run_id == before[cell_id].info.run_id
        assert runs[cell_id].data.tags["bias_inherit.trial_starts"] == "1"
        assert runs[cell_id].info.end_time == before[cell_id].info.end_time
    for cell_id in all_cells - finished:
        if cell_id in before:  # it had started before the kill: the same child run went on
            assert runs[cell_id].info.run_id == before[cell_id].info.run_id
            assert runs[cell_id].data.tags["bias_inherit.trial_starts"] == "2"
        if runs[cell_id].data.params["kind"] == "train":
            assert loss_steps(mlflow_server, runs[cell_id]) == [0, 1]


def test_resumed_train_run_logs_the_epochs_mlflow_missed_once(tmp_path, ray_local, mlflow_server,
                                                             tiny_model):
    """A Train run whose checkpoints got further than MLflow (the driver died after an epoch's
    checkpoint was registered, before that epoch's loss reached MLflow) fills the gap when it
    resumes: the worker reports the epochs its checkpoint holds again, and the cell logger writes
    the steps the child run lacks, once each. Set up without a race: the grid runs once, then
    again over the same Train storage into a new parent run whose child run holds nothing yet."""
    from mlflow.tracking import MlflowClient

    from ray_jobs.experiment import cell_logger, cell_trainable, grid_tuner, storage_uri
    from ray_jobs.tracking import TAG_KIND, find_cell_run
    from training.grid import expand_cells
    cfg = load_config(grid_config(tmp_path / "grid.yaml", "ft-replay", [0], epochs=2,
                                  evaluate_base_model=False))
    cfg = cfg.model_copy(update={"storage_path": storage_uri(cfg.storage_path)})
    cells = expand_cells(cfg)
    assert [c.cell_id for c in cells] == ["r0.00-original-only-none-s0"]
    client = MlflowClient(mlflow_server)
    experiment_id = client.create_experiment("ft-replay")
    child_runs = []
    for _ in range(2):
        parent = client.create_run(experiment_id, tags={TAG_KIND: "parent"})
        logger = cell_logger(cfg, mlflow_server, experiment_id, parent.info.run_id, cells)
        results = grid_tuner(cell_trainable(cfg, {}), [c.model_dump() for c in cells],
                             cfg.storage_path, "ft-replay", 1, 0, [logger]).fit()
        assert not [r.error for r in results if r.error]
        child_runs.append(find_cell_run(client, experiment_id, parent.info.run_id,
                                        cells[0].cell_id))
    first, second = child_runs
    assert first.data.metrics["resumed_from_epoch"] == 0.0
    assert second.data.metrics["resumed_from_epoch"] == 2.0   # the second pass trained nothing ...
    assert loss_steps(mlflow_server, first) == [0, 1]
    assert loss_steps(mlflow_server, second) == [0, 1]        # ... yet its child run has both epochs
    history = [{m.step: m.value for m in client.get_metric_history(run.info.run_id, "train_loss")}
               for run in child_runs]
    assert history[0] == history[1]   # the same losses, from the checkpoint's own record


def test_mlflow_server_restart_mid_grid_loses_no_metric(tmp_path, ray_local, tiny_model,
                                                       monkeypatch, caplog):
    """Kill the tracking server once a cell has finished, bring it back 8 s later on the same port
    and store: every finished cell keeps every metric, and the grid completes into the same runs.
    MLflow's own HTTP retries are off, so what bridges the outage is the cell logger's queue."""
    from ray_jobs.run import run_experiment
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    root = tmp_path / "mlflow"
    root.mkdir()
    port = free_port()
    server, uri = start_mlflow_server(root, port)
    servers = [server]
    # 4 epochs: the trial still training when the server goes reports into the outage.
    cfg = load_config(grid_config(tmp_path / "grid.yaml", "ft-mlflow-restart", [0, 1], epochs=4))
    seen: dict = {}

    def restart_server_after_first_finished_cell(done):
        deadline = time.time() + 500
        while not done.is_set() and time.time() < deadline:
            try:
                finished = {c: runs[0] for c, runs in cell_runs(uri, "ft-mlflow-restart").items()
                            if runs[0].info.status == "FINISHED"}
            except Exception:  # noqa: BLE001 - the experiment may not exist yet
                finished = {}
            if finished:
                seen.update({c: dict(run.data.metrics) for c, run in finished.items()})
                stop_process_group(servers[-1], signal.SIGKILL)
                seen["_down_at"] = time.time()
                time.sleep(8)
                servers.append(start_mlflow_server(root, port)[0])
                seen["_up_at"] = time.time()
                return
            time.sleep(0.5)

    try:
        with alongside(restart_server_after_first_finished_cell):
            run_experiment(cfg, tracking_uri=uri, echo=lambda *_: None)
        assert "_up_at" in seen, "the server was never restarted"
        assert "every queued write went through later" in caplog.text, "the outage went unseen"
        runs = assert_one_finished_run_per_cell(uri, "ft-mlflow-restart", cfg)
        finished_before = [c for c in seen if not c.startswith("_")]
        assert finished_before
        for cell_id in finished_before:
            after = runs[cell_id].data.metrics
            lost = {k: v for k, v in seen[cell_id].items() if after.get(k) != v}
            assert not lost, f"{cell_id} lost or changed metrics: {lost}"
        for run in runs.values():
            if run.data.params["kind"] == "train":
                assert set(loss_steps(uri, run)) == {0, 1, 2, 3}
    finally:
        for proc in servers:
            stop_process_group(proc)


@pytest.mark.parametrize("command", ["run", "resume"])
def test_misconfigured_or_unreachable_tracking_fails_fast(tmp_path, command):
    path = write_config(tmp_path / "c.yaml")
    for uri, message in (("htp://127.0.0.1:5000", "has an unknown scheme"),
                         ("http://127.0.0.1:9", "is unreachable")):
        target = str(path) if command == "run" else "unit"
        proc = subprocess.run([sys.executable, "-m", "ray_jobs.cli", command, target,
                               "--tracking-uri", uri], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2, proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and message in last, last
        assert "Started a local Ray instance" not in proc.stderr + proc.stdout
