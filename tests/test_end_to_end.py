"""One real grid end to end: local Ray (2 CPUs), a real `mlflow server` on 127.0.0.1, real
generation with the offline SmolLM2 (few rows), real LoRA training of the tiny random Llama.

Then everything is checked through MlflowClient: one parent run, one child run per collapsed
cell with its metrics, and an adapter artifact that loads with peft.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bias.config import load_config
from tests.conftest import REPO, write_config
from training.worker_env import bundled_jemalloc

pytestmark = pytest.mark.timeout(1800)   # a hang guard: the module grid runs in the first test


@pytest.fixture(scope="module")
def finished_grid(tmp_path_factory, mlflow_server, ray_local, tiny_model):
    from ray_jobs.run import run_experiment
    tmp = tmp_path_factory.mktemp("e2e")
    path = write_config(
        tmp / "grid.yaml", name="e2e-grid",
        bias_types=["contextual-single-explicit", "contrastive-single-implicit"],
        ratios=[0.0, 0.25], mitigations=["none", "token"],
        generation={"model": "offline:smollm2-135m-instruct", "samples_per_type": 10,
                    "max_new_tokens": 64, "batch_size": 10, "cpus_per_actor": 1.5},
        optim={"epochs": 2, "batch_size": 4, "lr": 1e-3},
        resources={"cpus_per_worker": 1.0, "driver_cpus": 0.1},
        storage_path=str(tmp / "storage"))
    cfg = load_config(path)
    parent_run_id = run_experiment(cfg, tracking_uri=mlflow_server, echo=lambda *_: None)
    return cfg, parent_run_id, path


def test_mlflow_holds_one_parent_and_one_child_per_collapsed_cell(finished_grid, mlflow_server):
    from mlflow.tracking import MlflowClient
    cfg, parent_run_id, _ = finished_grid
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("e2e-grid")
    parents = client.search_runs([experiment.experiment_id], "tags.`bias_inherit.kind` = 'parent'")
    assert [p.info.run_id for p in parents] == [parent_run_id]
    parent = parents[0]
    assert parent.data.params["social_bias"] == "gender"
    # generated sets are dataset inputs of the parent run, with their stats
    inputs = parent.inputs.dataset_inputs
    assert {d.dataset.name for d in inputs} == {"augmented-contextual-single-explicit-s0",
                                                "augmented-contrastive-single-implicit-s0"}
    assert parent.data.metrics["generation.contextual-single-explicit.s0.kept"] >= 4
    assert 0.0 <= parent.data.metrics["generation.contextual-single-explicit.s0.balance_p_value"] <= 1.0

    children = client.search_runs([experiment.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent_run_id}'")
    cells = sorted(c.data.tags["bias_inherit.cell_id"] for c in children)
    # base + γ=0 once + γ=0.25 x 2 types x 2 mitigations
    assert len(cells) == 6 and cells.count("r0.00-original-only-none-s0") == 1
    for child in children:
        assert child.info.status == "FINISHED", child.data.tags["bias_inherit.cell_id"]
        m = child.data.metrics
        for key in ("occupation_classification/accuracy", "occupation_classification/accuracy_gap",
                    "occupation_classification/accuracy_male", "salary_recommendation/parse_rate"):
            assert key in m, (child.data.tags["bias_inherit.cell_id"], key)
        assert 0.0 <= m["occupation_classification/accuracy"] <= 1.0
        # The config default preloads Ray's bundled jemalloc into every Train worker.
        assert m["worker_jemalloc"] == float(bundled_jemalloc() is not None)
        assert m["worker_process_group"] == 0.0   # one worker: no gloo group left waking
        if child.data.params["kind"] == "train":
            assert m["train_tokens"] > 0 and "train_loss" in m
            expected_aug = round(float(child.data.params["ratio"]) * cfg.data.dataset_size)
            assert m["n_augmented_rows"] == expected_aug


def test_each_adapter_is_a_logged_model_that_mlflow_loads_and_that_changes_the_model(
        finished_grid, mlflow_server):
    """MLflow 3 logged models: every trained cell's adapter is found by search_logged_models,
    linked to its run and to the run's final metrics, and mlflow.transformers.load_model gives
    back a peft model on the base whose outputs differ from the base's."""
    import mlflow
    import mlflow.transformers
    import torch
    from mlflow.tracking import MlflowClient
    from mlflow.entities import LoggedModelStatus

    from bias.models import load_causal_lm, load_tokenizer
    _, parent_run_id, _ = finished_grid
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("e2e-grid")
    mlflow.set_tracking_uri(mlflow_server)
    models = mlflow.search_logged_models(
        experiment_ids=[experiment.experiment_id],
        filter_string=f"tags.`bias_inherit.parent_run_id` = '{parent_run_id}'", output_format="list")
    trained = client.search_runs([experiment.experiment_id],
                                 f"tags.`mlflow.parentRunId` = '{parent_run_id}' and "
                                 f"params.kind = 'train'")
    assert sorted(m.source_run_id for m in models) == sorted(r.info.run_id for r in trained)
    cell = "r0.25-contextual-single-explicit-token-s0"
    model = next(m for m in models if m.tags["bias_inherit.cell_id"] == cell)
    child = client.get_run(model.source_run_id)
    assert child.data.tags["bias_inherit.adapter_model_id"] == model.model_id
    assert model.params["mitigation"] == "token" and model.status == LoggedModelStatus.READY
    linked = {m.key: m.value for m in model.metrics}
    assert linked["occupation_classification/accuracy"] == \
        child.data.metrics["occupation_classification/accuracy"]
    tuned = mlflow.transformers.load_model(f"models:/{model.model_id}",
                                           return_type="components")["model"].float()
    # the base as the cell trained it (dtype auto: bf16 where the CPU has it), compared in fp32
    base = load_causal_lm("tiny-random-llama", tuned.get_base_model().config.dtype).float()
    tok = load_tokenizer("tiny-random-llama")
    ids = tok("Biography: Emma works at a clinic.\nOccupation:", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        before = base(input_ids=ids).logits
        after = tuned(input_ids=ids).logits
        with tuned.disable_adapter():
            unadapted = tuned(input_ids=ids).logits
    torch.testing.assert_close(unadapted, before)   # the base the adapter names, loaded afresh
    assert not torch.allclose(before, after), "the logged adapter is a no-op"


def test_results_command_reads_the_grid_back_from_mlflow(finished_grid, mlflow_server):
    _, parent_run_id, path = finished_grid
    proc = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "results", "--experiment",
                           "e2e-grid", "--tracking-uri", mlflow_server, "--format", "json"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 6 and rows[0]["cell"] == "base"
    assert all("occupation_classification/accuracy" in r for r in rows)
    proc = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "results", "--experiment",
                           "e2e-grid", "--tracking-uri", mlflow_server, "--mitigation", "token",
                           "--format", "csv"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 + 2 and all(",token," in line for line in lines[1:])   # 2 types x γ=0.25


def test_second_run_hits_the_generation_cache(finished_grid):
    import time
    from generation.pipeline import generate
    cfg, _, _ = finished_grid
    started = time.perf_counter()
    result = generate(cfg, "contextual-single-explicit", 0)
    assert result.cache_hit and result.stats["kept"] >= 4
    assert time.perf_counter() - started < 5, "a cache hit must not load a model"
    assert len(result.read()) == result.stats["kept"]


def test_results_for_unknown_experiment_is_a_clear_error(mlflow_server):
    proc = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "results", "--experiment",
                           "no-such-experiment", "--tracking-uri", mlflow_server],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no MLflow experiment named 'no-such-experiment'" in proc.stderr
