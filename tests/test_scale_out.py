"""Scale-out on a simulated multi-node cluster (`ray.cluster_utils.Cluster`, CPU only).

A CPU head advertises `trial_driver` slots; two "GPU" nodes advertise one `sim_gpu` each, a custom
resource standing in for a GPU. The grid's Train workers ask for `sim_gpu` (resources.
worker_resources) and its trial drivers for `trial_driver`, so: drivers stay on the head, workers
land on the GPU nodes and spread over both, and no more trials run at once than there are
`sim_gpu`s, which is also what `derive_max_concurrent_trials` derives from the cluster.

The cluster lives in a subprocess (the test session already runs its own local Ray).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bias.config import ResourcesConfig
from tests.conftest import REPO, write_config
from training.grid import derive_max_concurrent_trials, trial_demand

pytestmark = pytest.mark.timeout(1200)   # a hang guard, generous for a loaded machine
RESOURCES = {"workers_per_trial": 1, "cpus_per_worker": 0.5, "driver_cpus": 0.1,
             "driver_resources": {"trial_driver": 1}, "worker_resources": {"sim_gpu": 1}}
HEAD = {"num_cpus": 1, "resources": {"trial_driver": 4}}
GPU_NODE = {"num_cpus": 1, "resources": {"sim_gpu": 1}}
N_GPU_NODES = 2


def simulate(config_path: str, tracking_uri: str, out_path: str) -> None:
    """Run in a subprocess: start the cluster, run the grid on it, write node ids as JSON."""
    import ray
    from ray.cluster_utils import Cluster

    from bias.config import load_config
    from ray_jobs.run import run_experiment
    cluster = Cluster(initialize_head=True,
                      head_node_args={**HEAD, "include_dashboard": False})
    gpu_nodes = [cluster.add_node(**GPU_NODE) for _ in range(N_GPU_NODES)]
    try:
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        lines = []
        parent = run_experiment(load_config(config_path), address=cluster.address,
                                tracking_uri=tracking_uri, echo=lines.append)
        with open(out_path, "w") as f:
            json.dump({"parent": parent, "head": cluster.head_node.node_id, "echo": lines,
                       "gpu_nodes": [n.node_id for n in gpu_nodes],
                       "cluster": ray.cluster_resources()}, f)
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_concurrency_is_derived_from_custom_resources():
    res = ResourcesConfig(**RESOURCES)
    cluster = {"CPU": 3.0, "trial_driver": 4.0, "sim_gpu": 2.0}
    assert trial_demand(res) == {"CPU": 0.6, "sim_gpu": 1.0, "trial_driver": 1.0}
    assert derive_max_concurrent_trials(res, cluster, n_cells=10) == 2
    assert derive_max_concurrent_trials(res, {**cluster, "sim_gpu": 8.0}, n_cells=10) == 4


def test_trials_spread_over_gpu_nodes_and_respect_their_resources(tmp_path, mlflow_server,
                                                                  tiny_model):
    from mlflow.tracking import MlflowClient
    path = write_config(tmp_path / "grid.yaml", name="scale-out", ratios=[0.0], seeds=[0, 1, 2],
                        evaluate_base_model=False,
                        generation={"model": "tiny-random-llama", "samples_per_type": 8},
                        data={"dataset_size": 16, "test_size": 12},
                        optim={"epochs": 1, "batch_size": 4}, resources=RESOURCES,
                        storage_path=str(tmp_path / "storage"))
    out = tmp_path / "result.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = (f"from tests.test_scale_out import simulate; "
            f"simulate({str(path)!r}, {mlflow_server!r}, {str(out)!r})")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=env,
                            stdout=open(tmp_path / "sim.log", "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        proc.wait(timeout=540)
    finally:
        from tests.conftest import stop_process_group
        stop_process_group(proc)   # the Cluster's raylets and workers, should anything be left
    assert proc.returncode == 0, (tmp_path / "sim.log").read_text()[-4000:]
    sim = json.loads(out.read_text())
    assert "grid: 3 cells, 2 at a time, engine=hf" in sim["echo"]

    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("scale-out")
    runs = client.search_runs([exp.experiment_id],
                              f"tags.`mlflow.parentRunId` = '{sim['parent']}'")
    assert len(runs) == 3 and all(r.info.status == "FINISHED" for r in runs)
    drivers = {r.data.tags["bias_inherit.driver_node_id"] for r in runs}
    workers = [r.data.tags["bias_inherit.worker_node_id"] for r in runs]
    assert drivers == {sim["head"]}, "trial drivers left the CPU head"
    assert set(workers) == set(sim["gpu_nodes"]), "Train workers did not spread over the GPU nodes"

    # Trials (child-run lifetimes) overlapped, but never more than the sim_gpus allow.
    events = sorted([(r.info.start_time, 1) for r in runs] + [(r.info.end_time, -1) for r in runs])
    running, peak = 0, 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == N_GPU_NODES, f"peak concurrency {peak}"
