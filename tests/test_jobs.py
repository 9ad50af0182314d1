"""Job submission: the runtime env `submit` builds, and a real job on a local Ray head.

The head is `ray start --head` on 127.0.0.1, started by the test with token auth on (Ray 2.60's
default for new clusters) and a token of its own in RAY_AUTH_TOKEN. The CLI submits a one-cell
grid, follows it with `status` and `logs --follow`, lists and stops it, and is refused with a
wrong token; MLflow then holds the job's runs.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, stop_process_group, write_config

pytestmark = pytest.mark.timeout(1200)   # a hang guard, generous for a loaded machine
REQUIRED_EXCLUDES = {".venv", "mlruns", "ray_results", "*.db", ".cache"}


def test_submission_runtime_env_and_entrypoint(tmp_path, monkeypatch):
    from ray.runtime_env import RuntimeEnv

    from ray_jobs.jobs import build_submission
    monkeypatch.delenv("BIAS_INHERIT_DATA_DIR", raising=False)
    entrypoint, env, warnings = build_submission(
        str(REPO / "configs" / "paper_gender.yaml"), ["optim.lr=1e-4"], REPO,
        data_dir="/data/bias-inherit", env=["HF_TOKEN=x"])
    assert entrypoint == "python -m ray_jobs.run configs/paper_gender.yaml optim.lr=1e-4"
    assert env["working_dir"] == str(REPO) and REQUIRED_EXCLUDES <= set(env["excludes"])
    assert env["env_vars"] == {"MLFLOW_TRACKING_URI": "http://mlflow.bias-inherit.svc.cluster.local:5000",
                               "BIAS_INHERIT_DATA_DIR": "/data/bias-inherit", "HF_TOKEN": "x"}
    assert warnings == []
    RuntimeEnv(**env)   # Ray's own validation

    # A config outside the project is read on the head by absolute path; relative storage warns.
    outside = write_config(tmp_path / "x.yaml", storage_path="ray_results")
    entrypoint, env, warnings = build_submission(str(outside), [], REPO, tracking_uri="http://m:5000")
    assert entrypoint.endswith(f"ray_jobs.run {outside}")
    assert any("outside the working dir" in w for w in warnings)
    assert any("storage_path 'ray_results' is relative" in w for w in warnings)


def test_auth_token_is_read_in_rays_order(tmp_path, monkeypatch):
    from ray_jobs.jobs import ray_auth_token, resolve_address
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert ray_auth_token() == "from-env"
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    assert ray_auth_token() == "from-file"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")   # a GCS address is not a job server
    assert resolve_address(None) == "http://127.0.0.1:8265"
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265/")
    assert resolve_address(None) == "http://head:8265"


def test_submit_to_an_unreachable_head_is_one_error_line(tmp_path):
    proc = _cli("submit", str(REPO / "configs" / "smoke.yaml"), "--address",
                f"http://127.0.0.1:{free_port()}", "--tracking-uri", "http://127.0.0.1:1",
                env=os.environ)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cannot reach the Ray job server")


def _cli(*args: str, env, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ray_jobs.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@contextmanager
def local_head(token: str, log_path: Path):
    """`ray start --head --block` on 127.0.0.1 with token auth and ports of its own."""
    from ray_jobs.jobs import JobError, client
    temp_dir = tempfile.mkdtemp(prefix="rh-", dir="/tmp")   # short: socket paths have a limit
    dashboard = free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
           "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
         "--node-ip-address=127.0.0.1", f"--port={free_port()}", "--num-cpus=2",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         f"--dashboard-agent-listen-port={free_port()}", f"--ray-client-server-port={free_port()}",
         f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.time() + 240
        while True:
            try:
                os.environ["RAY_AUTH_TOKEN"], saved = token, os.environ.get("RAY_AUTH_TOKEN")
                client(address)
                break
            except JobError:
                if head.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the Ray head did not come up: {log_path.read_text()[-3000:]}")
                time.sleep(2)
            finally:
                if saved is None:
                    os.environ.pop("RAY_AUTH_TOKEN", None)
                else:
                    os.environ["RAY_AUTH_TOKEN"] = saved
        yield address
    finally:
        stop_process_group(head, signal.SIGTERM, timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_submit_to_a_local_head_and_follow_it(tmp_path, mlflow_server, tiny_model):
    from mlflow.tracking import MlflowClient
    path = write_config(tmp_path / "job.yaml", name="job-grid", ratios=[0.0], seeds=[0],
                        evaluate_base_model=False,
                        generation={"model": "tiny-random-llama", "samples_per_type": 8},
                        data={"dataset_size": 16, "test_size": 12},
                        optim={"epochs": 1, "batch_size": 4},
                        resources={"cpus_per_worker": 1.0, "driver_cpus": 0.1},
                        storage_path=str(tmp_path / "storage"))
    token = secrets.token_hex(16)
    with local_head(token, tmp_path / "head.log") as address:
        # The shell needs no RAY_AUTH_MODE: the client sends the token it finds.
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
        env.update(RAY_AUTH_TOKEN=token, PYTHONPATH=str(REPO))

        submitted = _cli("submit", str(path), "--address", address, "--no-wait",
                         "--tracking-uri", mlflow_server, env=env)
        assert submitted.returncode == 0, submitted.stderr[-3000:]
        job_id = re.search(r"submitted (\S+): python -m ray_jobs.run ", submitted.stdout).group(1)
        assert "outside the working dir" in submitted.stderr

        status = _cli("status", job_id, "--address", address, env=env)
        assert status.returncode == 0 and re.search(r": (PENDING|RUNNING|SUCCEEDED)", status.stdout)

        logs = _cli("logs", job_id, "--follow", "--address", address, env=env, timeout=500)
        assert logs.returncode == 0, (logs.stdout[-3000:], logs.stderr[-2000:])
        assert "grid: 1 cells, 1 at a time" in logs.stdout
        assert "r0.00-original-only-none-s0" in logs.stdout   # the results table at the end
        assert f"job {job_id}: SUCCEEDED" in logs.stderr

        status = _cli("status", job_id, "--address", address, env=env)
        assert f"{job_id}: SUCCEEDED" in status.stdout
        listed = _cli("list", "--address", address, env=env)
        assert job_id in listed.stdout and "SUCCEEDED" in listed.stdout
        stopped = _cli("stop", job_id, "--address", address, env=env)
        assert stopped.returncode == 0 and "not running" in stopped.stdout

        refused = _cli("status", job_id, "--address", address,
                       env={**env, "RAY_AUTH_TOKEN": "not-the-token"})
        assert refused.returncode == 2
        assert refused.stderr.strip().splitlines()[-1].startswith("error: the Ray job server")

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("job-grid")
    runs = client.search_runs([exp.experiment_id], "tags.`bias_inherit.kind` = 'cell'")
    assert [r.info.status for r in runs] == ["FINISHED"]
    assert "occupation_classification/accuracy" in runs[0].data.metrics
