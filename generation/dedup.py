"""Exact and near-duplicate removal for generated sets: MinHash signatures + LSH banding.

Exact duplicates are equal after normalisation (case, punctuation, spacing). Near-duplicates
have an estimated Jaccard similarity of their word 3-shingles at or above a threshold (templated
generations that differ in a name or a word). The first occurrence is kept, in prompt order.

No all-pairs comparison: each text gets a `num_perm` MinHash signature (vectorised numpy), its
bands are hashed into buckets, and only texts sharing a bucket are compared. Time and memory grow
linearly with the number of rows (about 4 bytes x num_perm per kept row); band count and width
are chosen so that a pair at the threshold shares a bucket with probability >= 0.99.

    python -m generation.dedup 20000        # time it on synthetic near-duplicate rows
"""
from __future__ import annotations

import sys
import time
import zlib
from functools import lru_cache

import numpy as np

from generation.parse import normalize_for_dedup

SHINGLE_WORDS = 3
NUM_PERM = 128
_PRIME = np.uint64((1 << 61) - 1)
_MASK32 = np.uint64(0xFFFFFFFF)


def shingle_hashes(text: str, k: int = SHINGLE_WORDS) -> np.ndarray:
    """crc32 of every k-word shingle of the normalised text (deterministic across processes)."""
    words = normalize_for_dedup(text).split()
    grams = [" ".join(words[i:i + k]) for i in range(max(1, len(words) - k + 1))]
    return np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))


@lru_cache(maxsize=None)
def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)  # fixed: signatures must agree across runs and processes
    a = rng.integers(1, 1 << 31, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, 1 << 31, size=num_perm, dtype=np.uint64)
    return a, b


def signatures(texts: list[str], num_perm: int = NUM_PERM, chunk: int = 1 << 16) -> np.ndarray:
    """MinHash signatures (len(texts) x num_perm, uint32) of the texts' shingle sets, vectorised:
    all shingles hashed at once in chunks, then a segmented minimum per text."""
    a, b = _permutations(num_perm)
    hashes = [shingle_hashes(t) for t in texts]
    out = np.empty((len(texts), num_perm), dtype=np.uint32)
    start = 0
    while start < len(texts):
        stop, size = start, 0
        while stop < len(texts) and (size < chunk or stop == start):
            size += len(hashes[stop])
            stop += 1
        h = np.concatenate(hashes[start:stop])
        # a < 2^31 and h < 2^32: a*h + b stays below 2^64, no overflow before the modulus.
        permuted = ((np.outer(h, a) + b) % _PRIME) & _MASK32
        offsets = np.cumsum([0] + [len(x) for x in hashes[start:stop - 1]])
        out[start:stop] = np.minimum.reduceat(permuted, offsets, axis=0)
        start = stop
    return out


@lru_cache(maxsize=None)
def lsh_bands(threshold: float, num_perm: int = NUM_PERM, recall: float = 0.99) -> tuple[int, int]:
    """(bands, rows per band): the widest bands (fewest false candidates) for which a pair at
    exactly `threshold` still shares a bucket with probability >= `recall`. False candidates
    cost one signature comparison each; a miss would keep a duplicate."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold ** rows) ** bands >= recall:
            return bands, rows
    return num_perm, 1


def find_duplicates(texts: list[str], threshold: float = 0.8,
                    num_perm: int = NUM_PERM) -> list[str]:
    """For each text: '' (first of its kind, kept), 'exact' or 'near' (a duplicate of an earlier
    kept text). threshold 1.0 finds exact duplicates only."""
    verdicts = [""] * len(texts)
    seen_exact: set[str] = set()
    unique = []
    for i, text in enumerate(texts):
        key = normalize_for_dedup(text)
        if key in seen_exact:
            verdicts[i] = "exact"
        else:
            seen_exact.add(key)
            unique.append(i)
    if threshold >= 1.0 or not unique:
        return verdicts
    bands, rows = lsh_bands(threshold, num_perm)
    sigs = signatures([texts[i] for i in unique], num_perm)
    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
    for pos, i in enumerate(unique):
        sig = sigs[pos]
        keys = [sig[b * rows:(b + 1) * rows].tobytes() for b in range(bands)]
        candidates = {j for b, k in enumerate(keys) for j in buckets[b].get(k, ())}
        if candidates and (sigs[sorted(candidates)] == sig).mean(axis=1).max() >= threshold:
            verdicts[i] = "near"
            continue
        for b, k in enumerate(keys):
            buckets[b].setdefault(k, []).append(pos)
    return verdicts


def mark_duplicates(rows: list[dict], threshold: float = 0.8) -> dict[str, int]:
    """Set drop_reason='duplicate' on kept rows that repeat an earlier kept row, in place.

    Returns {'exact': n, 'near': m}."""
    kept = [r for r in rows if not r["drop_reason"]]
    verdicts = find_duplicates([r["text"] for r in kept], threshold)
    for row, verdict in zip(kept, verdicts):
        if verdict:
            row["drop_reason"] = "duplicate"
    return {"exact": verdicts.count("exact"), "near": verdicts.count("near")}


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(5000)]
    base = [" ".join(rng.choice(vocab, 40)) for _ in range(n // 2)]
    texts = base + [t.replace(t.split()[5], "changed", 1) for t in base]
    started = time.perf_counter()
    verdicts = find_duplicates(texts)
    print(f"{n} texts: {verdicts.count('near')} near, {verdicts.count('exact')} exact duplicates "
          f"in {time.perf_counter() - started:.1f}s; bands x rows = {lsh_bands(0.8)}")
