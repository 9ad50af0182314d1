"""LoRA training throughput of an 8B-architecture model on one GPU, as MFU against its bf16 peak.

No hub weights are reachable on the lent GPU machines and Ray is not installed there, so this
runs in one process, on Llama-3.1-8B's shapes with random weights (bias/models.py `random:`; a
step's speed does not depend on the weights' values) and random token ids, rows of 256-1024 tokens:
  (a)  plain   a hand-rolled peft loop (HF's `labels=` loss) on the same length-bucketed batches
  (b') ours    training/lora_loop.train_epochs with the config defaults on a GPU (bf16, SDPA
               attention, length bucketing, the target-only chunked loss)
  (c)  best    ours with the decoder compiled (optim.compile), only with --compile: on an H100 it
               compiled for minutes and then trained slower than eager, so it is off there
Each loads a fresh model (one at a time: the 8B weights alone are 16 GB) and is timed over the same
rows after benchmarks/train_throughput.py's WARMUP_STEPS untimed steps, the GPU synchronised
before the clock is read. Ray's own cost is measured on CPU, by benchmarks/train_throughput.py.

MFU = useful FLOP/s / the GPU's dense bf16 peak (the datasheet's, looked up by device name), and
also against the 8192^3 bf16 matmul rate measured in the same run. Useful FLOP for LoRA, per
timed run: 4·N_linear per non-pad token (forward 2N, activation gradients 2N; frozen weights take
no weight gradient; N_linear counts every Linear weight, the LM head included, the embedding lookup
not) plus causal attention, 6·L·d·s² per row of s tokens (QK^T and AV over the causal half,
forward 2·L·d·s², backward twice that). The small LoRA matmuls are not counted.

    python benchmarks/gpu_train_throughput.py                 # on a GPU machine (batch 8)
    python benchmarks/gpu_train_throughput.py --quick         # a tiny random Llama on CPU (tests)

PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True is set here: without it (a), whose full fp32
logits fragment the caching allocator, ran out of memory at batch 8 on an 80 GB GPU. The figures
print and go to benchmarks/results/gpu_train_throughput.json (--json); the runs so far, with
their hosts, are in docs/performance.md.

On the `device` tool (no package index there; its image has no pydantic, and its transformers
5.17 predates the boolean `logits_to_keep` our loss passes): first, here,
    pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 \\
        -d .whl pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 \\
        typing-inspection==0.4.5 transformers==5.23.0 peft==0.21.2 && echo /.whl/ >> .git/info/exclude
then, with carry [".whl"]: `python3 -m pip install -q --no-index --no-deps --target /tmp/site
.whl/*.whl && PYTHONPATH=/tmp/site python3 benchmarks/gpu_train_throughput.py`.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

# Before torch touches CUDA: (a)'s full fp32 logits at batch 8 fragment the caching allocator.
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import add_json_option, write_results  # noqa: E402
from bias.models import (ARCHITECTURES, RANDOM_PREFIX, compile_available,  # noqa: E402
                         load_causal_lm)
from train_throughput import (WARMUP_STEPS, matmul_flops, our_loop, plain_loop,  # noqa: E402
                              split_examples)

# Dense bf16 tensor-core peaks from the vendors' datasheets (no sparsity), by device-name substring.
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0,
                    "L40S": 362.1, "L4": 121.0, "A10": 125.0}


def datasheet_peak(device_name: str) -> float | None:
    """FLOP/s, or None for a GPU the table does not know (MFU then uses the measured rate)."""
    for key, tflops in BF16_PEAK_TFLOPS.items():   # the longer names come first where they clash
        if key in device_name:
            return tflops * 1e12
    return None


def useful_flops(args, rows: list[dict], tokens: int, n_linear: int) -> float:
    """4·N_linear per token plus causal attention (see the module docstring)."""
    shape = ARCHITECTURES[args.model.removeprefix(RANDOM_PREFIX)]
    attention = 6 * shape["num_hidden_layers"] * shape["hidden_size"] * sum(
        len(r["input_ids"]) ** 2 for r in rows)
    return 4 * n_linear * tokens + attention


def linear_parameters(args) -> int:
    """N_linear of the architecture, counted on a meta-device copy (no memory)."""
    model = load_causal_lm(args.model, torch.bfloat16, "meta", "sdpa")
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def freed(result: dict) -> dict:
    """The previous variant's model is garbage now: give its GPU memory back before the next."""
    gc.collect()
    if torch.cuda.is_available():
        result["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default=RANDOM_PREFIX + "llama-3.1-8b")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--row-tokens", type=int, default=1024, help="rows of row-tokens/4..row-tokens")
    parser.add_argument("--compile", action="store_true",
                        help="also (c), ours compiled (slower than eager on an H100 so far: "
                             "docs/performance.md)")
    add_json_option(parser, "gpu_train_throughput")
    args = parser.parse_args(argv)
    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.quick:
        args.model, args.steps, args.batch_size, args.row_tokens = RANDOM_PREFIX + "tiny-llama", 2, 2, 32
    elif args.device != "cuda":
        parser.error("no GPU here: this benchmark is for GPU machines (--quick runs a tiny model on CPU)")
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    size = 512 if args.quick else 8192
    measured = matmul_flops(torch.bfloat16, size=size,
                            seconds=0.5 if args.quick else 3.0, device=args.device)
    peak = (datasheet_peak(device_name) if args.device == "cuda" else None) or measured
    n_linear = linear_parameters(args)
    _, timed, _ = split_examples(args)

    runs = {"plain": freed(plain_loop(args)), "ours": freed(our_loop({"args": vars(args), "optim": {},
                                                                       "threads": torch.get_num_threads()}))}
    if args.compile and not args.quick and compile_available():
        runs["best"] = freed(our_loop({"args": vars(args), "optim": {"compile": True},
                                       "threads": torch.get_num_threads()}))
    figures = {"device": device_name, "model": args.model, "linear_params": n_linear,
               "bf16_peak_tflops": peak / 1e12, "measured_matmul_tflops": measured / 1e12,
               "steps": args.steps, "batch_size": args.batch_size, "row_tokens": args.row_tokens}
    print(f"{device_name}: {args.model} ({n_linear / 1e6:,.1f}M linear params), {args.steps} steps x "
          f"batch {args.batch_size}, rows of {args.row_tokens // 4}-{args.row_tokens} tokens, "
          f"{WARMUP_STEPS} warm-up steps")
    print(f"bf16 peak {peak / 1e12:.3g} TFLOP/s ({'datasheet' if peak != measured else 'measured'});"
          f" measured {size}^3 matmul {measured / 1e12:.3g} TFLOP/s")
    for name, run in runs.items():
        rate = run["tokens"] / run["seconds"]
        flops = useful_flops(args, timed, run["tokens"], n_linear) / run["seconds"]
        figures.update({f"{name}_tokens_per_s": rate, f"{name}_mfu": flops / peak,
                        f"{name}_fraction_of_measured_matmul": flops / measured,
                        f"{name}_padding_fraction": run["padding_fraction"],
                        f"{name}_peak_memory_gb": run.get("peak_memory_gb", 0.0)})
        print(f"{name:6s} {rate:9.0f} tokens/s   MFU {flops / peak:6.1%}   "
              f"{flops / measured:6.1%} of the measured matmul   padding {run['padding_fraction']:.1%}"
              f"   warm-up {run['warmup_seconds']:.0f} s   peak memory {run.get('peak_memory_gb', 0):.0f} GB")
    figures["ours_over_plain"] = figures["ours_tokens_per_s"] / figures["plain_tokens_per_s"]
    print(f"(b')/(a) = {figures['ours_over_plain']:.3f}")
    write_results(args.json, "gpu_train_throughput", figures, argv)
    return figures


if __name__ == "__main__":
    main()
