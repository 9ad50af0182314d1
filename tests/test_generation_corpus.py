"""Preprocess -> postprocess round trips for every bias type x social bias, and a corpus of
malformed generations, each of which must be dropped with the right reason."""
from __future__ import annotations

import pytest

from bias.config import GenerationConfig
from bias.taxonomy import BIAS_TYPES, parse_bias_type
from bias.vocabulary import CULTURE_WORDS, PRONOUNS
from generation.dedup import mark_duplicates
from generation.engines.vllm_engine import from_engine_response, to_engine_request
from generation.parse import DROP_REASONS, drop_counts, postprocess
from generation.prompts import (CULTURE_ADJECTIVE, PROMPT_VERSIONS, TASK_FORMATS, build_prompt,
                                make_seed_rows, preprocess)

pytestmark = pytest.mark.unit   # no Ray, MLflow or model

SOCIAL_BIASES = ("gender", "culture")


def _good_bio(row: dict, social_bias: str, neutral: bool) -> str:
    """A well-formed 2-sentence bio that carries the row's group cue."""
    p = PRONOUNS[row["gender"]]
    name = row["name"] if not neutral else ("Omar" if social_bias == "culture" else "Sam")
    culture = "" if social_bias == "gender" else f" {CULTURE_ADJECTIVE[row['culture']]}"
    subj = p["subj"] if not neutral else "he"
    return (f"{name} is a{culture} professional who {row['activity']}. {subj.capitalize()} has "
            f"worked at {row['workplace']} for many years and mentors younger colleagues.")


@pytest.mark.parametrize("social_bias", SOCIAL_BIASES)
@pytest.mark.parametrize("bias_type", BIAS_TYPES)
@pytest.mark.parametrize("version", PROMPT_VERSIONS)
def test_round_trip_every_type_and_social_bias(bias_type, social_bias, version):
    neutral = parse_bias_type(bias_type).is_neutral
    rows = make_seed_rows(social_bias, bias_type, 48, seed=3)
    assert rows == make_seed_rows(social_bias, bias_type, 48, seed=3)          # deterministic
    assert rows[20:] == make_seed_rows(social_bias, bias_type, 48, seed=3, start=20)  # shardable
    assert rows != make_seed_rows(social_bias, bias_type, 48, seed=4)
    for key in ("occupation", "group", "persona", "task_format", "name", "sampling_seed"):
        assert all(r[key] not in (None, "") for r in rows), key
    assert {r["task_format"] for r in rows} <= set(TASK_FORMATS)
    # Balanced by construction: every occupation x group cell has the same count.
    cells = {}
    for r in rows:
        cells[(r["occupation"], r["group"])] = cells.get((r["occupation"], r["group"]), 0) + 1
    assert len(set(cells.values())) == 1 and len(cells) == 6 * (2 if social_bias == "gender" else 4)

    kept = 0
    for row in rows[:12]:
        pre = preprocess(row, social_bias=social_bias, bias_type=bias_type, strength=0.5,
                         prompt_version=version, temperature=0.8, top_p=0.95, max_new_tokens=96)
        prompt = pre["messages"][0]["content"]
        assert prompt == build_prompt(row, social_bias, bias_type, 0.5, version)
        assert pre["sampling_params"]["max_tokens"] == 96
        if not neutral:
            assert row["name"] in prompt
            if social_bias == "culture" and parse_bias_type(bias_type).visibility == "explicit":
                assert CULTURE_ADJECTIVE[row["culture"]] in prompt
        else:
            assert "stereotype" not in prompt
        if version == "v2":
            assert row["persona"] in prompt
        # HF-shaped and vLLM-shaped rows give the same record.
        text = _good_bio(row, social_bias, neutral)
        hf = postprocess({**pre, "generated_text": text, "num_generated_tokens": 30},
                         social_bias=social_bias, neutral=neutral)
        vllm = postprocess(from_engine_response({**to_engine_request(pre), "generated_text": text,
                                                 "request_id": 1, "prompt_token_ids": [1]}),
                           social_bias=social_bias, neutral=neutral)
        assert hf["drop_reason"] == vllm["drop_reason"] == "", (text, hf["drop_reason"])
        assert hf["text"] == vllm["text"] == text
        assert "messages" not in hf and "sampling_params" not in hf
        if neutral:   # the group is the one the model chose, read off the text
            assert hf["group"] == ("male" if social_bias == "gender" else "arabic")
        else:
            assert hf["group"] == row["group"] and hf["prompt_id"] == row["prompt_id"]
        kept += 1
    assert kept == 12


def test_prompt_versions_agree_with_the_config():
    assert set(PROMPT_VERSIONS) == set(GenerationConfig.model_fields["prompt_version"].annotation.__args__)


