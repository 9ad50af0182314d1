"""Scoring throughput: our batched label scoring and generation against a naive per-example loop,
on the same model and items, in one run.

  likelihood  occupation classification: 6 label continuations per bio. The naive loop runs one
              forward per (bio, label) with full-vocabulary logits at every position; ours runs
              each left-padded batch of bios once (LM head on the last position only) and
              continues every label from the bios' repeated KV cache in one small forward.
  generation  salary answers: the naive loop generates one prompt at a time; ours runs
              left-padded batches.
Tokens/s counts tokens fed through the model (likelihood) or generated (generation). The two
paths must agree: the same argmax labels, and the same greedy text. Ours runs as
evaluation/runner.py runs it.

    python benchmarks/eval_throughput.py                 # SmolLM2-135M, 48 bios, 24 prompts
    python benchmarks/eval_throughput.py --dtype fp32    # as a CPU without bf16 scores
    python benchmarks/eval_throughput.py --quick         # tiny random Llama, a few items

The figures print and go to benchmarks/results/eval_throughput.json (--json).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import add_json_option, write_results  # noqa: E402
from bias.bios import matched_bio_pairs, write_bios  # noqa: E402
from bias.formats import occupation_prompt, occupation_target  # noqa: E402
from bias.models import SMOLLM2, TINY, load_causal_lm, load_tokenizer, pick_dtype  # noqa: E402
from bias.vocabulary import OCCUPATIONS  # noqa: E402
from evaluation.scoring import generate_greedy, label_loglikelihoods  # noqa: E402
from evaluation.tasks.salary_recommendation import QUESTION  # noqa: E402


def naive_loglikelihoods(model, tokenizer, prompts, labels) -> torch.Tensor:
    scores = torch.empty(len(prompts), len(labels))
    for i, prompt in enumerate(prompts):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        for j, label in enumerate(labels):
            l = tokenizer(label, add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                logprobs = torch.log_softmax(model(input_ids=torch.tensor([p + l])).logits[0].float(), -1)
            scores[i, j] = sum(logprobs[len(p) - 1 + k, t] for k, t in enumerate(l))
    return scores


def naive_generate(model, tokenizer, prompts, max_new_tokens) -> list[str]:
    out = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            gen = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        out.append(tokenizer.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    return out


def timed(fn, *args):
    started = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - started


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, few items (for tests)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--bios", type=int, default=48)
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=12)
    parser.add_argument("--attention", default="auto", help="auto (eager on CPU), eager or sdpa")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16"],
                        help="auto: bf16 where the CPU has it (model.dtype's default)")
    add_json_option(parser, "eval_throughput")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.bios, args.prompts = args.model or TINY, 6, 4
    name = args.model or SMOLLM2
    torch.set_num_threads(torch.get_num_threads())
    dtype = pick_dtype(args.dtype)
    model = load_causal_lm(name, dtype, attention=args.attention).eval().requires_grad_(False)
    tokenizer = load_tokenizer(name)

    prompts = [occupation_prompt(r["text"]) for r in write_bios(args.bios, seed=0, split="test")]
    labels = [occupation_target(o) for o in OCCUPATIONS]
    label_tokens = sum(len(tokenizer(p + l, add_special_tokens=False)["input_ids"])
                       for p in prompts for l in labels)
    pairs = matched_bio_pairs(max(1, args.prompts // 2), seed=0, groups=[("english", "male"), ("english", "female")])
    gen_prompts = [f"Biography: {r['text']}\n{QUESTION}" for r in pairs][:args.prompts]
    new_tokens = len(gen_prompts) * args.max_new_tokens

    naive_scores, t_naive = timed(naive_loglikelihoods, model, tokenizer, prompts, labels)
    naive_text, g_naive = timed(naive_generate, model, tokenizer, gen_prompts, args.max_new_tokens)
    ours_scores, t_ours = timed(label_loglikelihoods, model, tokenizer, prompts, labels,
                                args.batch_size)
    ours_text, g_ours = timed(generate_greedy, model, tokenizer, gen_prompts, args.max_new_tokens,
                              args.batch_size)
    agree = (naive_scores.argmax(1) == ours_scores.argmax(1)).float().mean().item()
    same_text = sum(a == b for a, b in zip(naive_text, ours_text)) / len(gen_prompts)

    figures = {
        "model": name, "dtype": str(dtype).removeprefix("torch."), "threads": torch.get_num_threads(),
        "likelihood_naive_tokens_per_s": label_tokens / t_naive,
        "likelihood_batched_tokens_per_s": label_tokens / t_ours,
        "likelihood_speedup": t_naive / t_ours, "likelihood_argmax_agreement": agree,
        "generation_naive_tokens_per_s": new_tokens / g_naive,
        "generation_batched_tokens_per_s": new_tokens / g_ours,
        "generation_speedup": g_naive / g_ours, "generation_same_text": same_text,
    }
    print(f"model {name} ({figures['dtype']}, {figures['threads']} threads, "
          f"{model.config._attn_implementation} attention); "
          f"{len(prompts)} bios x {len(labels)} labels, {len(gen_prompts)} generation prompts")
    print(f"{'':12} {'naive tok/s':>12} {'batched tok/s':>14} {'speed-up':>9} {'agreement':>10}")
    print(f"{'likelihood':12} {figures['likelihood_naive_tokens_per_s']:12.0f} "
          f"{figures['likelihood_batched_tokens_per_s']:14.0f} {figures['likelihood_speedup']:8.1f}x "
          f"{agree:10.0%}")
    print(f"{'generation':12} {figures['generation_naive_tokens_per_s']:12.0f} "
          f"{figures['generation_batched_tokens_per_s']:14.0f} {figures['generation_speedup']:8.1f}x "
          f"{same_text:10.0%}")
    write_results(args.json, "eval_throughput", figures, argv)
    return figures


if __name__ == "__main__":
    main()
