"""Generation throughput: the CPU engine (HFGenerator, batched left-padded generation) versus a naive
loop of per-prompt `model.generate`, in one run, on the same model object, prompts, max_new_tokens,
dtype and threads. Greedy decoding for both; generated tokens are the non-pad new tokens.

    python benchmarks/generation_throughput.py            # 32 prompts, 64 new tokens, batch 16
    python benchmarks/generation_throughput.py --quick    # 8 prompts, 24 new tokens, batch 8

Where vLLM imports (GPU machines, or `make test-vllm`'s .venv-vllm with vLLM's CPU build), the
same prompts also go through vLLM's engine (`vllm.LLM.chat`, greedy, eager mode), timed apart from
its start-up: the three engines' throughput in one run.

    .venv-vllm/bin/python benchmarks/generation_throughput.py     # naive, HF and vLLM

Prints each one's throughput and the ratios, and writes them to
benchmarks/results/generation_throughput.json (--json); the goal for the ratio and the runs so far
are in docs/performance.md. On a machine with a GPU (--device auto) the same script runs all on
the GPU.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from _results import add_json_option, write_results  # noqa: E402
from generation.engines.hf_engine import HFGenerator  # noqa: E402
from generation.prompts import make_seed_rows, preprocess  # noqa: E402


def make_rows(n: int, max_new_tokens: int, bias_type: str) -> list[dict]:
    seeds = make_seed_rows("gender", bias_type, n, seed=0)
    return [preprocess(r, social_bias="gender", bias_type=bias_type, strength=1.0,
                       prompt_version="v2", temperature=0.0, top_p=1.0,
                       max_new_tokens=max_new_tokens) for r in seeds]


def run_engine(engine: HFGenerator, rows: list[dict], batch_size: int) -> tuple[int, float, list[str]]:
    """Batches shaped as Ray Data hands them to the actor."""
    tokens, texts = 0, []
    started = time.perf_counter()
    for i in range(0, len(rows), batch_size):
        chunk = rows[i:i + batch_size]
        batch = {"prompt": np.array([r["prompt"] for r in chunk], dtype=object),
                 "prompt_id": np.array([r["prompt_id"] for r in chunk], dtype=object),
                 "sampling_params": np.array([r["sampling_params"] for r in chunk], dtype=object)}
        out = engine(batch)
        tokens += int(out["num_generated_tokens"].sum())
        texts.extend(out["generated_text"])
    return tokens, time.perf_counter() - started, texts


def run_naive(engine: HFGenerator, rows: list[dict], max_new_tokens: int) -> tuple[int, float, list[str]]:
    """One `model.generate` per prompt, no padding, the same model object and chat template."""
    tok, model = engine.tokenizer, engine.model
    tokens, texts = 0, []
    started = time.perf_counter()
    for r in rows:
        text = tok.apply_chat_template([{"role": "user", "content": r["prompt"]}], tokenize=False,
                                       add_generation_prompt=True)
        enc = tok(text, return_tensors="pt", add_special_tokens=False).to(engine.device)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        new = out[0, enc["input_ids"].shape[1]:]
        tokens += int((new != tok.pad_token_id).sum())
        texts.append(tok.decode(new, skip_special_tokens=True))
    return tokens, time.perf_counter() - started, texts


def run_vllm(model: str, dtype: torch.dtype, rows: list[dict], max_new_tokens: int,
             repeats: int) -> tuple[list[tuple[int, float, list[str]]], float]:
    """vLLM's own engine on the same chat prompts, greedy: ([(tokens, seconds, texts)] per
    repeat, start-up seconds). On CPUs it runs as the product runs it (eager, bounded KV cache)."""
    from bias.models import resolve_model
    from generation.engines.vllm_engine import CPU_KVCACHE_GIB
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB)
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    from vllm import LLM, SamplingParams
    started = time.perf_counter()
    llm = LLM(model=resolve_model(model), dtype=str(dtype).removeprefix("torch."),
              enforce_eager=True, max_model_len=2048, seed=0)
    startup = time.perf_counter() - started
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    chats = [[{"role": "user", "content": r["prompt"]}] for r in rows]
    llm.chat(chats[:2], params, use_tqdm=False)   # warm-up, as the other two
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        outs = llm.chat(chats, params, use_tqdm=False)
        seconds = time.perf_counter() - started
        runs.append((sum(len(o.outputs[0].token_ids) for o in outs), seconds,
                     [o.outputs[0].text for o in outs]))
    return runs, startup


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="offline:smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp32"))
    parser.add_argument("--device", default="auto", help="auto: cuda when available, else cpu")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=1, help="alternating rounds; medians reported")
    parser.add_argument("--bias-type", default="contextual-single-explicit")
    parser.add_argument("--quick", action="store_true", help="8 prompts, 24 new tokens, batch 8")
    parser.add_argument("--vllm", choices=("auto", "on", "off"), default="auto",
                        help="auto: also run vLLM where it imports")
    add_json_option(parser, "generation_throughput")
    args = parser.parse_args(argv)
    if args.quick:
        args.prompts, args.max_new_tokens, args.batch_size = 8, 24, 8

    engine = HFGenerator(args.model, dtype=args.dtype, threads=args.threads, device=args.device)
    rows = make_rows(args.prompts, args.max_new_tokens, args.bias_type)
    run_engine(engine, rows[:2], 2)               # warm-up, both paths
    run_naive(engine, rows[:1], 4)
    naive, batched = [], []
    for _ in range(args.repeats):
        naive.append(run_naive(engine, rows, args.max_new_tokens))
        batched.append(run_engine(engine, rows, args.batch_size))
    naive_tps = statistics.median(t / s for t, s, _ in naive)
    engine_tps = statistics.median(t / s for t, s, _ in batched)
    same = sum(a.strip() == b.strip() for a, b in zip(naive[-1][2], batched[-1][2]))
    import importlib.util
    with_vllm = args.vllm == "on" or (args.vllm == "auto" and importlib.util.find_spec("vllm"))
    vllm_runs, vllm_startup = run_vllm(args.model, engine.dtype, rows, args.max_new_tokens,
                                       args.repeats) if with_vllm else ([], 0.0)
    vllm_tps = statistics.median(t / s for t, s, _ in vllm_runs) if vllm_runs else None

    print(f"model={args.model} device={engine.device} dtype={str(engine.dtype).removeprefix('torch.')} "
          f"threads={args.threads} prompts={args.prompts} max_new_tokens={args.max_new_tokens} "
          f"batch_size={args.batch_size} repeats={args.repeats} (greedy)")
    print(f"{'path':28} {'tokens':>7} {'seconds':>8} {'tokens/s':>9}")
    paths = [("naive per-prompt generate", naive, naive_tps),
             ("HF engine (HFGenerator)", batched, engine_tps)]
    if vllm_runs:
        paths.append(("vLLM engine (vllm.LLM)", vllm_runs, vllm_tps))
    for label, runs, tps in paths:
        tokens, seconds, _ = runs[-1]
        print(f"{label:28} {tokens:7d} {seconds:8.1f} {tps:9.1f}")
    print(f"ratio engine/naive: {engine_tps / naive_tps:.2f}x   "
          f"(identical greedy outputs: {same}/{len(rows)})")
    vllm_figures = {}
    if vllm_runs:
        vllm_same = sum(a.strip() == b.strip() for a, b in zip(batched[-1][2], vllm_runs[-1][2]))
        print(f"ratio vLLM/HF engine: {vllm_tps / engine_tps:.2f}x, vLLM/naive: "
              f"{vllm_tps / naive_tps:.2f}x; vLLM start-up {vllm_startup:.1f} s (not in its "
              f"tokens/s); identical greedy outputs with the HF engine: {vllm_same}/{len(rows)}")
        vllm_figures = {"vllm_tokens": vllm_runs[-1][0], "vllm_seconds": vllm_runs[-1][1],
                        "vllm_tokens_per_s": vllm_tps, "vllm_startup_seconds": vllm_startup,
                        "vllm_over_engine": vllm_tps / engine_tps,
                        "vllm_over_naive": vllm_tps / naive_tps,
                        "vllm_identical_to_engine": vllm_same}
    write_results(args.json, "generation_throughput", {**vllm_figures,
        "model": args.model, "device": str(engine.device),
        "dtype": str(engine.dtype).removeprefix("torch."), "threads": args.threads,
        "prompts": args.prompts, "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size, "repeats": args.repeats, "bias_type": args.bias_type,
        "naive_tokens": naive[-1][0], "naive_seconds": naive[-1][1],
        "engine_tokens": batched[-1][0], "engine_seconds": batched[-1][1],
        "naive_tokens_per_s": naive_tps, "engine_tokens_per_s": engine_tps,
        "engine_over_naive": engine_tps / naive_tps, "identical_outputs": same,
        "outputs": len(rows)}, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
