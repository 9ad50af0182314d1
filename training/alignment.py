"""The loss-based mitigation's alignment term, exact under data parallelism.

    align = || mean_{x in batch ∩ D_o} φ(x) − mean_{x in batch ∩ D_a} φ(x) ||²
    φ(x)  = mean of the last-layer hidden states of x over its non-pad tokens

With several Ray Train workers the means are global: per-source sums and counts are all-reduced
(differentiably), so every worker computes the same term as one process over the whole batch.
"""
from __future__ import annotations

import torch


def sentence_features(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """φ: [batch, seq, hidden] -> [batch, hidden], the mean over non-pad tokens."""
    mask = attention_mask.unsqueeze(-1).to(torch.float32)
    return (hidden.float() * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def alignment_term(hidden: torch.Tensor, attention_mask: torch.Tensor, is_augmented: torch.Tensor,
                   distributed: bool = False) -> torch.Tensor:
    """The squared distance between the two sources' mean features (0 if a source is absent)."""
    phi = sentence_features(hidden, attention_mask)
    aug = is_augmented.to(torch.bool).to(phi.device)
    sums = torch.stack([phi[~aug].sum(dim=0), phi[aug].sum(dim=0)])             # [2, H]
    counts = torch.stack([(~aug).sum(), aug.sum()]).to(torch.float32)           # [2]
    if distributed:
        import torch.distributed as dist
        import torch.distributed.nn.functional as dist_fn
        sums = dist_fn.all_reduce(sums)        # differentiable: gradients reach every worker
        counts = counts.clone()
        dist.all_reduce(counts)
    if bool((counts == 0).any()):
        return phi.sum() * 0.0                  # keeps the graph; no alignment without both sources
    means = sums / counts.unsqueeze(1)
    return ((means[0] - means[1]) ** 2).sum()
