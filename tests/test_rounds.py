"""Multi-round self-augmentation on the tiny model: one nested child run per round, and round 2
generates with round 1's adapter (a different cache entry than the base generator's)."""
from __future__ import annotations

import pytest

from bias.config import load_config
from tests.conftest import write_config

pytestmark = pytest.mark.timeout(1200)   # a hang guard, generous for a loaded machine


def test_two_rounds_give_two_nested_runs_with_task_metrics(tmp_path, ray_local, tiny_model):
    from mlflow.tracking import MlflowClient

    from ray_jobs.run import run_experiment
    cfg = load_config(write_config(
        tmp_path / "rounds.yaml", name="rounds", bias_types=["neutral"], ratios=[0.0],
        evaluate_base_model=False, rounds=2, round_ratio=0.5,
        generation={"model": tiny_model, "samples_per_type": 8, "max_new_tokens": 16,
                    "batch_size": 8, "cpus_per_actor": 1.0},
        data={"dataset_size": 16, "test_size": 12}, evaluation={"limit": 6},
        resources={"cpus_per_worker": 1.0}, analyses={"distribution": False},
        storage_path=str(tmp_path / "storage")))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    parent_id = run_experiment(cfg, tracking_uri=uri, echo=lambda *_: None)

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("rounds")
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")
    rounds = {c.data.params["round"]: c for c in children if c.data.params["round"] != "0"}
    assert sorted(rounds) == ["1", "2"]
    for child in rounds.values():
        assert child.info.status == "FINISHED"
        assert "occupation_classification/accuracy" in child.data.metrics
        assert child.data.params["bias_type"] == "neutral"
    parent = client.get_run(parent_id)
    assert {d.dataset.name for d in parent.inputs.dataset_inputs} >= {"round1-neutral-s0",
                                                                      "round2-neutral-s0"}
    digests = {d.dataset.name: d.dataset.digest for d in parent.inputs.dataset_inputs}
    # round 2's generator is base + round-1 adapter: its set is a separate, content-addressed entry
    sources = {d.dataset.name: d.dataset.source for d in parent.inputs.dataset_inputs}
    assert sources["round1-neutral-s0"] != sources["round2-neutral-s0"], digests
