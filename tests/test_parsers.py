"""Parsers: generated-text cleaning and drop reasons, salary numbers, the bias taxonomy."""
from __future__ import annotations

import pytest

from bias.taxonomy import BIAS_TYPES, DEFAULT_BIAS_TYPES, parse_bias_type
from bias.vocabulary import infer_gender, word_pattern
from evaluation.tasks.salary_recommendation import parse_salary, score_answers
from generation.dedup import mark_duplicates
from generation.parse import clean_text, drop_counts, postprocess
from generation.prompts import build_prompt, make_seed_rows

pytestmark = pytest.mark.unit   # no Ray, MLflow or model

ROW = {"prompt_id": "x-0-1", "occupation": "nurse", "gender": "female", "culture": "english",
       "age": "", "name": "Emma", "other_name": "James", "group": "female",
       "persona": "a senior nurse at a regional hospital who trains new ward staff",
       "task_format": "biography"}


def _post(text, **extra):
    return postprocess({**ROW, "generated_text": text, **extra}, social_bias="gender", neutral=False)


def test_clean_text_strips_preambles_and_cuts_to_whole_sentences():
    text, complete = clean_text('Sure! Here is the biography:\n"Emma is a nurse at a ward. '
                                'She trains staff every week. She also')
    assert complete and text == "Emma is a nurse at a ward. She trains staff every week."
    assert clean_text("Biography: Emma is a nurse")[1] is False


@pytest.mark.parametrize("text, extra, reason", [
    ("Emma is a nurse at a regional hospital. She cares for patients at night.", {}, ""),
    ("", {}, "empty"),
    ("   ", {}, "empty"),
    ("x", {"__inference_error__": "CUDA OOM"}, "inference_error"),
    ("Emma is a nurse who works at a hospital and she cares for", {}, "truncated"),
    ("Emma is a nurse.", {}, "wrong_format"),
    ("I'm sorry, but I cannot write biographies that include stereotypes about people.", {}, "wrong_format"),
    ("Jordan is a nurse at a regional hospital. They care for patients at night.", {}, "missing_group_cue"),
    # a male cue alone does not show a female target
    ("Jordan is a nurse at a regional hospital. He cares for patients at night.", {}, "missing_group_cue"),
])
def test_postprocess_drop_reasons(text, extra, reason):
    assert _post(text, **extra)["drop_reason"] == reason


def test_duplicates_are_marked_after_normalisation_and_counted():
    rows = [_post("Emma is a nurse at a regional hospital. She cares for patients at night."),
            _post("emma is a nurse at a regional hospital!  She cares for patients at night."),
            _post("Emma is a nurse.")]
    mark_duplicates(rows)
    assert [r["drop_reason"] for r in rows] == ["", "duplicate", "wrong_format"]
    counts = drop_counts(rows)
    assert counts["duplicate"] == 1 and counts["wrong_format"] == 1 and counts["empty"] == 0


def test_neutral_rows_take_the_gender_the_model_chose():
    out = postprocess({**ROW, "generated_text": "Sam is a nurse at a clinic. He works nights and trains "
                       "new staff."}, social_bias="gender", neutral=True)
    assert out["drop_reason"] == "" and out["gender"] == "male"


@pytest.mark.parametrize("answer, expected", [
    ("85,000 per year", 85000.0), ("85k.", 85000.0), ("$120 thousand", 120000.0),
    ("1.5 million dollars", 1_500_000.0), ("72000", 72000.0), ("about 60", None),
    ("no idea", None), ("", None),
])
def test_parse_salary(answer, expected):
    assert parse_salary(answer) == expected


def test_salary_scores_per_group_and_a_paired_gap():
    items = [{"group": "male", "pair_id": 0}, {"group": "male", "pair_id": 1},
             {"group": "female", "pair_id": 0}, {"group": "female", "pair_id": 1}]
    m = score_answers(items, ["100000", "80000", "70000", "nothing"], "gender")
    assert m["mean_salary_male"] == 90000 and m["mean_salary_female"] == 70000
    # Only pair 0 has both answers: the gap is its difference, not 90,000 - 70,000 (the unpaired
    # means the old metric took, which counted pair 1's male answer against nothing).
    assert m["salary_gap"] == 30000 and m["salary_gap_pairs"] == 1 and m["parse_rate"] == 0.75


def test_taxonomy_expresses_all_eight_combinations_plus_neutral():
    assert len(BIAS_TYPES) == 9 and "neutral" in BIAS_TYPES
    assert set(DEFAULT_BIAS_TYPES) < set(BIAS_TYPES) and len(DEFAULT_BIAS_TYPES) == 6
    axes = {tuple(parse_bias_type(t).axes().values()) for t in BIAS_TYPES if t != "neutral"}
    assert len(axes) == 8
    with pytest.raises(ValueError, match="unknown bias type"):
        parse_bias_type("contextual-single")


def test_prompts_follow_the_axes():
    rows = make_seed_rows("gender", "contrastive-intersectional-explicit", 4, seed=0)
    assert rows == make_seed_rows("gender", "contrastive-intersectional-explicit", 4, seed=0)
    p = build_prompt(rows[0], "gender", "contrastive-intersectional-explicit", 1.0)
    assert "colleague" in p and rows[0]["age"] in p and "Say explicitly" in p
    implicit = build_prompt(ROW, "gender", "contextual-single-implicit", 0.0)
    assert "never state" in implicit and "subtly" in implicit
    assert "colleague" not in implicit
    neutral = build_prompt(ROW, "gender", "neutral", 1.0)
    assert "stereotype" not in neutral and "Emma" not in neutral


def test_whole_word_cues_do_not_match_inside_words():
    assert infer_gender("The theme of the hearing") is None
    assert infer_gender("He said she") is None
    assert infer_gender("She is a dentist; her clinic is busy.") == "female"
    assert word_pattern(("he",)).findall("he, the, He's, she, HE") == ["he", "He", "HE"]
