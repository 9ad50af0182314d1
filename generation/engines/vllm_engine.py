"""GPU engine: vLLM replicas through `ray.data.llm` (import of vllm happens only here).

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

from typing import Any

# Bookkeeping columns the vLLM stages add; the seed columns (provenance) pass through.
ENGINE_COLUMNS = ("prompt_token_ids", "generated_tokens", "request_id", "params", "metrics",
                  "embeddings", "logprobs", "prompt_logprobs", "batch_uuid", "time_taken_llm",
                  "__idx_in_batch", "tokenized_prompt", "num_input_tokens")


def vllm_processor_config(model_source: str, gen_cfg: Any):
    from ray.data.llm import vLLMEngineProcessorConfig
    return vLLMEngineProcessorConfig(
        model_source=model_source,
        engine_kwargs={"tensor_parallel_size": gen_cfg.tensor_parallel_size,
                       "max_model_len": gen_cfg.max_model_len, **gen_cfg.engine_kwargs},
        concurrency=gen_cfg.actors,
        batch_size=gen_cfg.batch_size,
        should_continue_on_error=gen_cfg.continue_on_error,
    )


def to_engine_request(row: dict) -> dict:
    """Our preprocessed row already has the `messages` and `sampling_params` vLLM reads."""
    return {**row, "messages": row["messages"], "sampling_params": row["sampling_params"]}


def from_engine_response(row: dict) -> dict:
    """Keep the seed columns and the text; drop vLLM's bookkeeping. (Rows that failed bypass this,
    with `__inference_error__` set: the shared postprocess drops them.)"""
    keep = {k: v for k, v in row.items() if k not in ENGINE_COLUMNS}
    keep.setdefault("generated_text", "")
    return keep


def build_vllm_processor(model_source: str, gen_cfg: Any):
    import vllm  # noqa: F401  -- fail here, with the extra's name, not deep inside Ray Data
    from ray.data.llm import build_processor
    return build_processor(vllm_processor_config(model_source, gen_cfg),
                           preprocess=to_engine_request, postprocess=from_engine_response)
