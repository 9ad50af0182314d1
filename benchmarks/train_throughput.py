"""LoRA training throughput, three ways in one run, against the machine's measured ceiling.

  (a) plain     a single-process PyTorch/peft loop: shuffled batches padded to their longest row
  (b) ours      training/lora_loop.train_epochs in one Ray Train worker inside a Ray Tune trial,
                the same settings as (a): what Ray costs
  (c) best      our loop with the settings that won here (see --best), in the same Tune setup
All three use the same model, examples, LoRA config, batch size and step count. Tokens/s counts
non-pad tokens over the loop's wall time (batching included). The ceiling is the measured dense
matmul rate of the run's dtype divided by 4·N FLOP per token (LoRA: forward 2N + activation
gradients 2N; frozen weights need no weight gradients), N = the model's parameters.

    python benchmarks/train_throughput.py                  # SmolLM2-135M, 2 CPU threads
    python benchmarks/train_throughput.py --quick          # tiny model, a few steps (tests)
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bias.bios import write_bios  # noqa: E402
from bias.config import ExperimentConfig  # noqa: E402
from bias.models import SMOLLM2, TINY, load_causal_lm, load_tokenizer, pick_dtype  # noqa: E402
from training.lora_loop import collate, lora_wrap, tokenize_examples, train_epochs  # noqa: E402

BEST = {"length_bucketing": True}


def matmul_flops(dtype: torch.dtype, size: int = 1024, seconds: float = 2.0) -> float:
    """Measured dense matmul FLOP/s for `dtype` on this process's threads."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    for _ in range(3):
        a @ b
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        n += 1
    return 2 * size ** 3 * n / (time.perf_counter() - started)


def experiment_config(args, **optim) -> ExperimentConfig:
    return ExperimentConfig(name="bench", bias_types=["neutral"], ratios=[0.0],
                            model={"name": args.model},
                            optim={"batch_size": args.batch_size, "epochs": 1, "lr": 1e-4,
                                   "max_length": 128, **optim})


def make_examples(args, tokenizer) -> list[dict]:
    import pandas as pd
    frame = pd.DataFrame(write_bios(args.batch_size * args.steps, seed=0)).assign(source="original")
    return tokenize_examples(frame, tokenizer, 128, "all")


def plain_loop(args, dtype: torch.dtype | None = None, compiled: bool = False) -> dict:
    """(a): what a hand-rolled script does. `dtype`/`compiled`: the lever ablations (--levers)."""
    cfg = experiment_config(args)
    tokenizer = load_tokenizer(args.model, padding_side="right")
    model = lora_wrap(load_causal_lm(args.model, dtype or pick_dtype("auto")), cfg)
    if compiled:
        model = torch.compile(model, dynamic=True)   # batch widths vary: one dynamic graph
    examples = make_examples(args, tokenizer)
    order = list(range(len(examples)))
    random.Random(0).shuffle(order)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    if compiled:   # compile time is paid once per run, not per step: keep it out of the rate
        for width in (0, 1):
            batch = collate([examples[i] for i in order[width * args.batch_size:(width + 1) * args.batch_size]],
                            tokenizer.pad_token_id)
            batch.pop("augmented", None)
            model(**batch).loss.backward()
        optimizer.zero_grad(set_to_none=True)
    tokens, started = 0, time.perf_counter()
    for step in range(args.steps):
        rows = [examples[i] for i in order[step * args.batch_size:(step + 1) * args.batch_size]]
        batch = collate(rows, tokenizer.pad_token_id)
        batch.pop("augmented", None)
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += int(batch["attention_mask"].sum())
    return {"tokens": tokens, "seconds": time.perf_counter() - started}


def _worker(config: dict) -> None:
    """(b)/(c) inside a Ray Train worker: our loop, timed the same way as (a)."""
    import ray.train
    torch.set_num_threads(config["threads"])
    args = argparse.Namespace(**config["args"])
    cfg = experiment_config(args, **config["optim"])
    tokenizer = load_tokenizer(args.model, padding_side="right")
    model = lora_wrap(load_causal_lm(args.model, pick_dtype(cfg.model.dtype)), cfg)
    examples = make_examples(args, tokenizer)
    started = time.perf_counter()
    figures = train_epochs(model, examples, cfg, seed=0, rank=0, world=1,
                           pad_id=tokenizer.pad_token_id, device=torch.device("cpu"))
    ray.train.report({"tokens": figures["train_tokens"], "seconds": time.perf_counter() - started,
                      "padding_fraction": figures.get("padding_fraction", float("nan"))})


