"""Exact and near-duplicate removal: MinHash + LSH finds edited copies, keeps distinct texts, and
scales linearly (no all-pairs comparison)."""
from __future__ import annotations

import time

import numpy as np

from generation.dedup import find_duplicates, lsh_bands, shingle_hashes, signatures
import pytest

pytestmark = pytest.mark.unit   # no Ray, MLflow or model


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(3000)])
    return [" ".join(rng.choice(vocab, 40)) + "." for _ in range(n)]


def test_signatures_estimate_jaccard_and_are_deterministic():
    a = "Emma has cared for patients at a regional hospital for ten years and trains new staff."
    b = a.replace("ten", "eleven")
    sa, sb = set(shingle_hashes(a)), set(shingle_hashes(b))
    true = len(sa & sb) / len(sa | sb)
    sig = signatures([a, b, a])
    assert (sig[0] == sig[2]).all()                       # same text, same signature
    assert abs((sig[0] == sig[1]).mean() - true) < 0.15    # 128 permutations: std ~0.04
    assert (signatures([a]) == sig[0]).all()               # independent of the batch around it


def test_near_duplicates_are_found_and_distinct_texts_kept():
    base = _texts(300)
    edited = [t.replace(t.split()[20], "changed", 1) for t in base]   # Jaccard ~0.85
    punct = [t.upper().replace(" ", "  ") for t in base[:50]]          # exact after normalising
    verdicts = find_duplicates(base + edited + punct, threshold=0.8)
    assert verdicts[:300] == [""] * 300                                # distinct random texts
    assert verdicts[600:] == ["exact"] * 50
    found = verdicts[300:600].count("near")
    assert found >= 0.9 * 300, found                                   # estimate noise: a few miss
    # The first occurrence wins, whatever its position.
    assert find_duplicates([edited[0], base[0]]) == ["", "near"]
    # threshold 1.0: exact duplicates only
    assert find_duplicates(base[:5] + edited[:5] + base[:1], threshold=1.0) == [""] * 10 + ["exact"]


def test_lsh_bands_keep_pairs_at_the_threshold():
    for threshold in (0.5, 0.7, 0.8, 0.9):
        bands, rows = lsh_bands(threshold)
        assert bands * rows <= 128
        assert 1 - (1 - threshold ** rows) ** bands >= 0.99


def test_dedup_scales_linearly():
    small, large = _texts(2000, 1), _texts(8000, 2)
    find_duplicates(small[:100])   # warm-up
    t0 = time.perf_counter()
    find_duplicates(small)
    t_small = time.perf_counter() - t0
    t0 = time.perf_counter()
    find_duplicates(large)
    t_large = time.perf_counter() - t0
    # 4x the rows: ~4x the time; an all-pairs method would take ~16x.
    assert t_large < 8 * t_small + 0.5, (t_small, t_large)
