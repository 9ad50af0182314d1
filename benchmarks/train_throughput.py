"""LoRA training throughput, three ways in one run, against the machine's measured ceiling.

  (a) plain     a single-process PyTorch/peft loop (HF's own `labels=` loss, glibc malloc), each
                batch padded to its longest row, in a fresh process without Ray; timed twice, before Ray
                starts and beside the idle Ray cluster after the Ray trials, and averaged
  (b) ours      training/lora_loop.train_epochs in one Ray Train worker inside a Ray Tune trial,
                the same settings as (a) (the config defaults, so jemalloc in the worker:
                training/worker_env.py); timed in two trials and averaged. Also timed the same
                way in a plain process (b'; no Ray, same allocator), which splits (b)/(a) into our
                loop's own gain (target-only loss, jemalloc) and Ray's cost
  (c) best      our loop with the settings that won here (best_settings), in the same Tune setup;
                timed in two trials and averaged. Also timed in a plain process (c') like (b'),
                which splits (c)'s distance from the ceiling into the loop's own and Ray's
The run's order is mirrored, a b' c' | b c c b | c' b' a (Ray starts at the bar; the last three
run beside its idle cluster), so every figure's two timings average to the same point of the run.
All use the same model, rows, LoRA config, batch size and step count, after WARMUP_STEPS untimed
steps (torch.compile compiles there; its time is printed apart). Tokens/s counts non-pad tokens
over the loop's wall time, batching included. The ceiling is the measured dense matmul rate of
the run's dtype (the best of three readings: start, middle, end of the run) divided by 4·N FLOP
per token (LoRA: forward 2N + activation gradients 2N; frozen weights need no weight gradients),
N = the model's parameters. Beside it, the bound no loop with these matmuls can pass: the same
model's frozen matmuls alone (forward and input gradient of every linear, nothing else), timed at
the run's rows per step, after (a)+(b')+(c') and at the end, the best taken.

Rows: by default bios are joined into rows of 32-128 tokens (uniform), the length spread of a
γ-mix of short original and longer generated bios at max_length 128; `--row-tokens 0` trains on
the smoke grid's own short bios (~28 tokens) instead.

    python benchmarks/train_throughput.py                  # SmolLM2-135M, 2 CPU threads
    python benchmarks/train_throughput.py --levers         # + each lever alone against (a)
    python benchmarks/train_throughput.py --quick          # tiny model, a few steps (tests)

The figures print and go to benchmarks/results/train_throughput.json (--json); the runs so far,
with their hosts, are in docs/performance.md.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))   # spawned (a) processes import this file

from _results import add_json_option, write_results  # noqa: E402
from bias.bios import write_bios  # noqa: E402
from bias.config import ExperimentConfig, ResourcesConfig  # noqa: E402
from bias.local_ray import start_local_ray  # noqa: E402
from bias.models import (ARCHITECTURES, RANDOM_PREFIX, SMOLLM2, TINY,  # noqa: E402
                         compile_available, load_causal_lm, load_tokenizer, pick_dtype)
from training.lora_loop import (collate, decoder_compiled, lora_wrap,  # noqa: E402
                                tokenize_examples, train_epochs)
from training.token_loss import causal_lm_loss  # noqa: E402
from training.worker_env import (active_allocator, allocator_env_vars,  # noqa: E402
                                 release_single_worker_process_group, train_worker_runtime_env)

# Untimed steps first: torch.compile compiles there, and the process settles (in one process, the
# compiled loop's first pass over the timed rows ran measurably slower than the next two).
WARMUP_STEPS = 4
WORKER_ALLOCATOR = ResourcesConfig().worker_allocator   # the config default, as (b)'s workers get


def best_settings() -> dict:
    """The defaults plus what wins here but is off by default (compile: minutes to compile on
    a small CPU node, too slow for a smoke cell's few steps); compile only where it runs."""
    return {"compile": compile_available()}


def matmul_flops(dtype: torch.dtype, size: int = 1024, seconds: float = 2.0,
                 device: str = "cpu") -> float:
    """Measured dense matmul FLOP/s for `dtype` on this process's threads (or on the GPU)."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)

    def product():
        return a @ b
    for _ in range(3):
        product()
    synchronize(device)
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        product()
        n += 1
        if n % 16 == 0:
            synchronize(device)   # a GPU queues products far ahead of the clock
    synchronize(device)
    return 2 * size ** 3 * n / (time.perf_counter() - started)


def matmul_readings(dtype: torch.dtype, seconds: float) -> dict[str, float]:
    """One reading of the machine's matmul rate (torch's matmul)."""
    return {"torch": matmul_flops(dtype, seconds=seconds)}


def matmuls_alone(model: torch.nn.Module, rows: int):
    """A reader of the tokens/s of a step that did nothing but its frozen matmuls: every
    nn.Linear of the model (LoRA's base layers, the LM head) once forward (x W^T) and once for
    the input gradient (dY W), on `rows` token rows, each weight distinct as in a real step.
    read(repeats) times it and gives the best. A loop doing these matmuls cannot beat it here
    (ours projects the LM head on a few rows fewer: the positions with a target), which the
    square-matmul ceiling does not tell: these shapes (K = 576 for SmolLM2) run slower than
    1024^3."""
    weights = [m.weight.detach() for m in model.modules() if isinstance(m, torch.nn.Linear)]
    dtype = weights[0].dtype
    inputs = {n: torch.randn(rows, n, dtype=dtype) for n in {w.shape[1] for w in weights}}
    grads = {n: torch.randn(rows, n, dtype=dtype) for n in {w.shape[0] for w in weights}}

    def step():
        for w in weights:
            torch.nn.functional.linear(inputs[w.shape[1]], w)
        for w in reversed(weights):
            grads[w.shape[0]] @ w

    def read(repeats: int) -> float:
        step()
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            step()
            best = min(best, time.perf_counter() - started)
        return rows / best
    return read


def synchronize(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def experiment_config(args, optim: dict | None = None, **sections) -> ExperimentConfig:
    return ExperimentConfig(name="bench", bias_types=["neutral"], ratios=[0.0],
                            model={"name": args.model, **sections.get("model", {})},
                            lora=sections.get("lora", {}),
                            optim={"batch_size": args.batch_size, "epochs": 1, "lr": 1e-4,
                                   "max_length": 128, **(optim or {})})


def make_examples(args, n_rows: int) -> tuple[list[dict], int]:
    """(`n_rows` training rows, pad id): the smoke bios, or bios joined into rows of a spread of
    lengths; a random-weight model (random:...) has no tokenizer and gets random token ids."""
    rng = random.Random(0)
    if args.model.startswith(RANDOM_PREFIX):
        vocab = ARCHITECTURES[args.model.removeprefix(RANDOM_PREFIX)]["vocab_size"]
        pieces, pad_id = [[rng.randrange(1, vocab) for _ in range(64)]], 0
    else:
        import pandas as pd
        tokenizer = load_tokenizer(args.model, padding_side="right")
        bios = pd.DataFrame(write_bios(max(n_rows, 64), seed=0)).assign(source="original")
        examples = tokenize_examples(bios, tokenizer, 128, "all")
        if not args.row_tokens:
            return examples[:n_rows], tokenizer.pad_token_id
        pieces, pad_id = [e["input_ids"] for e in examples], tokenizer.pad_token_id
    rows = []
    for _ in range(n_rows):
        target, ids = rng.randint(args.row_tokens // 4, args.row_tokens), []
        while len(ids) < target:
            ids += rng.choice(pieces)
        rows.append({"input_ids": ids[:target], "labels": ids[:target], "augmented": False})
    return rows, pad_id


def split_examples(args) -> tuple[list[dict], list[dict], int]:
    """(warm-up rows, timed rows, pad id): the same for every variant of a run."""
    examples, pad_id = make_examples(args, args.batch_size * (args.steps + WARMUP_STEPS))
    warmup = args.batch_size * WARMUP_STEPS
    return examples[:warmup], examples[warmup:], pad_id


def plain_loop(args, model_overrides: dict | None = None, lora: dict | None = None,
               dtype: torch.dtype | None = None, compiled: bool = False, bucketed: bool | None = None,
               threads: int | None = None, target_only_loss: bool = False) -> dict:
    """(a): what a hand-rolled script does, on the batches our sampler draws with the config's
    defaults (so (a) and (b) do the same work). The keyword arguments are the lever ablations."""
    from training.batching import source_stratified_batches
    if threads:
        torch.set_num_threads(threads)
    cfg = experiment_config(args, model=model_overrides or {}, lora=lora or {})
    model = lora_wrap(load_causal_lm(args.model, dtype or pick_dtype("auto", args.device),
                                     args.device, cfg.model.attention), cfg)
    warmup, timed, pad_id = split_examples(args)
    bucketed = cfg.optim.length_bucketing if bucketed is None else bucketed
    lengths = [len(e["input_ids"]) for e in timed] if bucketed else None
    batches = source_stratified_batches(["original"] * len(timed), args.batch_size, 0, 0, lengths)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()

    def run(rows: list[dict]) -> tuple[int, int]:
        batch = collate(rows, pad_id)
        batch.pop("augmented", None)
        batch = {k: v.to(args.device) for k, v in batch.items()}
        if target_only_loss:
            causal_lm_loss(model, batch)[0].backward()
        else:
            model(**batch).loss.backward()   # HF's loss over every position's logits
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return int(batch["attention_mask"].sum()), batch["attention_mask"].numel()

    with decoder_compiled(model) if compiled else nullcontext():
        started = time.perf_counter()
        for step in range(WARMUP_STEPS):
            run(warmup[step * args.batch_size:(step + 1) * args.batch_size])
        warmup_seconds = time.perf_counter() - started
        tokens = slots = 0
        started = time.perf_counter()
        for rows in batches:
            n_tokens, n_slots = run([timed[i] for i in rows])
            tokens, slots = tokens + n_tokens, slots + n_slots
        synchronize(args.device)
        seconds = time.perf_counter() - started
    return {"tokens": tokens, "seconds": seconds, "padding_fraction": 1 - tokens / slots,
            "warmup_seconds": warmup_seconds, "allocator": active_allocator()}


def in_fresh_process(fn, *args, env: dict[str, str] | None = None, **kwargs):
    """fn(*args, **kwargs) in a fresh spawned process: no Ray in it, whatever runs beside it
    (as beside (b)'s worker). `env` is added to its environment from its start (LD_PRELOAD)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    saved = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(fn, *args, **kwargs).result()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def our_loop(config: dict) -> dict:
    """(b)/(c)'s work: training/lora_loop.train_epochs on the run's rows, timed like (a)."""
    torch.set_num_threads(config["threads"])
    args = argparse.Namespace(**config["args"])
    cfg = experiment_config(args, config["optim"])
    model = lora_wrap(load_causal_lm(args.model, pick_dtype(cfg.model.dtype, args.device),
                                     args.device, cfg.model.attention), cfg)
    warmup, timed, pad_id = split_examples(args)
    common = {"seed": 0, "rank": 0, "world": 1, "pad_id": pad_id,
              "device": torch.device(args.device)}
    started = time.perf_counter()
    train_epochs(model, warmup, cfg, **common)   # compiles here when optim.compile is on
    warmup_seconds = time.perf_counter() - started
    started = time.perf_counter()
    figures = train_epochs(model, timed, cfg, **common)
    synchronize(args.device)
    return {"tokens": figures["train_tokens"], "seconds": time.perf_counter() - started,
            "padding_fraction": figures["padding_fraction"],
            "warmup_seconds": warmup_seconds, "compiled": figures["train_compiled"],
            "worker_niceness": os.getpriority(os.PRIO_PROCESS, 0), "allocator": active_allocator()}


def our_loop_process(args, optim: dict) -> dict:
    """our_loop without Ray, with the Train workers' allocator: (b) over this is Ray's own cost."""
    return in_fresh_process(our_loop, {"args": vars(args), "optim": optim,
                                       "threads": torch.get_num_threads()},
                            env=allocator_env_vars(WORKER_ALLOCATOR))


def _worker(config: dict) -> None:
    """(b)/(c) inside a Ray Train worker, set up as training/lora_loop.py's workers are."""
    import ray.train
    released = release_single_worker_process_group(ray.train.get_context().get_world_size())
    ray.train.report({**our_loop(config), "worker_process_group": not released})


def _trial(config: dict) -> None:
    import ray.train
    from ray.train.torch import TorchTrainer
    from training.trial import reports_forwarded_to_tune
    with reports_forwarded_to_tune() as forward:
        TorchTrainer(_worker, train_loop_config=config,
                     scaling_config=ray.train.ScalingConfig(
                         num_workers=1, resources_per_worker={"CPU": config["threads"] - 0.1}),
                     run_config=ray.train.RunConfig(
                         storage_path=config["storage"], callbacks=[forward],
                         worker_runtime_env=train_worker_runtime_env(config["allocator"]))).fit()


def in_tune(args, optim: dict, storage: str) -> dict:
    from ray import tune
    threads = torch.get_num_threads()
    tuner = tune.Tuner(tune.with_resources(_trial, {"cpu": 0.1}),
                       param_space={"args": vars(args), "optim": optim, "threads": threads,
                                    "storage": storage,
                                    "allocator": WORKER_ALLOCATOR},
                       run_config=tune.RunConfig(storage_path=storage, verbose=0))
    result = tuner.fit()[0]
    if result.error:
        raise RuntimeError(result.error)
    return {k: result.metrics[k]
            for k in ("tokens", "seconds", "padding_fraction", "warmup_seconds", "compiled",
                      "worker_niceness", "allocator", "worker_process_group")}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default=SMOLLM2)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--row-tokens", type=int, default=128,
                        help="rows of row-tokens/4..row-tokens tokens; 0: the smoke bios as they are")
    parser.add_argument("--levers", action="store_true",
                        help="also time each lever alone in the plain loop, against (a)")
    parser.set_defaults(device="cpu")   # benchmarks/gpu_train_throughput.py times the GPU
    add_json_option(parser, "train_throughput")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.steps, args.batch_size, args.row_tokens = TINY, 4, 4, 32
    import tempfile

    import ray
    dtype = pick_dtype("auto")
    best_optim = best_settings() if not args.quick else {}
    peaks = [matmul_readings(dtype, seconds=0.5 if args.quick else 2.0)]
    model = load_causal_lm(args.model, dtype)   # N for the ceiling, and the bound's weights
    n_params = sum(p.numel() for p in model.parameters())
    plain_before = in_fresh_process(plain_loop, args)
    ours_plain_before = our_loop_process(args, {})
    best_plain_before = our_loop_process(args, best_optim)
    peaks.append(matmul_readings(dtype, seconds=0.5 if args.quick else 2.0))
    # the bound, at the rows per step the loops ran (timed tokens over steps); read here and at
    # the end, like the ceiling, and the best taken
    read_bound = matmuls_alone(model, max(1, round(plain_before["tokens"] / args.steps)))
    repeats = 2 if args.quick else 5
    bounds = [read_bound(repeats)]
    if not ray.is_initialized():
        start_local_ray(num_cpus=max(2, torch.get_num_threads()), log_to_driver=False)
    with tempfile.TemporaryDirectory() as storage:
        # Mirrored order (docstring): a shared VM's speed drifts within a run, by more than the
        # gaps measured, and mirrored, a steady drift favours no figure
        ours = in_tune(args, {}, storage)
        best = in_tune(args, best_optim, storage)
        best_again = best if args.quick else in_tune(args, best_optim, storage)
        ours_again = ours if args.quick else in_tune(args, {}, storage)
        # beside the idle Ray cluster, as (b) and (c) ran
        best_plain_after = best_plain_before if args.quick else our_loop_process(args, best_optim)
        ours_plain_after = ours_plain_before if args.quick else our_loop_process(args, {})
        plain_after = in_fresh_process(plain_loop, args)
        peaks.append(matmul_readings(dtype, seconds=0.5 if args.quick else 2.0))
        bounds.append(read_bound(repeats))
    bound = max(bounds)
    # The machine's best rate in this run: one reading taken while something else ran would
    # lower the ceiling and flatter every fraction of it.
    peak = max(max(reading.values()) for reading in peaks)
    ceiling = peak / (4 * n_params)
    # Each figure is timed twice (before/after Ray starts, or a first and a second trial): its
    # rate is the mean, and both timings are reported as <name>_<when>.
    timings = {"plain": {"before": plain_before, "after": plain_after},
               "ours": {"first": ours, "again": ours_again},
               "ours_plain": {"before": ours_plain_before, "after": ours_plain_after},
               "best": {"first": best, "again": best_again},
               "best_plain": {"before": best_plain_before, "after": best_plain_after}}
    rate = {}
    for name, runs in timings.items():
        for when, run in runs.items():
            rate[f"{name}_{when}"] = run["tokens"] / run["seconds"]
        rate[name] = sum(rate[f"{name}_{when}"] for when in runs) / len(runs)
    figures = {"model": args.model, "dtype": str(dtype).removeprefix("torch."),
               "threads": torch.get_num_threads(), "params": n_params,
               "row_tokens": args.row_tokens, "steps": args.steps, "batch_size": args.batch_size,
               "matmul_gflops": peak / 1e9, "ceiling_tokens_per_s": ceiling,
               "matmul_gflops_readings": [round(max(r.values()) / 1e9) for r in peaks],
               **{f"matmul_gflops_{kind}": max(r[kind] for r in peaks) / 1e9 for kind in peaks[0]},
               **{f"{k}_tokens_per_s": v for k, v in rate.items()},
               "ray_cost_ratio": rate["ours"] / rate["ours_plain"],
               "our_loop_over_plain": rate["ours_plain"] / rate["plain"],
               "ours_over_plain": rate["ours"] / rate["plain"],
               "best_over_plain": rate["best"] / rate["plain"],
               "best_plain_fraction_of_ceiling": rate["best_plain"] / ceiling,
               "best_ray_cost_ratio": rate["best"] / rate["best_plain"],
               "plain_fraction_of_ceiling": rate["plain"] / ceiling,
               "matmuls_alone_tokens_per_s": bound,
               "matmuls_alone_readings": [round(b) for b in bounds],
               "matmuls_alone_fraction_of_ceiling": bound / ceiling,
               "best_fraction_of_matmuls_alone": rate["best"] / bound,
               "best_fraction_of_ceiling": rate["best"] / ceiling,
               "padding_fraction_plain": plain_before["padding_fraction"],
               "padding_fraction_ours": ours["padding_fraction"],
               "padding_fraction_best": best["padding_fraction"],
               "best_compiled": best["compiled"], "best_warmup_seconds": best["warmup_seconds"],
               "worker_niceness": ours["worker_niceness"],
               "worker_process_group": ours["worker_process_group"] or best["worker_process_group"],
               "allocator_plain": plain_before["allocator"],
               "allocator_ours": ours["allocator"], "allocator_ours_plain": ours_plain_before["allocator"]}
    rows = "smoke bios" if not args.row_tokens else f"rows of {args.row_tokens // 4}-{args.row_tokens} tokens"
    print(f"model {args.model} ({n_params / 1e6:.1f}M params, {figures['dtype']}, "
          f"{figures['threads']} threads), {args.steps} steps x batch {args.batch_size}, {rows}")
    print(f"measured matmul {peak / 1e9:.0f} GFLOP/s (best of {figures['matmul_gflops_readings']}: "
          f"at the start, after (a)+(b')+(c') without Ray, at the end) -> ceiling {ceiling:.0f} tokens/s (4·N per token)")
    print(f"    the step's matmuls alone (frozen linears, forward + input gradients, no other work):"
          f" {bound:.0f} tokens/s (best of {figures['matmuls_alone_readings']})"
          f" = {figures['matmuls_alone_fraction_of_ceiling']:.1%} of ceiling, the bound for any loop here")
    print("    best reading each way: " + ", ".join(f"{kind} {figures[f'matmul_gflops_{kind}']:.0f}"
                                                    for kind in peaks[0]) + " GFLOP/s")
    print(f"(a) plain loop           {rate['plain']:8.0f} tokens/s   {rate['plain'] / ceiling:.1%} of ceiling"
          f"   (before Ray {rate['plain_before']:.0f}, after {rate['plain_after']:.0f})"
          f"   padding {plain_before['padding_fraction']:.1%}   malloc {plain_before['allocator']}")
    print(f"(b) ours, Ray Train+Tune {rate['ours']:8.0f} tokens/s   (b)/(a) = {figures['ours_over_plain']:.3f}"
          f"   (first {rate['ours_first']:.0f}, again {rate['ours_again']:.0f})"
          f"   padding {ours['padding_fraction']:.1%}   worker niceness {ours['worker_niceness']}"
          f"   malloc {ours['allocator']}")
    print(f"    of which: our loop without Ray {rate['ours_plain']:.0f} tokens/s"
          f" (before Ray {rate['ours_plain_before']:.0f}, after {rate['ours_plain_after']:.0f})"
          f" = {figures['our_loop_over_plain']:.3f} x (a);  Ray's own cost (b)/that ="
          f" {figures['ray_cost_ratio']:.3f}")
    print(f"(c) best {best_optim}")
    print(f"    in Ray Train+Tune    {rate['best']:8.0f} tokens/s   {figures['best_fraction_of_ceiling']:.1%} of ceiling"
          f"   (c)/(a) = {figures['best_over_plain']:.2f}   (first {rate['best_first']:.0f},"
          f" again {rate['best_again']:.0f})   padding {best['padding_fraction']:.1%}"
          f"   warm-up {best['warmup_seconds']:.0f} s (again {best_again['warmup_seconds']:.0f} s)")
    print(f"    of which: the same without Ray {rate['best_plain']:.0f} tokens/s"
          f" = {figures['best_plain_fraction_of_ceiling']:.1%} of ceiling (before Ray"
          f" {rate['best_plain_before']:.0f}, after {rate['best_plain_after']:.0f});"
          f"  Ray's own cost (c)/that = {figures['best_ray_cost_ratio']:.3f}")
    print(f"    (c) in Ray = {figures['best_fraction_of_matmuls_alone']:.1%} of the matmuls-alone bound")
    if args.levers:
        figures.update(lever_ablation(args, rate["plain"], dtype))
    write_results(args.json, "train_throughput", figures, argv)
    return figures


