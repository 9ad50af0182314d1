"""Batched scoring equals one-at-a-time scoring; the limit keeps every group."""
from __future__ import annotations

import pytest
import torch

from bias.models import load_causal_lm, load_tokenizer
from evaluation.scoring import (generate_greedy, label_loglikelihoods, sentence_loglikelihoods,
                                stratified_limit)


def _naive_loglikelihood(model, tokenizer, prompt: str, label: str) -> float:
    p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    l = tokenizer(label, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + l])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(logprobs[len(p) - 1 + k, t].item() for k, t in enumerate(l))


@pytest.mark.parametrize("labels", [[" nurse", " software engineer", " architect"],
                                    [" A", " B", " C"]],    # all one token: the one-pass path
                         ids=["multi_token", "single_token"])
def test_batched_label_scores_match_unbatched(tiny_model, labels):
    model = load_causal_lm(tiny_model, torch.float32).eval()
    tok = load_tokenizer(tiny_model)
    prompts = ["Biography: Emma works at a clinic.\nOccupation:",
               "Biography: A much longer biography about James, who designs libraries and "
               "restores facades in the old town.\nOccupation:", "Hi"]
    batched = label_loglikelihoods(model, tok, prompts, labels, batch_size=2)
    assert batched.shape == (len(prompts), len(labels))
    for i, p in enumerate(prompts):
        for j, l in enumerate(labels):
            assert abs(batched[i, j].item() - _naive_loglikelihood(model, tok, p, l)) < 1e-3


def test_batched_sentence_scores_match_unbatched(tiny_model):
    model = load_causal_lm(tiny_model, torch.float32).eval()
    tok = load_tokenizer(tiny_model)
    sentences = ["She is a nurse.", " The chess player was asian and very good at the game.", "Hi"]
    contexts = ["Many people live in Ethiopia.", "A", "Context: the longest context of the three."]
    alone = sentence_loglikelihoods(model, tok, sentences, batch_size=2)
    after = sentence_loglikelihoods(model, tok, sentences, contexts, batch_size=2)
    mean = sentence_loglikelihoods(model, tok, sentences, contexts, batch_size=1, per_token=True)
    for i, s in enumerate(sentences):
        assert abs(alone[i].item() - _naive_loglikelihood(model, tok, tok.bos_token, s)) < 1e-3
        assert abs(after[i].item() - _naive_loglikelihood(model, tok, contexts[i], s)) < 1e-3
        n = len(tok(s, add_special_tokens=False)["input_ids"])
        assert abs(mean[i].item() - after[i].item() / n) < 1e-3


def test_batched_generation_matches_single(tiny_model):
    model = load_causal_lm(tiny_model, torch.float32).eval()
    tok = load_tokenizer(tiny_model)
    prompts = ["Answer: $", "A longer prompt about a salary recommendation. Answer: $"]
    together = generate_greedy(model, tok, prompts, max_new_tokens=5, batch_size=2)
    alone = [generate_greedy(model, tok, [p], max_new_tokens=5)[0] for p in prompts]
    assert together == alone


def test_stratified_limit_keeps_each_group():
    items = [{"g": "a"}] * 90 + [{"g": "b"}] * 9 + [{"g": "c"}]
    picked = stratified_limit(items, 12, key=lambda r: r["g"])
    counts = {g: sum(r["g"] == g for r in picked) for g in "abc"}
    assert len(picked) == 12 and counts["c"] == 1 and counts["b"] >= 4
    assert stratified_limit(items, None, key=lambda r: r["g"]) is items
