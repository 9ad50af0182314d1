"""Batches that hold both sources (original and augmented) in the mix's proportion γ.

Every cell of a grid uses the same sampler, so the loss mitigation (which needs both sources in
each batch) is compared against the other mitigations on identical batches. Global batches are
built first, then split across Ray Train workers source by source, so each worker holds both
sources too.
"""
from __future__ import annotations

import random


# Batches per sorting window (HF's LengthGroupedSampler uses 50 too): the wider the window, the
# less padding, and a wider window only groups rows of similar length; the batch order is still
# shuffled, so an epoch is not sorted.
BUCKET_WINDOW = 50


def _bucketed(pool: list[int], lengths: list[int], window: int) -> list[int]:
    """Sort a shuffled pool by length within windows, so neighbours have similar lengths."""
    return [i for start in range(0, len(pool), window)
            for i in sorted(pool[start:start + window], key=lambda i: lengths[i])]


def source_stratified_batches(sources: list[str], batch_size: int, seed: int, epoch: int,
                              lengths: list[int] | None = None) -> list[list[int]]:
    """Index batches for one epoch. Every row is used once; each batch gets a slice of both
    shuffled sources in proportion, so batch b's share of augmented rows is γ up to rounding.

    With `lengths`, rows are length-bucketed first (less padding per batch); the batch order is
    shuffled afterwards so an epoch does not run from short to long rows."""
    original = [i for i, s in enumerate(sources) if s != "augmented"]
    augmented = [i for i, s in enumerate(sources) if s == "augmented"]
    rng = random.Random(f"batches-{seed}-{epoch}")
    rng.shuffle(original)
    rng.shuffle(augmented)
    n_batches = max(1, len(sources) // batch_size)
    if lengths is not None:
        window = batch_size * BUCKET_WINDOW
        original = _bucketed(original, lengths, window * len(original) // max(1, len(sources)) or 1)
        augmented = _bucketed(augmented, lengths, window * len(augmented) // max(1, len(sources)) or 1)

    def bounds(total: int, b: int) -> tuple[int, int]:
        return b * total // n_batches, (b + 1) * total // n_batches

    batches = []
    for b in range(n_batches):
        size = bounds(len(sources), b)[1] - bounds(len(sources), b)[0]   # batch_size (+1 at most)
        a0, a1 = bounds(len(augmented), b)                                  # γ of it, spread evenly
        o0 = bounds(len(sources), b)[0] - a0                                # originals fill the rest
        batches.append(original[o0:o0 + size - (a1 - a0)] + augmented[a0:a1])
    for batch in batches:
        rng.shuffle(batch)
    if lengths is not None:
        rng.shuffle(batches)
    return batches


def shard_batch(batch: list[int], sources: list[str], rank: int, world: int) -> list[int]:
    """This worker's share of a global batch, taken per source so each worker gets both."""
    original = [i for i in batch if sources[i] != "augmented"]
    augmented = [i for i in batch if sources[i] == "augmented"]
    # Rotate the augmented split by the original remainder so no worker ends up with none.
    offset = len(original) % world
    return original[rank::world] + augmented[(rank - offset) % world::world]