def _trial(config: dict) -> None:
    import ray.train
    from ray.train.torch import TorchTrainer
    from training.trial import reports_forwarded_to_tune
    with reports_forwarded_to_tune() as forward:
        TorchTrainer(_worker, train_loop_config=config,
                     scaling_config=ray.train.ScalingConfig(
                         num_workers=1, resources_per_worker={"CPU": config["threads"] - 0.1}),
                     run_config=ray.train.RunConfig(storage_path=config["storage"],
                                                    callbacks=[forward])).fit()


def in_tune(args, optim: dict, storage: str) -> dict:
    from ray import tune
    threads = torch.get_num_threads()
    tuner = tune.Tuner(tune.with_resources(_trial, {"cpu": 0.1}),
                       param_space={"args": vars(args), "optim": optim, "threads": threads,
                                    "storage": storage},
                       run_config=tune.RunConfig(storage_path=storage, verbose=0))
    result = tuner.fit()[0]
    if result.error:
        raise RuntimeError(result.error)
    return {k: result.metrics[k] for k in ("tokens", "seconds", "padding_fraction")}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--model", default=SMOLLM2)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--levers", action="store_true",
                        help="also time the plain loop in fp32 and under torch.compile")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.steps, args.batch_size = TINY, 4, 4
    import tempfile

    import ray
    dtype = pick_dtype("auto")
    peak = matmul_flops(dtype, seconds=0.5 if args.quick else 2.0)
    n_params = sum(p.numel() for p in load_causal_lm(args.model, torch.float32).parameters())
    ceiling = peak / (4 * n_params)
    plain = plain_loop(args)
    if not ray.is_initialized():
        ray.init(num_cpus=max(2, torch.get_num_threads()), log_to_driver=False)
    with tempfile.TemporaryDirectory() as storage:
        ours = in_tune(args, {}, storage)
        best = in_tune(args, BEST, storage)
    rate = {k: v["tokens"] / v["seconds"] for k, v in (("plain", plain), ("ours", ours), ("best", best))}
    figures = {"model": args.model, "dtype": str(dtype).removeprefix("torch."),
               "threads": torch.get_num_threads(), "params": n_params,
               "matmul_gflops": peak / 1e9, "ceiling_tokens_per_s": ceiling,
               "plain_tokens_per_s": rate["plain"], "ours_tokens_per_s": rate["ours"],
               "best_tokens_per_s": rate["best"], "ours_over_plain": rate["ours"] / rate["plain"],
               "best_fraction_of_ceiling": rate["best"] / ceiling,
               "padding_fraction_ours": ours["padding_fraction"],
               "padding_fraction_best": best["padding_fraction"]}
    print(f"model {args.model} ({n_params / 1e6:.1f}M params, {figures['dtype']}, "
          f"{figures['threads']} threads), {args.steps} steps x batch {args.batch_size}")
    print(f"measured matmul {peak / 1e9:.0f} GFLOP/s -> ceiling {ceiling:.0f} tokens/s (4·N per token)")
    print(f"(a) plain loop          {rate['plain']:8.0f} tokens/s")
    print(f"(b) ours, Ray Train+Tune {rate['ours']:8.0f} tokens/s   (b)/(a) = {figures['ours_over_plain']:.3f}"
          f"   padding {ours['padding_fraction']:.1%}")
    print(f"(c) best {BEST}  {rate['best']:8.0f} tokens/s   {figures['best_fraction_of_ceiling']:.1%} of ceiling"
          f"   padding {best['padding_fraction']:.1%}")
    if args.levers:
        figures.update(lever_ablation(args, rate["plain"], dtype))
    return figures


def lever_ablation(args, plain_rate: float, dtype: torch.dtype) -> dict:
    """The levers that are not config switches, each against (a) from the same run."""
    out = {}
    variants = {"fp32": {"dtype": torch.float32}, "compile": {"compiled": True}}
    if dtype == torch.float32:
        variants.pop("fp32")   # (a) already ran in fp32: this CPU has no fast bf16
    for name, kwargs in variants.items():
        try:
            run = plain_loop(args, **kwargs)
            out[f"lever_{name}_tokens_per_s"] = run["tokens"] / run["seconds"]
            print(f"lever {name:8s} (plain loop) {out[f'lever_{name}_tokens_per_s']:8.0f} tokens/s"
                  f"   x{out[f'lever_{name}_tokens_per_s'] / plain_rate:.2f} vs (a)")
        except Exception as e:  # noqa: BLE001 - a lever that cannot run here is a finding, not a crash
            out[f"lever_{name}_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            print(f"lever {name:8s} failed here: {out[f'lever_{name}_error']}")
    return out


if __name__ == "__main__":
    main()
