"""Next-token cross-entropy that only projects the positions with a target, chunk by chunk.

    from training.token_loss import causal_lm_loss
    loss, outputs = causal_lm_loss(model, batch)          # batch: input_ids, attention_mask, labels
    loss.backward()

Why not the model's own `labels=` loss: HF projects every position onto the vocabulary (pads and
each row's last token included), upcasts all logits to fp32 and keeps that copy for backward;
the backward then fills a zero tensor of the same size. At batch 8 x 128 with SmolLM2's 49,152-
token vocabulary that is 200 MB of fp32 written and read several times per step, memory-bound
work that is a sizeable share of a CPU step (docs/performance.md). Here the model projects only the
positions whose next token is a target (`logits_to_keep` as a boolean mask, transformers >= 5),
and the loss works through the logits in fp32 chunks that stay in cache, writing the logits'
gradient in the forward pass, so nothing else of vocabulary size is kept or re-read. Same value
and gradient as the HF loss (mean over target tokens; tests/test_performance.py checks both in
fp32).
"""
from __future__ import annotations

import torch

CPU_CHUNK_ROWS = 32     # 32 x 49,152 fp32 = 6.3 MB: one chunk's softmax stays in a CPU's L3
GPU_CHUNK_ROWS = 1024   # fewer kernel launches; 1024 x 128k-vocab fp32 = 0.5 GB of scratch


class _CrossEntropyGradInForward(torch.autograd.Function):
    """mean cross-entropy of `logits` (n, V) against `targets` (n,); the gradient is computed in
    the forward pass (softmax - one-hot, in fp32 per chunk) and stored in the logits' dtype."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n = logits.shape[0]
        rows = CPU_CHUNK_ROWS if logits.device.type == "cpu" else GPU_CHUNK_ROWS
        grad = torch.empty_like(logits)
        work_dtype = torch.promote_types(logits.dtype, torch.float32)   # bf16 -> fp32, fp64 stays
        total = torch.zeros((), dtype=work_dtype, device=logits.device)
        for start in range(0, n, rows):
            chunk = logits[start:start + rows].to(work_dtype)
            target = targets[start:start + rows, None]
            target_logit = chunk.gather(1, target)
            row_max = chunk.amax(dim=-1, keepdim=True)
            exps = chunk.sub_(row_max).exp_()   # in place: one chunk-sized buffer in all
            row_sum = exps.sum(dim=-1, keepdim=True)
            total += (row_max + row_sum.log() - target_logit).sum()
            probs = exps.mul_(1.0 / (row_sum * n))   # softmax / n, the mean's share
            probs.scatter_add_(1, target, torch.full_like(target_logit, -1.0 / n))
            grad[start:start + rows] = probs
        ctx.save_for_backward(grad)
        return total / n

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (grad,) = ctx.saved_tensors
        if grad_output.device.type == "cpu" and float(grad_output) == 1.0:
            return grad, None   # the usual case (loss.backward()): skip a pass over V x n
        return grad * grad_output.to(grad.dtype), None


def next_token_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep, targets): keep[b, t] is True where position t predicts a target (labels[b, t+1] is
    not -100); targets are those labels, in keep's row-major order."""
    following = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = following != -100
    return keep, following[following != -100]


def right_padded(attention_mask: torch.Tensor) -> bool:
    """Whether every row is its tokens followed by its pads (ones, then zeros)."""
    return bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())


def causal_lm_loss(model, batch: dict[str, torch.Tensor], **model_kwargs):
    """(mean next-token loss over the labelled tokens, the model's outputs) for one batch."""
    keep, targets = next_token_targets(batch["labels"])
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "augmented")}
    if "attention_mask" in inputs and right_padded(inputs["attention_mask"]):
        # Under causal attention no token attends to a pad that follows it, and pads have no
        # target, so a right-padding mask changes nothing the loss reads (position ids count from
        # 0 either way). Without it the attention builds only its causal mask, which saves the
        # compiled loop the padding mask's work each step (docs/performance.md). Left
        # padding keeps its mask. Outputs at the pad positions differ: callers that pool hidden
        # states mask the pads out themselves (training/alignment.py).
        del inputs["attention_mask"]
    outputs = model(**inputs, logits_to_keep=keep, **model_kwargs)
    if targets.numel() == 0:   # nothing to learn from: a zero that still backpropagates
        return outputs.logits.sum() * 0.0, outputs
    return _CrossEntropyGradInForward.apply(outputs.logits, targets), outputs
