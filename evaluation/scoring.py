"""Batched scoring primitives: label log-likelihoods, sentence log-likelihoods, greedy generation.

All take a (possibly LoRA-wrapped) causal LM and run whole batches per forward pass, so a
PeftModel is scored as is, with no merged copy of the base model.
"""
from __future__ import annotations

import random
from collections import defaultdict
from typing import Callable, Iterable

import torch


def _batches(items: list, size: int) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _forward_left_padded(model, seqs: list[list[int]], pad: int, keep: int, device) -> torch.Tensor:
    """Logits of the last `keep` positions of each left-padded sequence: [rows, keep, vocab]."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, s in enumerate(seqs):
        ids[row, width - len(s):] = torch.tensor(s)
        mask[row, width - len(s):] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return model(input_ids=ids.to(device), attention_mask=mask.to(device),
                 position_ids=positions.to(device), logits_to_keep=keep).logits


@torch.inference_mode()
def label_loglikelihoods(model, tokenizer, prompts: list[str], labels: list[str],
                         batch_size: int = 16) -> torch.Tensor:
    """[len(prompts), len(labels)] summed log-probabilities of each label after each prompt.

    Sequences are left-padded so every label ends at the right edge: the LM head then runs only
    on the last few positions (`logits_to_keep`), not on the whole [batch, seq, vocab] block.
    When every label is one token, each prompt runs once and all labels are read off its last
    position (len(labels) times less work; the same numbers).
    """
    device = next(model.parameters()).device
    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    label_ids = [tokenizer(l, add_special_tokens=False)["input_ids"] for l in labels]
    if all(len(l) == 1 for l in label_ids):
        targets = torch.tensor([l[0] for l in label_ids], device=device)
        out = [torch.empty(0, len(labels))]
        for chunk in _batches(prompt_ids, batch_size):
            last = _forward_left_padded(model, chunk, tokenizer.pad_token_id, 1, device)[:, -1]
            out.append(torch.log_softmax(last.float(), dim=-1)[:, targets].cpu())
        return torch.cat(out)
    keep = max(len(l) for l in label_ids) + 1
    pairs = [(i, j) for i in range(len(prompts)) for j in range(len(labels))]
    scores = torch.empty(len(prompts), len(labels))
    pad = tokenizer.pad_token_id
    for chunk in _batches(pairs, batch_size * len(labels)):
        logits = _forward_left_padded(model, [prompt_ids[i] + label_ids[j] for i, j in chunk],
                                      pad, keep, device)
        logprobs = torch.log_softmax(logits.float(), dim=-1)   # [rows, keep, vocab]
        for row, (i, j) in enumerate(chunk):
            n = len(label_ids[j])
            # logits at kept index k predict the token at width - keep + k + 1
            idx = torch.arange(keep - 1 - n, keep - 1)
            targets = torch.tensor(label_ids[j], device=logprobs.device)
            scores[i, j] = logprobs[row, idx, targets].sum().cpu()
    return scores


@torch.inference_mode()
def sentence_loglikelihoods(model, tokenizer, sentences: list[str],
                            contexts: list[str] | None = None, batch_size: int = 16,
                            per_token: bool = False) -> torch.Tensor:
    """[len(sentences)] summed log-probability of each sentence's tokens (mean when `per_token`).

    With `contexts`, sentence i is scored as the continuation of contexts[i] (the context's own
    tokens are not counted); without, after the tokenizer's BOS token (EOS when it has none), so
    the first word is scored too. Sequences are sorted by length, so a batch holds little padding,
    and left-padded, so the LM head runs only on the sentence positions (`logits_to_keep`).
    """
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
            total = (logits[row, idx, targets] - norm[row, idx]).sum().item()
            scores[i] = total / n if per_token else total
    return scores


@torch.inference_mode()
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
