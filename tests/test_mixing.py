"""Mixing at γ: exact counts, |D| fixed, deterministic per seed, nested across ratios."""
from __future__ import annotations

import pandas as pd
import pytest

from bias.config import MitigationConfig
from training.mitigations import apply_mitigation
from training.mixing import NotEnoughDataError, mix, mix_counts

pytestmark = pytest.mark.unit   # no Ray, MLflow or model


def _frames(n_orig=100, n_aug=100):
    o = pd.DataFrame({"text": [f"o{i}" for i in range(n_orig)], "occupation": "nurse"})
    a = pd.DataFrame({"text": [f"a{i}" for i in range(n_aug)], "occupation": "nurse"})
    return o, a


@pytest.mark.parametrize("ratio, size, expected", [
    (0.0, 100, (100, 0)), (0.05, 100, (95, 5)), (0.1, 100, (90, 10)), (0.2, 100, (80, 20)),
    (0.5, 100, (50, 50)), (0.2, 64, (51, 13)), (0.5, 64, (32, 32)),
])
def test_exact_counts_and_fixed_size(ratio, size, expected):
    o, a = _frames()
    mixed = mix(o, a, ratio, size, seed=0)
    assert len(mixed) == size
    counts = mixed["source"].value_counts().to_dict()
    assert (counts.get("original", 0), counts.get("augmented", 0)) == expected
    assert mix_counts(ratio, size) == expected
    # every augmented row really comes from D_a, every original from D_o
    assert mixed.loc[mixed.source == "augmented", "text"].str.startswith("a").all()
    assert mixed.loc[mixed.source == "original", "text"].str.startswith("o").all()
    assert mixed["text"].is_unique


def test_deterministic_per_seed_and_different_across_seeds():
    o, a = _frames()
    first = mix(o, a, 0.2, 50, seed=3)
    assert first.equals(mix(o, a, 0.2, 50, seed=3))
    assert not first["text"].tolist() == mix(o, a, 0.2, 50, seed=4)["text"].tolist()


def test_originals_are_nested_across_ratios():
    o, a = _frames()
    kept = {r: set(mix(o, a, r, 60, seed=1).query("source == 'original'")["text"])
            for r in (0.0, 0.1, 0.2, 0.5)}
    assert kept[0.5] <= kept[0.2] <= kept[0.1] <= kept[0.0]


def test_not_enough_rows_is_a_clear_error():
    o, a = _frames(n_aug=3)
    with pytest.raises(NotEnoughDataError, match="needs 10 augmented rows, only 3"):
        mix(o, a, 0.5, 20, seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        mix_counts(1.0, 10)


def test_token_mitigation_marks_exactly_the_augmented_rows():
    o, a = _frames()
    mixed = mix(o, a, 0.5, 20, seed=0)
    settings = MitigationConfig(token_text="WARNING: may be biased.")
    out, stats = apply_mitigation(mixed, "token", settings)
    assert stats["token_prefixed_rows"] == 10
    prefixed = out["text"].str.startswith("WARNING: may be biased. ")
    assert (prefixed == (out["source"] == "augmented")).all()
    assert apply_mitigation(mixed, "none", settings)[0].equals(mixed)
