"""GPU engine: vLLM replicas through `ray.data.llm` (import of vllm happens only here).

`build_vllm_processor(gen_cfg)` returns a Ray Data processor; `processor(ds)` yields rows with
`generated_text` (and `__inference_error__` on failed rows, since should_continue_on_error=True).
"""
from __future__ import annotations

from typing import Any


def vllm_processor_config(model_source: str, gen_cfg: Any):
    from ray.data.llm import vLLMEngineProcessorConfig
    return vLLMEngineProcessorConfig(
        model_source=model_source,
        engine_kwargs={"tensor_parallel_size": gen_cfg.tensor_parallel_size,
                       "max_model_len": gen_cfg.max_model_len},
        concurrency=gen_cfg.actors,
        batch_size=gen_cfg.batch_size,
        should_continue_on_error=True,
    )


def _to_engine_request(row: dict) -> dict:
    return {**row, "messages": row["messages"], "sampling_params": row["sampling_params"]}


def _from_engine_response(row: dict) -> dict:
    # Keep the seed columns (provenance) and the text; vLLM adds many bookkeeping columns.
    keep = {k: v for k, v in row.items()
            if k not in ("prompt_token_ids", "generated_tokens", "request_id", "params", "metrics")}
    keep.setdefault("generated_text", "")
    return keep


def build_vllm_processor(model_source: str, gen_cfg: Any):
    from ray.data.llm import build_processor
    import vllm  # noqa: F401  -- fail here, with the extra's name, not deep inside Ray Data
    return build_processor(vllm_processor_config(model_source, gen_cfg),
                           preprocess=_to_engine_request, postprocess=_from_engine_response)
