"""The Ray Data generation pipeline: HF actor pool, parse/filter, parquet, stats, cache."""
from __future__ import annotations

import time

import pytest

from bias.config import load_config
from generation.engines import pick_engine
from generation.engines.vllm_engine import vllm_processor_config
from generation.parse import DROP_REASONS
from generation.pipeline import generate, generation_key, key_hash
from tests.conftest import write_config


@pytest.fixture
def gen_cfg(tmp_path, tiny_model):
    return load_config(write_config(
        tmp_path / "c.yaml", ratios=[0.0], storage_path=str(tmp_path / "storage"),
        generation={"model": tiny_model, "samples_per_type": 6, "max_new_tokens": 12,
                    "batch_size": 3, "cpus_per_actor": 1.0}))


def test_pipeline_writes_parquet_with_counts_and_then_hits_the_cache(gen_cfg, ray_local):
    first = generate(gen_cfg, "contrastive-single-implicit", seed=0)
    assert not first.cache_hit
    stats = first.stats
    assert stats["requested"] == 6
    assert set(stats["dropped"]) == set(DROP_REASONS)
    assert stats["kept"] + sum(stats["dropped"].values()) == 6
    assert stats["generated_tokens"] > 0 and stats["engine"] == "hf"
    frame = first.read()
    assert len(frame) == stats["kept"]
    for column in ("bias_type", "framing", "scope", "visibility", "prompt_id", "prompt_version",
                   "generator", "seed", "temperature", "source"):
        assert column in frame.columns

    started = time.perf_counter()
    again = generate(gen_cfg, "contrastive-single-implicit", seed=0)
    assert again.cache_hit and again.uri == first.uri and again.stats == stats
    assert time.perf_counter() - started < 2


def test_cache_key_changes_with_every_generation_input(gen_cfg):
    base = key_hash(generation_key(gen_cfg, "neutral", 0))
    assert base == key_hash(generation_key(gen_cfg, "neutral", 0))
    assert base != key_hash(generation_key(gen_cfg, "neutral", 1))
    assert base != key_hash(generation_key(gen_cfg, "contextual-single-explicit", 0))
    for field, value in [("prompt_version", "v2"), ("strength", 0.5), ("temperature", 0.1),
                         ("model", "other-model"), ("samples_per_type", 7)]:
        changed = gen_cfg.model_copy(update={"generation": gen_cfg.generation.model_copy(
            update={field: value})})
        assert key_hash(generation_key(changed, "neutral", 0)) != base, field


def test_engine_choice_and_vllm_config_building(gen_cfg):
    assert pick_engine("auto", cluster_gpus=0) == "hf"
    assert pick_engine("hf", cluster_gpus=8) == "hf"
    with pytest.raises(RuntimeError, match="gpu extra"):
        pick_engine("vllm", cluster_gpus=8)   # vllm is not installed on CPU machines
    g = gen_cfg.generation.model_copy(update={"tensor_parallel_size": 2, "actors": 4,
                                              "max_model_len": 2048, "batch_size": 32})
    config = vllm_processor_config("meta-llama/Llama-3.1-8B-Instruct", g)
    assert config.concurrency == 4 and config.batch_size == 32
    assert config.engine_kwargs["tensor_parallel_size"] == 2
    assert config.engine_kwargs["max_model_len"] == 2048
    assert config.should_continue_on_error is True


@pytest.mark.gpu
def test_vllm_engine_generates_on_gpu(gen_cfg, ray_local):
    cfg = gen_cfg.model_copy(update={"generation": gen_cfg.generation.model_copy(
        update={"engine": "vllm", "model": "HuggingFaceTB/SmolLM2-135M-Instruct"})})
    result = generate(cfg, "contextual-single-explicit", seed=0, engine="vllm")
    assert result.stats["kept"] > 0
