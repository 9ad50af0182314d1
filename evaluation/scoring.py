"""Batched scoring primitives: label log-likelihoods, sentence log-likelihoods, greedy generation.

All take a (possibly LoRA-wrapped) causal LM and run whole batches per forward pass, so a
PeftModel is scored as is, with no merged copy of the base model.
"""
from __future__ import annotations

import random
from collections import defaultdict
import functools
from typing import TYPE_CHECKING, Callable, Iterable

if TYPE_CHECKING:
    import torch


def _inference_mode(fn):
    """torch.inference_mode() around `fn`, with torch imported at call time: the task modules
    import this one, and reading their declarations (validate, pre-flight, report) needs no torch."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import torch
        with torch.inference_mode():
            return fn(*args, **kwargs)
    return wrapper


def _batches(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _left_padded(seqs: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input ids, attention mask, position ids) of left-padded sequences; positions count real
    tokens only, so padding does not shift them."""
    import torch
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, width - len(s):] = torch.tensor(s)
        mask[row, width - len(s):] = 1
    return ids, mask, (mask.cumsum(dim=1) - 1).clamp(min=0)


def _forward_left_padded(model, seqs: list[list[int]], pad: int, keep: int, device) -> torch.Tensor:
    """Logits of the last `keep` positions of each left-padded sequence: [rows, keep, vocab]."""
    ids, mask, positions = _left_padded(seqs, pad)
    return model(input_ids=ids.to(device), attention_mask=mask.to(device),
                 position_ids=positions.to(device), logits_to_keep=keep).logits


@_inference_mode
def label_loglikelihoods(model, tokenizer, prompts: list[str], labels: list[str],
                         batch_size: int = 16) -> torch.Tensor:
    """[len(prompts), len(labels)] summed log-probabilities of each label after each prompt.

    Each batch of prompts runs once, left-padded, with the LM head on its last position only
    (`logits_to_keep`); that position gives every label's first token. Longer labels continue
    from the prompts' KV cache (see `_labels_after_shared_prompts`). The same numbers as one
    forward per (prompt, label) pair, at about one prompt's cost instead of len(labels).
    """
    import torch
    device = next(model.parameters()).device
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    label_ids = [tokenizer(l, add_special_tokens=False)["input_ids"] for l in labels]
    scores = [torch.empty(0, len(labels))]
    for chunk in _batches(prompt_ids, batch_size):
        scores.append(_labels_after_shared_prompts(model, chunk, label_ids,
                                                   tokenizer.pad_token_id, device))
    return torch.cat(scores)


# Content-free inputs of contextual calibration (Zhao et al. 2021, "Calibrate Before Use").
CONTENT_FREE = ("N/A", "", "[MASK]")


def calibrate(scores: torch.Tensor, content_free_scores: torch.Tensor) -> torch.Tensor:
    """Contextual calibration: each row's label log-probabilities (log-softmax over the labels)
    minus the log of the mean label probabilities on content-free inputs, so a label the prompt
    alone favours no longer wins by default. The argmax of the result is the calibrated label."""
    prior = content_free_scores.float().log_softmax(dim=1).exp().mean(dim=0).log()
    return scores.float().log_softmax(dim=1) - prior


def calibrated_label_scores(model, tokenizer, prompts: list[str], labels: list[str],
                            prompt_for, batch_size: int = 16, enabled: bool = True) -> torch.Tensor:
    """label_loglikelihoods, contextually calibrated on `prompt_for(x)` for x in CONTENT_FREE
    when `enabled` (else the raw scores)."""
    scores = label_loglikelihoods(model, tokenizer, prompts, labels, batch_size=batch_size)
    if not enabled:
        return scores
    free = label_loglikelihoods(model, tokenizer, [prompt_for(x) for x in CONTENT_FREE], labels,
                                batch_size=batch_size)
    return calibrate(scores, free)


def _labels_after_shared_prompts(model, prompts: list[list[int]], label_ids: list[list[int]],
                                 pad: int, device) -> torch.Tensor:
    """[len(prompts), len(labels)] label log-likelihoods with each prompt run once.

    The prompts' KV cache is repeated once per label, and all the (prompt, label) continuations
    go through the model in one small forward: prompt tokens are computed once, not once per label
    (a bio is ~100 tokens, a label 1-4), which is where the time went."""
    import torch
    n_labels, rows = len(label_ids), len(prompts)
    ids, mask, positions = _left_padded(prompts, pad)
    rest = max(len(l) for l in label_ids) - 1     # label tokens after the first
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                position_ids=positions.to(device), use_cache=rest > 0, logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1).cpu()   # predicts label token 0
    scores = torch.stack([first[:, l[0]] for l in label_ids], dim=1)
    if rest == 0:
        return scores
    cache = out.past_key_values
    cache.batch_repeat_interleave(n_labels)          # row r * n_labels + j: prompt r, label j
    feed = torch.full((rows * n_labels, rest), pad, dtype=torch.long)
    feed_mask = torch.zeros((rows * n_labels, rest), dtype=torch.long)
    for r in range(rows):
        for j, label in enumerate(label_ids):
            feed[r * n_labels + j, :len(label) - 1] = torch.tensor(label[:-1])
            feed_mask[r * n_labels + j, :len(label) - 1] = 1
    # Right-padded labels: a pad after the label only ever sees earlier tokens (causal), so the
    # positions that are read never attend to it.
    mask = torch.cat([mask.repeat_interleave(n_labels, dim=0), feed_mask], dim=1)
    feed_positions = positions[:, -1:].repeat_interleave(n_labels, dim=0) + 1 + torch.arange(rest)
    logits = model(input_ids=feed.to(device), attention_mask=mask.to(device),
                   position_ids=feed_positions.to(device), past_key_values=cache).logits
    logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()          # [rows*labels, rest, vocab]
    for j, label in enumerate(label_ids):
        for k, token in enumerate(label[1:]):
            scores[:, j] += logprobs[j::n_labels, k, token]
    return scores


