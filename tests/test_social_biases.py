"""Social-bias specs (bias/social_biases/): gender and culture keep their behaviour, and age, the
third, runs through the same seed rows, prompts, parser, balance table and BBQ metric.

    pytest tests/test_social_biases.py -q
"""
from __future__ import annotations

from collections import Counter

import pytest
from pydantic import ValidationError

from bias import social_biases
from bias.config import ExperimentConfig
from bias.social_biases.age import infer_age
from generation.balance import balance_table, expected_groups
from generation.parse import postprocess
from generation.prompts import build_prompt, make_seed_rows

pytestmark = pytest.mark.unit   # no Ray, MLflow or model


def test_specs_are_found_by_file_and_the_config_checks_the_name():
    assert social_biases.names() == ("gender", "age", "culture")
    types = {"bias_types": ["contextual-single-explicit"], "ratios": [0.0, 0.5]}
    assert ExperimentConfig(name="a", social_bias="age", **types).social_bias == "age"
    with pytest.raises(ValidationError, match="unknown social bias .religion."):
        ExperimentConfig(name="r", social_bias="religion", **types)


@pytest.mark.parametrize("social_bias,field", [("gender", "gender"), ("culture", "culture"),
                                               ("age", "age")])
def test_seed_rows_cycle_the_study_groups_balanced(social_bias, field):
    spec = social_biases.get(social_bias)
    cycle = 6 * 2 * len(spec.groups) if field != "gender" else 6 * 2
    rows = make_seed_rows(social_bias, "contextual-single-explicit", 2 * cycle, seed=0)
    assert all(r["group"] == r[field] for r in rows)
    counts = Counter((r["occupation"], r["group"]) for r in rows)
    assert set(counts.values()) == {2 * cycle // (6 * len(spec.groups))}   # every cell alike


def test_age_prompts_name_the_age_group_and_hide_it_when_implicit():
    rows = make_seed_rows("age", "contextual-single-explicit", 36, seed=0)
    older = next(r for r in rows if r["age"] == "older")
    explicit = build_prompt(older, "age", "contextual-single-explicit", 1.0)
    assert "an older person who works as" in explicit and "older people" in explicit
    implicit = build_prompt(older, "age", "contrastive-single-implicit", 1.0)
    assert "never state" in implicit and "age directly" in implicit
    assert "an older person" not in implicit
    # the gender study's prompt for the same row is untouched by the age spec
    assert "a man who works as" in build_prompt({**older, "gender": "male"}, "gender",
                                                "contextual-single-explicit", 1.0)


@pytest.mark.parametrize("text,group", [
    ("A 67-year-old nurse, she retired from the ward last spring.", "older"),
    ("In her early twenties, Emma is a young architect.", "young"),
    ("The middle-aged dentist, in his fifties, runs the clinic.", "middle-aged"),
    ("A senior architect and a junior colleague design a library.", None),   # career, not age
    ("A young nurse and an elderly patient.", None),                          # a tie
])
def test_infer_age(text, group):
    assert infer_age(text) == group


def test_parser_keeps_age_rows_by_their_cue_and_drops_those_without():
    row = {"name": "Emma", "gender": "female", "culture": "english", "age": "older",
           "occupation": "nurse", "generated_text": ""}
    shows = "She is an elderly nurse who has cared for patients on the ward for decades."
    hidden = "The nurse cares for patients on the ward every night and trains new staff."
    assert postprocess({**row, "generated_text": shows}, social_bias="age",
                       neutral=False)["drop_reason"] == ""
    assert postprocess({**row, "generated_text": hidden}, social_bias="age",
                       neutral=False)["drop_reason"] == "missing_group_cue"
    neutral = postprocess({**row, "name": "", "generated_text": shows}, social_bias="age",
                          neutral=True)
    assert neutral["drop_reason"] == "" and neutral["group"] == "older"


def test_balance_table_has_the_age_groups():
    import pandas as pd
    frame = pd.DataFrame({"occupation": ["nurse", "nurse", "architect"],
                          "group": ["young", "older", "older"]})
    table = balance_table(frame, "age")
    assert list(table.columns) == ["occupation", "young", "middle-aged", "older", "total"]
    assert expected_groups("gender") == ["male", "female"]


def test_a_task_with_items_per_social_bias_is_refused_in_a_study_it_has_no_items_for():
    """salary_recommendation builds its bios per study (gender, culture): an age study naming it
    stops in pre-flight with the task named, before any work; tasks with the same items in every
    study (occupation_classification, bbq) run in an age study."""
    from bias.errors import PreflightError
    from evaluation.tasks import TASKS
    from evaluation.tasks.salary_recommendation import DESIGNS
    from ray_jobs.preflight import preflight
    assert set(DESIGNS) == set(TASKS["salary_recommendation"].social_biases)
    base = dict(name="t", social_bias="age", bias_types=["neutral"], ratios=[0.0],
                model={"name": "offline:smollm2-135m-instruct"},
                analyses={"distribution": False})
    cfg = ExperimentConfig(**base, evaluation={"tasks": ["occupation_classification",
                                                         "salary_recommendation"]})
    with pytest.raises(PreflightError, match="salary_recommendation has no items for a study "
                                             "of age .*gender, culture"):
        preflight(cfg, None, local=False)
    ok = ExperimentConfig(**base, evaluation={"tasks": ["occupation_classification", "bbq"]})
    assert preflight(ok, None, local=False).skipped == {}