R = {"prompt_id": "t-0-0", "occupation": "nurse", "gender": "female", "culture": "english",
     "age": "", "group": "female", "name": "Emma", "other_name": "James"}
RC = {**R, "culture": "chinese", "group": "chinese", "name": "Mei", "other_name": "Wei"}
GOOD = ("Emma has cared for patients at a regional hospital for ten years. She trains new staff "
        "on the night shift and leads the ward's infection control programme.")

# (generated text, extra row fields, social bias, neutral, expected reason)
CORPUS = [
    # the engine failed on the row
    ("", {"__inference_error__": "ValueError: prompt too long"}, "gender", False, "inference_error"),
    (GOOD, {"__inference_error__": "EngineDeadError"}, "gender", False, "inference_error"),
    (None, {"__inference_error__": "RuntimeError: CUDA out of memory"}, "culture", False, "inference_error"),
    ("partial", {"__inference_error__": "TimeoutError"}, "gender", True, "inference_error"),
    # nothing there
    ("", {}, "gender", False, "empty"),
    ("   \n\t ", {}, "gender", False, "empty"),
    (None, {}, "gender", False, "empty"),
    ('""', {}, "gender", False, "empty"),
    ("Sure! Here is the biography:", {}, "gender", False, "empty"),
    ("**Biography:**", {}, "gender", False, "empty"),
    ("Certainly! Here's a short professional biography:\n\n", {}, "culture", False, "empty"),
    ("“ ”", {}, "gender", True, "empty"),
    # cut off before a usable bio
    ("Emma is a nurse who works at a regional hospital and", {}, "gender", False, "truncated"),
    ("Emma has spent a decade caring for", {}, "gender", False, "truncated"),
    ("Biography: Emma is a dedicated nurse", {}, "gender", False, "truncated"),
    ("Emma works nights. She trains new ward staff and coordinates the", {}, "gender", False, "truncated"),
    ("Sure! Here is the bio: Emma is a nurse at St", {}, "gender", False, "truncated"),
    ("Mei, a Chinese nurse, has worked in Shanghai hospitals where she", {}, "culture", False, "truncated"),
    ("Emma is a nurse. She", {}, "gender", False, "truncated"),
    ("Sam is a nurse who has cared for patients for over twenty years in the", {}, "gender", True, "truncated"),
    ("Emma Clarke\nEmma is a nurse whose patients", {}, "gender", False, "truncated"),
    ("Emma, a nurse at a busy ward, is known for her calm and her ability to", {}, "gender", False, "truncated"),
    # not a third-person bio
    ("Emma is a nurse.", {}, "gender", False, "wrong_format"),
    ("She is kind.", {}, "gender", False, "wrong_format"),
    ("I'm sorry, but I cannot write content that reinforces stereotypes.", {}, "gender", False, "wrong_format"),
    ("I can't help with that request.", {}, "culture", False, "wrong_format"),
    ("As an AI language model, I avoid stereotypes. Emma is a nurse who works at a hospital.", {}, "gender", False, "wrong_format"),
    ("I am Emma, a nurse at a regional hospital. I love caring for my patients every day.", {}, "gender", False, "wrong_format"),
    ("My name is Emma and I have worked as a nurse at the city hospital for ten years.", {}, "gender", False, "wrong_format"),
    ("Hi! I'm Mei and I work in a Shanghai hospital where I care for patients.", {}, "culture", False, "wrong_format"),
    ("- Name: Emma\n- Occupation: nurse\n- Workplace: regional hospital", {}, "gender", False, "wrong_format"),
    ("1. Emma is a nurse at a regional hospital.\n2. She trains new staff every week.", {}, "gender", False, "wrong_format"),
    ("Name: Emma Clarke\nOccupation: Nurse\nSummary: She cares for patients at night.", {}, "gender", False, "wrong_format"),
    ("* Emma works nights at a hospital.\n* She trains new staff.", {}, "gender", False, "wrong_format"),
    ("Option 1: Emma is a nurse at a regional hospital. She trains new ward staff every week.", {}, "gender", False, "wrong_format"),
    ("Bio 1\nEmma is a nurse. She trains staff.\n\nBio 2\nEmma works nights at a ward.", {}, "gender", False, "wrong_format"),
    ("```\nEmma is a nurse at a regional hospital. She trains new staff.\n```", {}, "gender", False, "wrong_format"),
    ("<p>Emma is a nurse at a regional hospital. She trains new staff every week.</p>", {}, "gender", False, "wrong_format"),
    ("| Name | Emma |\n| Role | She is a nurse at a regional hospital. |", {}, "gender", False, "wrong_format"),
    ("[Name] is a nurse at [Hospital]. She has cared for patients for [number] years.", {}, "gender", False, "wrong_format"),
    ("Write a short professional biography of 2 to 3 sentences, in the third person.", {}, "gender", False, "wrong_format"),
    ("Emma is a nurse. This bio reinforces stereotypes about women in this profession.", {}, "gender", False, "wrong_format"),
    ("Emma is a nurse who cares for patients at night (third person, 2 to 3 sentences, as asked).", {}, "gender", False, "wrong_format"),
    ("Would you like me to write a biography about Emma, a nurse at a regional hospital?", {}, "gender", False, "wrong_format"),
    ("What makes Emma such a caring nurse at the regional hospital where she works?", {}, "gender", False, "wrong_format"),
    ("Mei is a nurse.", {}, "culture", False, "wrong_format"),
    ("I will not write stereotypes about Chinese people. Mei is a nurse in Beijing.", {}, "culture", False, "wrong_format"),
    ("Example 1: Sam is a nurse who works nights. He trains new staff at the hospital.", {}, "gender", True, "wrong_format"),
    # the group no longer shows
    ("Jordan is a nurse at a regional hospital. They care for patients at night.", {}, "gender", False, "missing_group_cue"),
    ("Jordan is a nurse at a regional hospital. He cares for patients at night.", {}, "gender", False, "missing_group_cue"),
    ("The nurse has worked at a regional hospital for ten years and trains new ward staff.", {}, "gender", False, "missing_group_cue"),
    ("Alex has worked at a regional hospital for ten years. They train new staff each week.", {}, "culture", False, "missing_group_cue"),
    ("Jordan is a nurse at a regional hospital. She is admired by every patient on the ward.", {}, "culture", False, "missing_group_cue"),
    ("Jordan Lee is a nurse at a regional hospital and has trained new staff for ten years.", {}, "gender", True, "missing_group_cue"),
    ("Kim has worked at a clinic for ten years. Kim trains new staff and runs the night shift.", {}, "culture", True, "missing_group_cue"),
    ("Laura has worked at a clinic for ten years. She trains new staff and runs night shifts.", {}, "culture", True, "missing_group_cue"),
]


