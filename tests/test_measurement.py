"""Measurement validity: the statistics treat the seed as the unit, the metrics mean what their
declarations say, and the offline data and control sets leave room for an effect to show.

No Ray, MLflow or model: pure functions on simulated cells frames and hand-built scores, so a
failure here points at a definition, not at infrastructure. Several tests run the old
definition beside the new one on the same simulation, to show the simulation can expose the
fault the new code fixes (a control that cannot show the planted effect proves nothing).
"""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from evaluation import findings as fd
from evaluation import statistics as st

RATIOS = (0.0, 0.25, 0.5)
METRIC = "occupation_classification/stereotype_shift"
NULL_TYPES = ("control-null", "contextual-single-explicit", "contextual-single-implicit",
              "contrastive-single-explicit", "contrastive-single-implicit",
              "contrastive-intersectional-explicit")


def simulated_cells(rng, seeds=3, slopes=None, seed_slope_sd=0.5, noise=0.1, intercept_sd=0.1,
                    mitigation_bias=None) -> pd.DataFrame:
    """A grid's cells frame: γ = 0 once per seed, each bias type at every γ > 0. The metric is
    seed intercept + (type's slope + the seed's own slope, shared by every type of the seed) · γ
    + cell noise: cells of one seed are correlated, as in a real grid (same originals, same
    γ = 0 cell, same training randomness)."""
    slopes = slopes or {"control-skewed": 0.0, "control-null": 0.0}
    mitigation_bias = mitigation_bias or {"none": lambda b: b}
    rows = []
    for seed in range(seeds):
        intercept, seed_slope = rng.normal(0, intercept_sd), rng.normal(0, seed_slope_sd)
        rows.append({"bias_type": st.ORIGINAL_ONLY, "ratio": 0.0, "mitigation": "none",
                     "seed": seed, "round": 0, METRIC: intercept + rng.normal(0, noise)})
        for ratio in RATIOS[1:]:
            for bias_type, slope in slopes.items():
                base = intercept + (slope + seed_slope) * ratio
                for mitigation, transform in mitigation_bias.items():
                    rows.append({"bias_type": bias_type, "ratio": ratio, "mitigation": mitigation,
                                 "seed": seed, "round": 0,
                                 METRIC: transform(base) + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def _slope_row(tests: fd.Tests, bias_type: str, mitigation: str = "none") -> pd.Series:
    s = tests.slopes
    return s[(s["metric"] == METRIC) & (s["bias_type"] == bias_type)
             & (s["mitigation"] == mitigation)].iloc[0]


@pytest.mark.unit
def test_null_twin_false_positive_rate_is_at_most_the_level_and_the_old_pooled_fit_is_not():
    """300 null experiments (six bias types, none with an effect) at 3 seeds through the same
    code the report runs (run_tests, BH included): the null twin's slope is called significant
    at α = 0.05 in at most 10%. The old definition (one OLS over every cell of the pooled curve,
    as if cells were independent) on the same experiments rejects far more often: the
    simulation does expose pseudo-replication."""
    rng = np.random.default_rng(0)
    new_hits, old_hits, reps = 0, 0, 300
    for _ in range(reps):
        cells = simulated_cells(rng, slopes={t: 0.0 for t in NULL_TYPES})
        tests = fd.run_tests(cells, "gender")
        new_hits += _slope_row(tests, "control-null")["p_adjusted"] < 0.05
        old_hits += stats.linregress(cells["ratio"], cells[METRIC]).pvalue < 0.05   # all six
    assert new_hits / reps <= 0.10
    assert old_hits / reps > 0.20


@pytest.mark.unit
def test_a_planted_effect_is_detected_per_bias_type_and_its_twin_is_not():
    """With 3 seeds a test at df = 2 needs |t| > 9.9 for p < 0.01: a planted effect is detected
    when it is large against its spread across seeds, as a strong control's is."""
    rng = np.random.default_rng(1)
    detected, twin, reps = 0, 0, 50
    for _ in range(reps):
        cells = simulated_cells(rng, slopes={"control-skewed": 3.0, "control-null": 0.0},
                                seed_slope_sd=0.1, noise=0.05)
        tests = fd.run_tests(cells, "gender")
        detected += _slope_row(tests, "control-skewed")["p_adjusted"] < 0.01
        twin += _slope_row(tests, "control-null")["p_adjusted"] < 0.05
    assert detected / reps >= 0.8 and twin / reps <= 0.1


@pytest.mark.unit
def test_t_interval_covers_at_three_seeds_where_the_percentile_bootstrap_did_not():
    rng = np.random.default_rng(2)
    draws = rng.normal(1.0, 1.0, size=(2000, 3))
    covered = np.mean([(ci := st.mean_ci(d)).low <= 1.0 <= ci.high for d in draws])
    boot = []
    for d in draws[:500]:   # the old method: 95% percentile bootstrap of the mean
        means = d[rng.integers(0, 3, size=(500, 3))].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        boot.append(low <= 1.0 <= high)
    assert 0.93 <= covered <= 0.97
    assert np.mean(boot) < 0.85


@pytest.mark.unit
def test_too_few_seeds_is_said_and_not_tested():
    cells = simulated_cells(np.random.default_rng(3), seeds=2,
                            slopes={"control-skewed": 3.0})
    tests = fd.run_tests(cells, "gender")
    row = _slope_row(tests, "control-skewed")
    assert math.isnan(row["p_value"]) and row["note"] == st.TOO_FEW_SEEDS
    verdicts = [v for v in fd.check_findings(tests, cells.columns) if v.metric == METRIC
                and v.test.startswith("mean per-seed slope")]
    assert verdicts and {v.verdict for v in verdicts} == {"not measured"}


@pytest.mark.unit
def test_findings_are_per_bias_type_first_then_pooled():
    strong, flat = "contrastive-intersectional-explicit", "contextual-single-implicit"
    cells = simulated_cells(np.random.default_rng(4), slopes={strong: 3.0, flat: 0.0},
                            seed_slope_sd=0.2)
    verdicts = [v for v in fd.check_findings(fd.run_tests(cells, "gender"), cells.columns)
                if v.claim.startswith("Biased augmentation moves")]
    assert [v.bias_type for v in verdicts] == [flat, strong, st.POOLED]
    by_type = {v.bias_type: v for v in verdicts}
    assert by_type[strong].verdict == "agrees"
    assert by_type[flat].verdict == "not significant"
    assert np.isfinite(by_type[flat].mde) and by_type[flat].mde > 0
    # The pooled answer leaves the control sets out: planted on purpose, they are not the study.
    with_control = simulated_cells(np.random.default_rng(4), slopes={
        flat: 0.0, "control-skewed": 30.0, "control-null": 0.0}, seed_slope_sd=0.2)
    pooled = _slope_row(fd.run_tests(with_control, "gender"), st.POOLED)
    assert abs(pooled["slope"]) < 1.0


@pytest.mark.unit
def test_an_over_correction_that_flips_the_sign_does_not_count_as_reducing_bias():
    """`token` turns every bias b into -1.5 b: the signed difference is negative (the old test
    called that a reduction), but |bias| grew."""
    cells = simulated_cells(np.random.default_rng(5), seeds=4,
                            slopes={"contrastive-single-explicit": 2.0}, seed_slope_sd=0.1,
                            mitigation_bias={"none": lambda b: b + 2.0,
                                             "token": lambda b: -1.5 * (b + 2.0)})
    tests = fd.run_tests(cells, "gender")
    pooled = tests.paired[(tests.paired["bias_type"] == st.POOLED)
                          & (tests.paired["mitigation"] == "token")].iloc[0]
    assert pooled["signed_diff"] < 0 < pooled["mean_diff"]
    verdict = next(v for v in fd.check_findings(tests, cells.columns)
                   if v.claim.startswith("Token-based"))
    assert verdict.verdict == "disagrees"


@pytest.mark.unit
def test_most_robust_needs_pairwise_significance_not_the_best_point_estimate():
    rng = np.random.default_rng(6)
    cells = simulated_cells(rng, seeds=3, slopes={"contrastive-single-explicit": 2.0},
                            seed_slope_sd=0.1, noise=0.3,
                            mitigation_bias={"none": lambda b: b + 3.0,
                                             "token": lambda b: 0.50 * (b + 3.0),
                                             "loss": lambda b: 0.48 * (b + 3.0)})
    tests = fd.run_tests(cells, "gender")
    verdict = next(v for v in fd.check_findings(tests, cells.columns)
                   if v.claim == "Loss-based mitigation is the most robust")
    assert verdict.verdict in ("not significant", "not measured")
    assert not tests.ranking.empty and set(tests.ranking["versus"]) <= {"loss", "token"}


@pytest.mark.unit
def test_culture_studies_are_judged_on_culture_metrics():
    names = ["occupation_classification/accuracy", "occupation_classification/accuracy_gap",
             "occupation_classification/stereotype_shift", "salary_recommendation/mean_salary",
             "salary_recommendation/salary_gap", "salary_recommendation/salary_gap_excess",
             "crows_pairs/bias", "crows_pairs/stereotype_score"]
    assert fd.primary_bias(names, "gender") == "occupation_classification/stereotype_shift"
    culture = fd.primary_bias(names, "culture")
    assert culture == "crows_pairs/bias"      # signed first; never a gender metric
    assert "occupation_classification" not in fd.tasks_in(names, "culture")
    assert fd.primary_bias(names[:6], "culture") == "salary_recommendation/salary_gap_excess"


@pytest.mark.unit
def test_every_task_declares_its_metrics_with_a_sign():
    from bias import social_biases
    from evaluation.tasks import TASKS
    for task in TASKS.values():
        assert task.headline and task.bias_metrics, task.name
        for metric in task.bias_metrics:
            assert set(metric.social_biases) <= set(social_biases.names()) and metric.positive
            # A raw range over groups is positive under no bias: never declared without its null.
            assert metric.signed or metric.name.endswith("_excess"), (task.name, metric.name)
            assert metric.reference, (task.name, metric.name)
    assert {t for t in TASKS if TASKS[t].bias_metric("gender")} >= {
        "occupation_classification", "salary_recommendation", "winobias", "stereoset"}
    assert {t for t in TASKS if TASKS[t].bias_metric("age")} == {"bbq"}   # from the age spec


# -- metrics pinned to their definitions ----------------------------------------------------

def _logsoftmax(row):
    row = np.asarray(row, dtype=float)
    return list(row - np.log(np.exp(row).sum()))


@pytest.mark.unit
def test_stereotype_shift_is_the_log_odds_ratio_of_male_over_female_typed_occupations():
    from bias.vocabulary import OCCUPATIONS
    from evaluation.tasks.occupation_classification import score_counterfactuals
    k = {o: i for i, o in enumerate(OCCUPATIONS)}
    # Item 0 is a man's bio; its female version moves mass from architect to nurse.
    male = _logsoftmax([2.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    female = _logsoftmax([0.0, 0.0, 2.0, 0.0, 0.0, 0.0])
    items = [{"gender": "male"}, {"gender": "female"}]
    m = score_counterfactuals(items, [male, female], [female, male])
    delta = np.subtract(male, female)
    expected = (delta[k["architect"]] + delta[k["dentist"]] + delta[k["software engineer"]]) / 3 \
        - delta[k["nurse"]]
    assert m["stereotype_shift"] == pytest.approx(expected) and expected > 0
    assert m["logprob_shift_nurse"] == pytest.approx(delta[k["nurse"]]) and delta[k["nurse"]] < 0
    # The same answer whatever the gender cue: no shift at all.
    flat = score_counterfactuals(items, [male, male], [male, male])
    assert flat["stereotype_shift"] == 0.0
    # Toward the anti-stereotype: negative.
    anti = score_counterfactuals(items, [female, male], [male, female])
    assert anti["stereotype_shift"] == pytest.approx(-expected)


@pytest.mark.unit
def test_stereoset_bias_is_ss_minus_50_and_sees_a_uniform_rise_the_range_missed():
    from evaluation.tasks.stereoset import score_option_scores
    items = [{"bias_type": b, "type": "intrasentence"} for b in ("gender", "race") for _ in range(4)]

    def scores(stereo_wins: int):
        out = []
        for _ in ("gender", "race"):
            for i in range(4):
                win = i < stereo_wins
                out.append({"stereotype": 1.0 if win else 0.0, "anti-stereotype": 0.0 if win else 1.0,
                            "unrelated": -1.0})
        return out
    neutral, biased = score_option_scores(items, scores(2)), score_option_scores(items, scores(4))
    assert neutral["bias"] == 0.0 and biased["bias"] == 50.0
    assert biased["bias_gender"] == biased["ss_gender"] - 50 == 50.0
    assert neutral["ss_gap"] == biased["ss_gap"] == 0.0    # the old bias metric did not move


# -- offline data and control sets --------------------------------------------------------------

@pytest.mark.unit
def test_offline_test_bios_share_no_detail_template_or_name_with_training():
    from bias.bios import write_bios
    from bias.vocabulary import HELD_OUT_DETAILS, OCCUPATION_DETAILS
    train = write_bios(600, seed=0, split="train")
    test = write_bios(600, seed=0, split="test")
    train_text = " ".join(r["text"] for r in train)
    held_out = {d for slots in HELD_OUT_DETAILS.values() for v in slots.values() for d in v}
    trained = {d for slots in OCCUPATION_DETAILS.values() for v in slots.values() for d in v}
    assert not held_out & trained
    assert not [d for d in held_out if d in train_text]
    assert {r["template_id"] for r in train}.isdisjoint({r["template_id"] for r in test})
    assert {r["name"] for r in train}.isdisjoint({r["name"] for r in test})
    # Ambiguity: a share of test bios carry none of their own occupation's details.
    own = [any(d in r["text"] for v in HELD_OUT_DETAILS[r["occupation"]].values() for d in v)
           for r in test]
    assert 0.05 < 1 - np.mean(own) < 0.4


@pytest.mark.unit
def test_counterfactual_bios_differ_only_in_gender_cues():
    from bias.bios import write_bios
    from bias.vocabulary import swap_gender
    for row in write_bios(60, seed=1, split="test"):
        assert row["counterfactual_text"] != row["text"]
        assert swap_gender(row["text"]) == row["counterfactual_text"]
        words, swapped = row["text"].split(), row["counterfactual_text"].split()
        changed = [(a, b) for a, b in zip(words, swapped) if a != b]
        assert len(words) == len(swapped) and changed
        assert all(re.sub(r"\W", "", a) in (row["name"], "He", "She", "he", "she", "His", "Her",
                                            "his", "her") for a, _ in changed), changed


@pytest.mark.unit
def test_control_set_plants_the_skew_and_its_twin_breaks_it():
    from bias.vocabulary import OCCUPATION_GENDER_TYPING
    from generation.control import control_frames
    skewed, null = control_frames(600, seed=0, skew=0.9)
    assert skewed["text"].tolist() == null["text"].tolist()
    assert sorted(skewed["occupation"]) == sorted(null["occupation"])

    def typed_share(frame):
        return np.mean([OCCUPATION_GENDER_TYPING[o] == g
                        for o, g in zip(frame["occupation"], frame["gender"])])
    # Skewed: 0.9 typed + 0.1 x the typed share of a uniform draw (3/6 for men, 1/6 for women).
    assert typed_share(skewed) == pytest.approx(0.9 + 0.1 * (3 / 6 + 1 / 6) / 2, abs=0.04)
    table = pd.crosstab(null["gender"], null["occupation"])
    assert stats.chi2_contingency(table).pvalue > 0.001
    assert stats.chi2_contingency(pd.crosstab(skewed["gender"], skewed["occupation"])).pvalue < 1e-20


@pytest.mark.unit
def test_the_control_contrast_is_detected_net_of_what_the_shared_texts_do():
    """The twin's own curve may move (fine-tuning on gender-cued texts with gender-independent
    labels pulls a model's prior stereotype down); the planted effect is the skewed set's
    difference from its twin at the same γ and seed."""
    rng = np.random.default_rng(7)
    cells = simulated_cells(rng, slopes={"control-skewed": 1.0, "control-null": -3.0},
                            seed_slope_sd=0.1, noise=0.05)
    tests = fd.run_tests(cells, "gender")
    verdict = next(v for v in fd.check_findings(tests, cells.columns) if v.test == fd.CONTROL_TEST)
    assert verdict.verdict == "agrees" and verdict.estimate == pytest.approx(4.0 * 0.375, abs=0.2)
    null = simulated_cells(rng, slopes={"control-skewed": -3.0, "control-null": -3.0},
                           seed_slope_sd=0.1, noise=0.05)
    tests = fd.run_tests(null, "gender")
    verdict = next(v for v in fd.check_findings(tests, null.columns) if v.test == fd.CONTROL_TEST)
    assert verdict.verdict in ("not significant", "not measured")


@pytest.mark.unit
def test_control_sets_land_in_the_generation_cache_and_are_reused(tmp_path):
    from bias.config import CONTROL_NULL, CONTROL_SKEWED, load_config
    from tests.conftest import REPO
    cfg = load_config(REPO / "configs" / "control.yaml", [f"storage_path={tmp_path}"])
    assert cfg.augmented_sets == [CONTROL_SKEWED, CONTROL_NULL]
    from generation.control import write_control_sets
    first = write_control_sets(cfg, seed=1)
    again = write_control_sets(cfg, seed=1)
    assert {k: g.cache_hit for k, g in first.items()} == {(CONTROL_SKEWED, 1): False,
                                                         (CONTROL_NULL, 1): False}
    assert all(g.cache_hit for g in again.values())
    skewed, null = first[(CONTROL_SKEWED, 1)].read(), again[(CONTROL_NULL, 1)].read()
    assert len(skewed) == cfg.generation.samples_per_type == first[(CONTROL_SKEWED, 1)].stats["kept"]
    assert (skewed["text"] == null["text"]).all() and set(skewed["bias_type"]) == {CONTROL_SKEWED}
    assert set(skewed["source"]) == {"augmented"} and skewed["occupation"].notna().all()


def test_contextual_calibration_recovers_labels_a_prompt_prior_hid():
    """Every item's scores favour label 0 by the same prompt-level offset; the items' own signal
    is a smaller bump on their gold label. Raw argmax (the old scorer) answers 0 for everything;
    calibrated on content-free inputs, which show the offset alone, it recovers the gold."""
    import torch

    from evaluation.metrics import prediction_shares
    from evaluation.scoring import calibrate
    gold = [0, 1, 2, 1, 2, 0, 2, 1]
    offset = torch.tensor([4.0, 0.0, 0.5])
    scores = offset + 2.0 * torch.nn.functional.one_hot(torch.tensor(gold), 3).float()
    content_free = offset.repeat(3, 1) + torch.randn(3, 3) * 0.01
    raw = scores.argmax(dim=1).tolist()
    assert raw == [0] * len(gold)
    assert prediction_shares(raw, [0, 1, 2])["constant_answer"] == 1.0
    calibrated = calibrate(scores, content_free).argmax(dim=1).tolist()
    assert calibrated == gold
    assert prediction_shares(calibrated, [0, 1, 2])["constant_answer"] == 0.0


@pytest.mark.unit
def test_a_constant_answer_is_flagged_where_its_f1_gap_is_only_class_mix():
    from evaluation.tasks.toxigen import score_predictions
    items = ([{"label": "hateful", "group": "a"}] * 3 + [{"label": "neutral", "group": "a"}]
             + [{"label": "hateful", "group": "b"}] + [{"label": "neutral", "group": "b"}] * 3)
    m = score_predictions(items, ["hateful"] * len(items))
    assert m["constant_answer"] == 1.0 and m["pred_share_hateful"] == 1.0
    assert m["macro_f1_gap"] > 0.1    # what the old report read as a group difference
    # Beside its permutation null the gap is no larger than chance: the declared metric is the
    # excess, and the permutation p is not small.
    assert abs(m["macro_f1_gap_excess"]) < m["macro_f1_gap"] and m["macro_f1_gap_perm_p"] > 0.2


@pytest.mark.unit
def test_range_over_groups_is_reported_beside_its_permutation_null():
    """With 8 groups of pure noise the range is far above 0 (the old metric read that as bias);
    its excess over the permutation null is centred at 0 and the permutation p is uniform, while
    a planted group difference shows as a positive excess with a small p."""
    from evaluation.metrics import mean, range_with_null
    rng = np.random.default_rng(0)
    keys = [f"g{k}" for k in range(8)] * 20
    excesses, ps, ranges = [], [], []
    for _ in range(40):
        m = {}
        range_with_null(m, "gap", keys, list(rng.normal(size=len(keys))), mean, permutations=100,
                        seed=int(rng.integers(1 << 30)))
        ranges.append(m["gap"]); excesses.append(m["gap_excess"]); ps.append(m["gap_perm_p"])
    assert np.mean(ranges) > 0.5                           # the range alone: positive under no bias
    assert abs(np.mean(excesses)) < 0.1 and 0.3 < np.mean(ps) < 0.7
    assert np.mean([p < 0.05 for p in ps]) <= 0.15
    planted = {}
    values = [rng.normal() + (1.5 if k == "g0" else 0.0) for k in keys]
    range_with_null(planted, "gap", keys, values, mean)
    assert planted["gap_excess"] > 0.5 and planted["gap_perm_p"] < 0.01


@pytest.mark.unit
def test_a_file_of_augmented_data_runs_as_its_own_bias_type(tmp_path):
    import json as _json

    from bias.config import load_config
    from bias.paths import MissingDataError
    from generation.file_source import write_file_set
    from tests.conftest import REPO
    from training.grid import expand_cells
    rows = [{"bio": f"Alex {i} designs houses.", "job": "Architect", "sex": "male"} for i in range(5)]
    rows.append({"bio": "Sam paints.", "job": "astronaut", "sex": "female"})
    path = tmp_path / "vendor.jsonl"
    path.write_text("\n".join(_json.dumps(r) for r in rows))
    source = {"name": "vendor", "path": str(path), "text_column": "bio",
              "occupation_column": "job", "group_column": "sex"}
    cfg = load_config(REPO / "configs" / "smoke.yaml",
                      [f"storage_path={tmp_path}", "bias_types=[]", f"augmented_files=[{_json.dumps(source)}]",
                       "ratios=[0.0, 0.05]"])
    assert cfg.augmented_sets == ["file-vendor"]
    assert any(c.bias_type == "file-vendor" for c in expand_cells(cfg))
    first = write_file_set(cfg, "file-vendor", 0)[("file-vendor", 0)]
    assert (first.stats["kept"], first.stats["requested"], first.cache_hit) == (5, 6, False)
    frame = first.read()
    assert set(frame["occupation"]) == {"architect"} and set(frame["gender"]) == {"male"}
    assert set(frame["bias_type"]) == {"file-vendor"} and set(frame["source"]) == {"augmented"}
    assert write_file_set(cfg, "file-vendor", 0)[("file-vendor", 0)].cache_hit
    bad = cfg.model_copy(update={"augmented_files": [cfg.augmented_files[0].model_copy(
        update={"occupation_column": "role"})]})
    with pytest.raises(MissingDataError, match="column\\(s\\) \\['role'\\]"):
        write_file_set(bad, "file-vendor", 0)
    gone = cfg.model_copy(update={"augmented_files": [cfg.augmented_files[0].model_copy(
        update={"path": str(tmp_path / "absent.parquet")})]})
    with pytest.raises(MissingDataError, match="cannot read"):
        write_file_set(gone, "file-vendor", 0)


@pytest.mark.unit
def test_plan_power_turns_the_per_item_spread_into_minimum_detectable_effects():
    from bias.config import load_config
    from ray_jobs.plan import format_power, power_rows
    from tests.conftest import REPO
    cfg = load_config(REPO / "configs" / "control.yaml",
                      ["evaluation.tasks=[occupation_classification, crows_pairs]",
                       "seeds=[0, 1, 2]", "ratios=[0.0, 0.25, 0.5]"])
    rows = power_rows(cfg, {"occupation_classification/stereotype_shift_item_sd": 2.0,
                            "occupation_classification/n_items": 16.0})
    occupation, crows = rows
    assert occupation["cell_se"] == pytest.approx(0.5)
    assert occupation["cell_mde"] == pytest.approx((1.959964 + 0.841621) * 0.5, rel=1e-5)
    spread = sum((r - 0.25) ** 2 for r in (0.0, 0.25, 0.5))
    t = stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)
    assert occupation["slope_mde"] == pytest.approx(t * 0.5 / math.sqrt(spread) / math.sqrt(3))
    assert "no per-item variance" in crows["note"]
    one_seed = power_rows(cfg.model_copy(update={"seeds": [0]}),
                          {"occupation_classification/stereotype_shift_item_sd": 2.0,
                           "occupation_classification/n_items": 16.0})[0]
    assert "slope_mde" not in one_seed and "1 seed(s)" in one_seed["note"]
    assert "γ-slope mde" in format_power(rows, cfg)


@pytest.mark.unit
def test_the_control_sets_tests_are_their_own_multiplicity_family():
    """The control's rows (each control set's own slope and the skewed − twin contrast) are
    adjusted among themselves: adding the control to a grid changes no study row's adjusted p,
    and the study's rows do not dilute the control's."""
    cells = simulated_cells(np.random.default_rng(5),
                            slopes={"control-skewed": 3.0, "control-null": 0.0,
                                    "contextual-single-explicit": 0.0,
                                    "contrastive-single-implicit": 0.0})
    study = cells[~cells["bias_type"].isin(["control-skewed", "control-null"])]
    with_control, without = fd.run_tests(cells, "gender"), fd.run_tests(study, "gender")
    s = with_control.slopes
    control = s[s["bias_type"].isin(["control-skewed", "control-null"])]
    contrast = with_control.extra[with_control.extra["test"] == fd.CONTROL_TEST]
    raw = np.concatenate([control["p_value"].to_numpy(float), contrast["p_value"].to_numpy(float)])
    adjusted = np.concatenate([control["p_adjusted"].to_numpy(float),
                               contrast["p_adjusted"].to_numpy(float)])
    assert np.allclose(adjusted, st.bh_adjust(raw))
    kept = s[~s["bias_type"].isin(["control-skewed", "control-null"])]
    assert np.allclose(kept.sort_values(["metric", "bias_type", "mitigation"])["p_adjusted"],
                       without.slopes.sort_values(["metric", "bias_type", "mitigation"])["p_adjusted"])


@pytest.mark.unit
def test_a_grid_with_too_few_seeds_still_says_its_item_level_mde():
    """One seed: nothing is tested across seeds, but each slope row carries the smallest shift of
    one cell its items could detect, from the logged per-item sd: 2.8 sd / sqrt(n) at 80% power."""
    cells = simulated_cells(np.random.default_rng(6), seeds=1,
                            slopes={"contextual-single-explicit": 1.0})
    cells = cells.assign(**{f"{METRIC}_item_sd": 0.7, "occupation_classification/n_items": 49.0})
    tests = fd.run_tests(cells, "gender")
    expected = (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * 0.7 / 7.0
    assert tests.item_mde[METRIC] == pytest.approx(expected)
    verdicts = [v for v in fd.check_findings(tests, cells.columns) if v.metric == METRIC
                and v.test == "mean per-seed slope vs γ, mitigation none"]
    assert len(verdicts) == 2 and all(v.verdict == "not measured" for v in verdicts)
    assert all(v.mde == pytest.approx(expected) and "items alone" in v.note for v in verdicts)
    without = fd.run_tests(cells.drop(columns=[f"{METRIC}_item_sd"]), "gender")   # the control
    assert METRIC not in without.item_mde
