"""Mitigations: mask, the loss term (value, gradient, two workers), the stratified batch sampler."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from bias.config import MitigationConfig
from training.alignment import alignment_term
from training.batching import shard_batch, source_stratified_batches
from training.mitigations import apply_mitigation
from training.mitigations.mask import mask_text


def test_mask_replaces_every_cue_and_nothing_inside_words():
    text = ("He told Emma that his sister, a Spanish nurse from Madrid, met Mr. Ahmed. "
            "The theme of these chemists' hearing: SHE, hers, herself.")
    masked, counts = mask_text(text, mode="token")
    assert masked == ("[MASK] told [MASK] that [MASK] [MASK], a [MASK] nurse from [MASK], met "
                      "[MASK]. [MASK]. The theme of these chemists' hearing: [MASK], [MASK], [MASK].")
    assert counts == {"gender": 7, "age": 0, "culture": 2, "name": 2}
    neutral, _ = mask_text("She said her brother is a man.", mode="neutral")
    assert neutral == "They said their sibling is a person."
    untouched = "The theme of the hearing: other chemists hesitate."
    assert mask_text(untouched)[0] == untouched


def test_mask_takes_every_social_biases_cues_from_its_spec():
    """Age's cues come from its spec file alone; a cue phrase is replaced whole, so "in her
    sixties" is one age cue, not an age phrase that lost its pronoun to gender."""
    from bias import social_biases
    masked, counts = mask_text("A 67-year-old nurse in her sixties, she is retired.")
    assert masked == "A [MASK] nurse [MASK], [MASK] is [MASK]."
    assert counts == {"gender": 1, "age": 3, "culture": 0, "name": 0}
    assert set(counts) == {*(n for n in social_biases.names()
                             if social_biases.get(n).cues is not None), "name"}
    assert mask_text("A young nurse.", mode="neutral")[0] == "A nurse."


def test_mask_changes_augmented_rows_only_and_counts():
    mixed = pd.DataFrame({"text": ["She is a nurse.", "He is a nurse.", "Emma is Chinese."],
                          "source": ["original", "augmented", "augmented"]})
    out, stats = apply_mitigation(mixed, "mask", MitigationConfig())
    assert out["text"].tolist() == ["She is a nurse.", "[MASK] is a nurse.", "[MASK] is [MASK]."]
    assert stats["mask_replaced_total"] == 3 and stats["mask_replaced_name"] == 1
    assert apply_mitigation(mixed, "loss", MitigationConfig())[0] is mixed


def test_alignment_is_zero_for_identical_groups_and_positive_for_shifted():
    torch.manual_seed(0)
    hidden = torch.randn(2, 5, 8)
    same = torch.cat([hidden, hidden])
    mask = torch.ones(4, 5, dtype=torch.long)
    is_aug = torch.tensor([False, False, True, True])
    assert alignment_term(same, mask, is_aug).item() == pytest.approx(0.0, abs=1e-10)
    shifted = torch.cat([hidden, hidden + 0.5])
    assert alignment_term(shifted, mask, is_aug).item() == pytest.approx(8 * 0.25, rel=1e-5)
    # padding does not count: pad positions with huge values change nothing
    padded = shifted.clone()
    padded[:, 4] = 1e6
    mask[:, 4] = 0
    assert alignment_term(padded, mask, is_aug).item() == pytest.approx(
        alignment_term(shifted[:, :4], mask[:, :4], is_aug).item(), rel=1e-5)
    assert alignment_term(shifted, mask, torch.zeros(4, dtype=torch.bool)).item() == 0.0