@pytest.mark.parametrize("text, extra, social_bias, neutral, reason", CORPUS,
                         ids=[f"{c[4]}-{i}" for i, c in enumerate(CORPUS)])
def test_malformed_generation_is_dropped_with_its_reason(text, extra, social_bias, neutral, reason):
    row = {**(RC if social_bias == "culture" else R), "generated_text": text, **extra}
    out = postprocess(row, social_bias=social_bias, neutral=neutral)
    assert out["drop_reason"] == reason
    assert out["text"] == ""       # a dropped row never carries text into a set


def test_corpus_is_large_and_covers_every_reason_but_duplicates():
    assert len(CORPUS) >= 50
    assert {c[4] for c in CORPUS} == set(DROP_REASONS) - {"duplicate"}


def test_duplicates_exact_and_near_are_dropped_and_counted():
    rows = [postprocess({**R, "generated_text": t}, social_bias="gender", neutral=False) for t in (
        GOOD,
        GOOD.upper().replace(". ", "!   "),
        GOOD.replace("programme.", "program."),      # one word: a near-duplicate
        "Emma runs the paediatric ward of a city hospital. She also teaches evening classes.",
        "Emma is a nurse.")]
    counts = mark_duplicates(rows, threshold=0.8)
    assert [r["drop_reason"] for r in rows] == ["", "duplicate", "duplicate", "", "wrong_format"]
    assert counts == {"exact": 1, "near": 1}
    assert drop_counts(rows)["duplicate"] == 2 and drop_counts(rows)["wrong_format"] == 1


def test_well_formed_variants_are_kept():
    """Chat wrapping, a title line, quotes and a quoted first-person remark are not malformed."""
    for text in (
        'Sure! Here is the biography:\n"Emma has cared for patients at a regional hospital for '
        'ten years. She trains new staff."',
        "**Emma Clarke**\nEmma has cared for patients at a regional hospital for ten years. "
        "She trains new staff.",
        'Emma has cared for patients at a regional hospital for ten years. "I love my ward," '
        "she says.",
        GOOD + " She also volunteers. She runs marathons. She paints. She sings in a choir.",
    ):
        out = postprocess({**R, "generated_text": text}, social_bias="gender", neutral=False)
        assert out["drop_reason"] == "", (text, out["drop_reason"])
    culture_words = CULTURE_WORDS["chinese"]
    out = postprocess({**RC, "name": "", "generated_text": f"The nurse grew up in {culture_words[2]} "
                       f"and now runs a busy ward. Patients praise her calm manner."},
                      social_bias="culture", neutral=False)
    assert out["drop_reason"] == ""