@_inference_mode
def sentence_loglikelihoods(model, tokenizer, sentences: list[str],
                            contexts: list[str] | None = None, batch_size: int = 16,
                            per_token: bool = False,
                            counted: list[list[bool]] | None = None) -> torch.Tensor:
    """[len(sentences)] summed log-probability of each sentence's tokens (mean when `per_token`).

    With `contexts`, sentence i is scored as the continuation of contexts[i] (the context's own
    tokens are not counted); without, after the tokenizer's BOS token (EOS when it has none), so
    the first word is scored too. Sequences are sorted by length, so a batch holds little padding,
    and left-padded, so the LM head runs only on the sentence positions (`logits_to_keep`).
    `counted[i]`, one flag per token of sentence i's tokenization, keeps only those tokens in its
    sum (each still conditioned on every token before it).
    """
    import torch
    device = next(model.parameters()).device
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    heads = ([tokenizer(c, add_special_tokens=False)["input_ids"] for c in contexts]
             if contexts is not None else [[start]] * len(sentences))
    if len(heads) != len(sentences):
        raise ValueError(f"{len(sentences)} sentences but {len(heads)} contexts")
    tails = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in sentences]
    order = sorted(range(len(sentences)), key=lambda i: len(heads[i]) + len(tails[i]))
    scores = torch.full((len(sentences),), float("nan"))
    for chunk in _batches(order, batch_size):
        keep = max(len(tails[i]) for i in chunk) + 1
        logits = _forward_left_padded(model, [heads[i] + tails[i] for i in chunk],
                                      tokenizer.pad_token_id, keep, device).float()
        # log p(token) = logit[token] - logsumexp(logits): no second [rows, keep, vocab] block
        norm = torch.logsumexp(logits, dim=-1)                        # [rows, keep]
        for row, i in enumerate(chunk):
            n = len(tails[i])
            if n == 0:
                continue
            idx = torch.arange(keep - 1 - n, keep - 1, device=logits.device)
            targets = torch.tensor(tails[i], device=logits.device)
            token_logp = logits[row, idx, targets] - norm[row, idx]
            if counted is not None:
                token_logp = token_logp[torch.tensor(counted[i], dtype=torch.bool,
                                                     device=logits.device)]
            total = token_logp.sum().item()
            scores[i] = total / max(1, token_logp.numel()) if per_token else total
    return scores


@_inference_mode
def generate_greedy(model, tokenizer, prompts: list[str], max_new_tokens: int,
                    batch_size: int = 16) -> list[str]:
    """Greedy continuations, left-padded batches."""
    device = next(model.parameters()).device
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out_texts: list[str] = []
    try:
        for chunk in _batches(prompts, batch_size):
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
            out = model.generate(input_ids=enc["input_ids"].to(device),
                                 attention_mask=enc["attention_mask"].to(device),
                                 max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            out_texts += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:],
                                                skip_special_tokens=True)
    finally:
        tokenizer.padding_side = old_side
    return out_texts


def evaluate_by_greedy_generation(generation):
    """A task's `evaluate` (model, tokenizer, items, cfg) from its `Generation`: the continuations
    written here by the HF model, left-padded batches."""
    def evaluate(model, tokenizer, items: list[dict], cfg) -> dict[str, float]:
        texts = generate_greedy(model, tokenizer, generation.prompts(items),
                                generation.max_new_tokens(cfg), batch_size=cfg.evaluation.batch_size)
        return generation.score(items, texts, cfg)
    return evaluate


def stratified_limit(items: list[dict], limit: int | None, key: Callable[[dict], str],
                     seed: int = 0) -> list[dict]:
    """At most `limit` items, drawn round-robin across groups so each group stays represented."""
    if limit is None or len(items) <= limit:
        return items
    groups: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    rng = random.Random(seed)
    for members in groups.values():
        rng.shuffle(members)
    picked: list[dict] = []
    queues = [groups[k] for k in sorted(groups)]
    while len(picked) < limit:
        for q in queues:
            if q and len(picked) < limit:
                picked.append(q.pop())
    return picked