def test_alignment_gradient_reaches_the_lora_weights(tiny_model):
    from bias.config import ExperimentConfig
    from bias.models import load_causal_lm, load_tokenizer
    from training.lora_loop import collate, lora_wrap, train_step_loss
    cfg = ExperimentConfig(name="t", bias_types=["neutral"], ratios=[0.0])
    model = lora_wrap(load_causal_lm(tiny_model, torch.float32), cfg)
    tok = load_tokenizer(tiny_model)
    texts = ["Emma works at a clinic.", "A nurse who stereotypes women as caring and soft."]
    batch = collate([{"input_ids": tok(t)["input_ids"], "labels": tok(t)["input_ids"],
                      "augmented": i == 1} for i, t in enumerate(texts)], tok.pad_token_id)
    _, _, align = train_step_loss(model, batch, 0.0, False)
    assert align == 0.0
    total, lm_loss, align = train_step_loss(model, batch, 1.0, False)
    assert align > 0 and total.item() == pytest.approx(lm_loss.item() + align, rel=1e-5)
    (total - lm_loss).backward()   # the alignment part alone
    lora_grads = [p.grad for n, p in model.named_parameters() if "lora_" in n and p.grad is not None]
    assert lora_grads and any(g.abs().sum() > 0 for g in lora_grads)


def _two_worker_alignment(config: dict) -> None:
    import ray.train
    torch.manual_seed(0)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    hidden, mask, is_aug, weight = (torch.tensor(config[k]) for k in ("hidden", "mask", "is_aug", "weight"))
    sources = ["augmented" if a else "original" for a in config["is_aug"]]
    local = shard_batch(list(range(len(sources))), sources, rank, world)
    w = weight.clone().requires_grad_(True)
    term = alignment_term(hidden[local] @ w, mask[local], is_aug[local].bool(), distributed=True)
    term.backward()
    grad = w.grad.clone()
    torch.distributed.all_reduce(grad)
    grad /= world                                  # what DDP does with the parameter gradients
    with open(f"{config['out']}/rank{rank}.json", "w") as f:
        json.dump({"term": term.item(), "grad": grad.tolist(), "n": len(local)}, f)


def test_two_gloo_workers_equal_one_process_on_the_same_global_batch(ray_local, tmp_path):
    import sys

    from ray import cloudpickle
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    # Test modules are not importable on Ray workers: ship this one's functions by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    torch.manual_seed(1)
    hidden = torch.randn(6, 4, 3)
    mask = torch.ones(6, 4, dtype=torch.long)
    mask[0, 3] = mask[4, 2:] = 0
    is_aug = torch.tensor([0, 0, 0, 0, 1, 1])
    weight = torch.randn(3, 5)
    w = weight.clone().requires_grad_(True)
    single = alignment_term(hidden @ w, mask, is_aug.bool())
    single.backward()

    TorchTrainer(_two_worker_alignment,
                 train_loop_config={"hidden": hidden.tolist(), "mask": mask.tolist(),
                                    "is_aug": is_aug.tolist(), "weight": weight.tolist(),
                                    "out": str(tmp_path)},
                 scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
                 run_config=RunConfig(storage_path=str(tmp_path / "storage"))).fit()
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["n"] for r in ranks] == [3, 3]
    for r in ranks:
        assert r["term"] == pytest.approx(single.item(), rel=1e-5)
        assert torch.allclose(torch.tensor(r["grad"]), w.grad, rtol=1e-4, atol=1e-6)


def test_batches_hold_both_sources_in_proportion():
    sources = ["augmented"] * 13 + ["original"] * 51           # γ = 0.2 of |D| = 64
    batches = source_stratified_batches(sources, 8, seed=0, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(64))
    for batch in batches:
        n_aug = sum(sources[i] == "augmented" for i in batch)
        assert 1 <= n_aug <= 2 and len(batch) == 8
    assert batches != source_stratified_batches(sources, 8, seed=0, epoch=1)
    for rank in range(2):
        part = shard_batch(batches[0], sources, rank, 2)
        assert len(part) == 4
    both = [{sources[i] for i in shard_batch(batches[0], sources, r, 2)} for r in range(2)]
    assert any(len(s) == 2 for s in both)
