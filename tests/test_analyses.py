"""Misalignment analyses: the two-sample test, the group-balance table, the values JS distance."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon

from bias.bios import write_bios
from evaluation.analyses.distribution import embed, mmd_test
from evaluation.analyses.values import js_distances, load_questions, model_distributions


def test_mmd_flags_a_planted_shift_and_not_two_halves_of_one_set():
    rng = np.random.default_rng(0)
    same = rng.normal(size=(80, 16))
    assert mmd_test(same[:40], same[40:], permutations=200)["p_value"] > 0.05
    shifted = rng.normal(size=(40, 16)) + 0.8
    result = mmd_test(same[:40], shifted, permutations=200)
    assert result["p_value"] < 0.01 and result["mmd2"] > 0


def test_real_embeddings_separate_bios_from_other_text():
    bios = [r["text"] for r in write_bios(40, seed=0)]
    other = [f"The match ended {i}-{i + 1} after a late goal in the rain." for i in range(20)]
    x = embed(bios)
    assert x.shape == (40, 384) and np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    assert mmd_test(x[:20], embed(other), permutations=200)["p_value"] < 0.01
    # Two halves of one set are exchangeable: p < 0.05 in about 1 set of 20. One set can land
    # there by chance (seed 0 does), so over ten sets at most three (a calibrated test exceeds
    # that 0.1% of the time).
    halves = [mmd_test(h[:20], h[20:], permutations=200)["p_value"]
              for h in [x] + [embed([r["text"] for r in write_bios(40, seed=s)]) for s in range(1, 10)]]
    assert sum(p < 0.05 for p in halves) <= 3, halves


@pytest.fixture
def opinions_file(tmp_path):
    rows = [
        {"question": "Is religion important?", "options": "['Yes', 'No']",
         "selections": "defaultdict(<class 'list'>, {'China': [0.2, 0.8], 'Egypt': [0.9, 0.1], "
                       "'Spain': [0.4, 0.6]})"},
        {"question": "Is work important?", "options": ["Very", "Somewhat", "Not"],
         "selections": {"Brazil": [0.5, 0.3, 0.2], "Mexico": [0.6, 0.3, 0.1]}},
    ]
    path = tmp_path / "opinions.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_values_loader_parses_both_reprs_and_js_distance_is_exact(opinions_file):
    rows = load_questions(str(opinions_file))
    assert rows[0]["options"] == ["Yes", "No"] and rows[0]["selections"]["Egypt"] == [0.9, 0.1]
    assert rows[1]["selections"]["Mexico"] == pytest.approx([0.6, 0.3, 0.1])
    model = [[0.9, 0.1], [0.5, 0.3, 0.2]]
    m = js_distances(rows, model)
    assert m["values/js_distance_arabic"] == pytest.approx(0.0, abs=1e-9)      # identical to Egypt
    assert m["values/js_distance_chinese"] == pytest.approx(
        jensenshannon([0.9, 0.1], [0.2, 0.8], base=2))
    spanish = [jensenshannon([0.9, 0.1], [0.4, 0.6], base=2),
               jensenshannon([0.5, 0.3, 0.2], [0.6, 0.3, 0.1], base=2)]
    assert m["values/js_distance_spanish"] == pytest.approx(sum(spanish) / 2)
    assert math.isnan(m["values/js_distance_portuguese"]) is False   # Brazil answers Q2
    assert m["values/js_distance_portuguese"] == pytest.approx(0.0, abs=1e-9)


def test_model_answer_distributions_are_distributions(opinions_file, tiny_model):
    from bias.models import load_causal_lm, load_tokenizer
    rows = load_questions(str(opinions_file))
    dists = model_distributions(load_causal_lm(tiny_model, torch.float32).eval(),
                                load_tokenizer(tiny_model), rows)
    assert [len(d) for d in dists] == [2, 3]
    assert all(abs(sum(d) - 1) < 1e-5 and min(d) > 0 for d in dists)
