"""Exact and near-duplicate removal for generated sets: datasketch MinHash + MinHashLSH.

Exact duplicates are equal after normalisation (case, punctuation, spacing). Near-duplicates
have an estimated Jaccard similarity of their word 3-shingles at or above a threshold (templated
generations that differ in a name or a word). The first occurrence is kept, in prompt order.

No all-pairs comparison: each text gets a `num_perm` MinHash (datasketch, fixed seed, shingles
hashed as utf-8 bytes, so signatures agree across runs and processes). Rows are streamed in prompt
order: each is looked up in a MinHashLSH index of the rows kept so far, confirmed against the
candidates' estimated Jaccard, and inserted only if kept. Time and memory grow linearly with the
number of rows (one LeanMinHash and its band keys per kept row). The banding (`lsh_bands`) is
chosen so that a pair at the threshold shares a bucket with probability >= 0.99: datasketch's own
default balances false positives against misses, which would keep many duplicates just above the
threshold.

    python -m generation.dedup 20000        # time it on synthetic near-duplicate rows
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from functools import lru_cache

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from generation.parse import normalize_for_dedup

# Part of the kept set's folder name: a change of hashing keeps different rows near the threshold,
# so sets deduplicated by an earlier version are not reused as if they were this one's.
DEDUP_VERSION = 2
SHINGLE_WORDS = 3
NUM_PERM = 128
SEED = 1   # fixed: signatures must agree across runs and processes


def shingles(text: str, k: int = SHINGLE_WORDS) -> list[str]:
    """Every k-word shingle of the normalised text (one, possibly empty, for shorter texts)."""
    words = normalize_for_dedup(text).split()
    return [" ".join(words[i:i + k]) for i in range(max(1, len(words) - k + 1))]


def minhashes(texts: Iterable[str], num_perm: int = NUM_PERM) -> Iterator[LeanMinHash]:
    """One MinHash of each text's shingle set, lazily, in order. The permutations are drawn once
    (MinHash.generator) and each result is frozen as a LeanMinHash, which keeps only the hash
    values."""
    batches = ([g.encode("utf-8") for g in shingles(t)] for t in texts)
    for m in MinHash.generator(batches, num_perm=num_perm, seed=SEED):
        yield LeanMinHash(m)


@lru_cache(maxsize=None)
def lsh_bands(threshold: float, num_perm: int = NUM_PERM, recall: float = 0.99) -> tuple[int, int]:
    """(bands, rows per band): the widest bands (fewest false candidates) for which a pair at
    exactly `threshold` still shares a bucket with probability >= `recall`. False candidates
    cost one signature comparison each; a miss would keep a duplicate. At least two bands, as
    MinHashLSH requires."""
    for rows in range(num_perm // 2, 0, -1):
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
    threshold = max(threshold, 0.0)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, params=lsh_bands(threshold, num_perm))
    kept: dict[int, LeanMinHash] = {}
    for i, m in zip(unique, minhashes((texts[i] for i in unique), num_perm)):
        if any(m.jaccard(kept[j]) >= threshold for j in lsh.query(m)):
            verdicts[i] = "near"
            continue
        lsh.insert(i, m, check_duplication=False)   # keys are row indices, unique by construction
        kept[i] = m
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