def lever_ablation(args, plain_rate: float, dtype: torch.dtype) -> dict:
    """Each lever alone, in the plain loop, against (a) of the same run (the config defaults)."""
    variants = {
        "sdpa_attention": {"model_overrides": {"attention": "sdpa"}},   # HF's own default
        "lora_dropout_0.05": {"lora": {"dropout": 0.05}},
        "one_thread": {"threads": 1},          # what Ray's OMP_NUM_THREADS gives a 1.9-CPU worker
        "no_length_bucketing": {"bucketed": False},
        "compile": {"compiled": True},
        "target_only_loss": {"target_only_loss": True},   # training/token_loss.py
        "jemalloc": {"env": allocator_env_vars("jemalloc")},   # training/worker_env.py
    }
    if dtype == torch.bfloat16:
        variants["fp32"] = {"dtype": torch.float32}
    if not compile_available():
        variants.pop("compile")
    out = {}
    for name, kwargs in variants.items():
        try:
            run = in_fresh_process(plain_loop, args, **kwargs)
        except Exception as e:  # noqa: BLE001 - a lever that cannot run here is a finding, not a crash
            out[f"lever_{name}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            print(f"lever {name:18s} failed here: {out[f'lever_{name}_error']}")
            continue
        out[f"lever_{name}_tokens_per_s"] = rate = run["tokens"] / run["seconds"]
        print(f"lever {name:18s} {rate:8.0f} tokens/s   x{rate / plain_rate:.2f} vs (a)"
              f"   padding {run['padding_fraction']:.1%}   warm-up {run['warmup_seconds']:.0f} s"
              f"   malloc {run['allocator']}")
    return out


if __name__ == "__main__":
    main()
