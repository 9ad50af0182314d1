"""Frozen linear layers (fp32; in bf16 the LM head) as oneDNN matmuls on weights packed once, for
CPU training and scoring.

    from bias.packed_linears import packed_frozen_linears
    with packed_frozen_linears(model, "cpu") as n:   # n frozen fp32 nn.Linears now run packed
        loss = ...; loss.backward()                   # forward and input-gradient matmuls
    with packed_frozen_linears(model, "cpu", gradients=False):   # scoring: the forward only
        ...

Why: torch's fp32 CPU matmul goes to a BLAS that is much slower than oneDNN on a weight packed
into its blocked layout, at our layer shapes. With LoRA the base weights never change during a
run, so each is packed once, for the forward (W) and for the input gradient (W^T), and no matmul
re-lays a weight out. That speeds up fp32 training (what CPUs without bf16 train in), eager and
compiled, and fp32 scoring (evaluation/runner.py; the forward only, so W alone is packed), with
the same labels and text as torch's.

bf16: only the vocabulary projection (the LM head, the model's output embeddings) is packed.
torch's bf16 matmul is oneDNN already, but it lays the weight out afresh on every call, and the LM
head's is the model's largest (SmolLM2: 49,152 x 576, 57 MB), so packing it once pays. The
decoder's bf16 linears stay on torch's matmul: the op's per-call overhead (hundreds of
Python-dispatched calls a step) and the packing took back what packing them saved.

Measurements (per host, with the commands): docs/performance.md.

The matmul is a custom op (`bias_inherit::packed_linear`) keyed by an int per module, so
torch.compile traces it as one opaque call with a shape-only fake; its autograd gives the input's
gradient from the W^T copy (frozen weights need no gradient). Costs: two packed copies of every
packed weight while a training block is open (SmolLM2 in fp32: ~1 GB; in bf16, the LM head's:
113 MB), one for scoring. A block inside another leaves the outer block's linears to it.
"""
from __future__ import annotations

import itertools
import warnings
from contextlib import contextmanager

import torch

from bias.models import instance_forwards

# key -> (W packed for x @ W^T, W^T packed for grad @ W or None, out_features, in_features)
_PACKED: dict[int, tuple[torch.Tensor, torch.Tensor | None, int, int]] = {}
_KEYS = itertools.count()


@torch.library.custom_op("bias_inherit::packed_linear", mutates_args=())
def packed_linear(x: torch.Tensor, key: int, transposed: bool) -> torch.Tensor:
    """x @ W^T for the weight packed under `key` (x @ W with `transposed`)."""
    forward, backward, _, _ = _PACKED[key]
    if transposed and backward is None:
        raise RuntimeError("packed_frozen_linears(gradients=False) packed the forward only: "
                           "open the block with gradients=True to backpropagate through it")
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), backward if transposed else forward,
                                              None, "none", [], "")


@packed_linear.register_fake
def _packed_linear_shape(x, key, transposed):
    _, _, out_features, in_features = _PACKED[key]
    return x.new_empty(*x.shape[:-1], in_features if transposed else out_features)


def _save_key(ctx, inputs, output):
    _, ctx.key, ctx.transposed = inputs


def _input_gradient(ctx, grad):
    return packed_linear(grad, ctx.key, not ctx.transposed), None, None


packed_linear.register_autograd(_input_gradient, setup_context=_save_key)


def _packed_forward(self, x: torch.Tensor) -> torch.Tensor:
    if x.dtype != self.weight.dtype:   # a caller mixing precisions: torch's own path
        return torch.nn.functional.linear(x, self.weight, self.bias)
    out = packed_linear(x, self._packed_linear_key, False)
    return out if self.bias is None else out + self.bias


def output_projection(model: torch.nn.Module) -> torch.nn.Module | None:
    """The model's vocabulary projection (through DDP and peft wrappers), or None."""
    model = getattr(model, "module", model)   # DDP
    get = getattr(model, "get_output_embeddings", None)   # peft forwards it to the base model
    return get() if get else None


def packable(module: torch.nn.Module, head: torch.nn.Module | None = None) -> bool:
    """A frozen plain nn.Linear (not a LoRA adapter, not peft's wrapper) on the CPU, where oneDNN
    runs, with fp32 weights, or bf16 ones if it is `head`, the vocabulary projection (above)."""
    if not (type(module) is torch.nn.Linear and not module.weight.requires_grad
            and module.weight.device.type == "cpu" and torch.backends.mkldnn.is_available()):
        return False
    return module.weight.dtype == torch.float32 or (
        module.weight.dtype == torch.bfloat16 and module is head)


@contextmanager
def packed_frozen_linears(model: torch.nn.Module, device, enabled: bool = True,
                          gradients: bool = True):
    """Within the block, on the CPU, every frozen fp32 nn.Linear of `model` (LoRA's base layers,
    the LM head), or in bf16 the LM head alone, runs on weights packed at entry; yields how
    many. The class's forward and plain weights are back after it. Weights must not change
    inside the block (they are frozen).
    `gradients=False` (scoring) packs W only: backpropagating through the block then fails."""
    head = output_projection(model)
    linears = [m for m in model.modules()
               if packable(m, head) and getattr(m, "_packed_linear_key", None) not in _PACKED] \
        if enabled and torch.device(device).type == "cpu" else []   # not an outer block's
    try:
        for linear in linears:
            if not hasattr(linear, "_packed_linear_key"):   # stable: compiled graphs keep keys
                linear._packed_linear_key = next(_KEYS)
            weight = linear.weight.detach()
            _PACKED[linear._packed_linear_key] = (
                torch.ops.mkldnn._reorder_linear_weight(weight),
                torch.ops.mkldnn._reorder_linear_weight(weight.t().contiguous())
                if gradients else None,
                weight.shape[0], weight.shape[1])
    except RuntimeError as e:   # a oneDNN build that cannot pack here: train on torch's matmul
        warnings.warn(f"model.packed_linears: oneDNN could not pack a weight here ({e}); "
                      "training on torch's matmul", stacklevel=3)
        for linear in linears:
            _PACKED.pop(getattr(linear, "_packed_linear_key", None), None)
        linears = []
    try:
        with instance_forwards(linears, _packed_forward) as patched:
            yield patched
    finally:
        for linear in linears:
            _PACKED.pop(linear._packed_linear_key, None)
