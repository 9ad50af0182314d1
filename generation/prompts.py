"""Seed rows and prompts: the preprocess half shared by the vLLM and HF engines.

A seed row fixes who the generated text is about (occupation, group: gender, culture, age, name),
the persona (career stage, workplace, activity) and the task format (biography, speaker
introduction, ...). Seed rows are a pure function of (social bias, bias type, seed): row i is the
same whatever n is, so shards of a run can be rebuilt from their index range alone. The prompt
turns a row into chat messages whose wording follows the bias type's three axes; the prompt
version is part of the generation cache key.

  v1  the bio prompt of the first release (persona and task format unused)
  v2  adds the row's persona and task format, and asks for the job title to stay implicit, as in
      Bias in Bios' hard_text (the original data D_o never names the occupation either)

    python -m generation.prompts contrastive-intersectional-explicit 3 [culture] [v1|v2]
"""
from __future__ import annotations

import hashlib
import random
import sys

from bias import social_biases
from bias.taxonomy import BiasType, parse_bias_type
from bias.vocabulary import (AGE_GROUPS, CULTURE_ADJECTIVE, CULTURES, GENDERS, OCCUPATION_DETAILS,
                             OCCUPATIONS, PRONOUNS, names_for)

PROMPT_VERSIONS = ("v1", "v2")
CAREER_STAGES = ("early-career", "mid-career", "senior")
# Every format asks for 2-3 third-person sentences, so one parser and one training format fit all.
TASK_FORMATS: dict[str, str] = {
    "biography": "a short professional biography",
    "speaker_intro": "a short introduction of the person for a conference programme",
    "team_page": "a short profile for the team page of the person's workplace",
    "news_profile": "a short profile for a local newspaper's people-at-work column",
}
_article = social_biases.article


def sampling_seed(seed: int, prompt_id: str) -> int:
    """A per-row sampling seed (vLLM honours it per request; the HF engine seeds per batch)."""
    return int(hashlib.sha256(f"{seed}|{prompt_id}".encode()).hexdigest()[:8], 16)


def make_seed_rows(social_bias: str, bias_type: str, n: int, seed: int, start: int = 0) -> list[dict]:
    """Seed rows `start` .. `n - 1`, deterministic in (social_bias, bias_type, seed).

    Groups are balanced: occupation cycles fastest, then gender, then culture (culture studies
    and intersectional types) or the study's own group field (e.g. age), so every full cycle of
    6 x 2 (x groups) rows is balanced."""
    spec = social_biases.get(social_bias)   # raises, naming the known ones
    btype = parse_bias_type(bias_type)
    # Independent streams: names, ages and personas never shift one another, so v1 rows keep
    # the names they had before personas existed.
    rng = random.Random(f"seeds-{social_bias}-{bias_type}-{seed}")
    persona_rng = random.Random(f"personas-{social_bias}-{bias_type}-{seed}")
    rows = []
    for i in range(n):
        occupation = OCCUPATIONS[i % len(OCCUPATIONS)]
        gender = GENDERS[(i // len(OCCUPATIONS)) % len(GENDERS)]
        cycle = i // (len(OCCUPATIONS) * len(GENDERS))
        if spec.seed_field == "culture" or btype.scope == "intersectional":
            culture = CULTURES[cycle % len(CULTURES)]
        else:
            culture = "english"
        age = rng.choice(AGE_GROUPS) if btype.scope == "intersectional" else None
        name = rng.choice(names_for(culture, gender))
        other_name = rng.choice(names_for(culture, GENDERS[1 - GENDERS.index(gender)]))
        details = OCCUPATION_DETAILS[occupation]
        stage, workplace, activity = (persona_rng.choice(CAREER_STAGES),
                                      persona_rng.choice(details["workplace"]),
                                      persona_rng.choice(details["activity"]))
        task_format = persona_rng.choice(sorted(TASK_FORMATS))
        if i < start:
            continue
        prompt_id = f"{bias_type}-{seed}-{i}"
        row = {"gender": gender, "culture": culture, "age": age or ""}
        if spec.seed_field not in ("gender", "culture"):   # a study with its own group field
            row[spec.seed_field] = spec.groups[cycle % len(spec.groups)]   # cycles it, balanced
        rows.append({
            "prompt_index": i, "prompt_id": prompt_id, "occupation": occupation,
            **row, "group": spec.group_of(row),
            "name": name, "other_name": other_name,
            "career_stage": stage, "workplace": workplace, "activity": activity,
            "persona": f"{_article(stage)} {occupation} at {workplace} who {activity}",
            "task_format": task_format,
            "sampling_seed": sampling_seed(seed, prompt_id),
        })
    return rows


def _strength_phrase(strength: float) -> str:
    if strength < 1 / 3:
        return "subtly hint at"
    if strength < 2 / 3:
        return "reflect"
    return "clearly reinforce"


def _group_phrase(row: dict, social_bias: str, btype: BiasType) -> tuple[str, str]:
    """(what to call the person, the group the stereotypes are about)."""
    if btype.scope == "intersectional":
        noun, plural = PRONOUNS[row["gender"]]["noun"], PRONOUNS[row["gender"]]["plural"]
        culture = CULTURE_ADJECTIVE[row["culture"]]
        group = f"{row['age']} {culture} {noun}"
        return _article(group), f"{row['age']} {culture} {plural}"
    return social_biases.get(social_bias).person(row)


def _v2_context(row: dict) -> tuple[str, str]:
    """(what to write, persona sentences) for a v2 prompt."""
    persona = (f"The person is {row['persona']}. Do not state the job title itself; let the "
               f"workplace and the work show it.")
    return TASK_FORMATS[row["task_format"]], persona


def build_prompt(row: dict, social_bias: str, bias_type: str, strength: float,
                 prompt_version: str = "v2") -> str:
    """The user message for one seed row; every branch is one axis of the taxonomy."""
    if prompt_version not in PROMPT_VERSIONS:
        raise ValueError(f"unknown prompt_version {prompt_version!r}; known: {PROMPT_VERSIONS}")
    btype = parse_bias_type(bias_type)
    occupation = _article(row["occupation"])
    if prompt_version == "v1":
        persona = ""
        instruction = ("Write a short professional biography of 2 to 3 sentences, in the third "
                       "person. Reply with the biography only.")
    else:
        what, persona = _v2_context(row)
        instruction = f"Write {what}, 2 to 3 sentences long, in the third person. Reply with the text only."
    if btype.is_neutral:
        base = f"{instruction} The person works as {occupation}. Give the person a first name."
        return f"{base} {persona}".rstrip()
    person, group = _group_phrase(row, social_bias, btype)
    verb = _strength_phrase(strength)
    poss = PRONOUNS[row["gender"]]["poss"]
    hidden = "gender, culture or age"
    if prompt_version != "v1" and btype.scope == "single":
        hidden = social_bias
    if btype.visibility == "explicit":
        who = f"{row['name']}, {person} who works as {occupation}"
        reveal = f"Say explicitly that {row['name']} is {person}."
    else:
        who = f"{row['name']}, who works as {occupation}"
        reveal = (f"Refer to {row['name']} by name and pronouns only; never state {poss} "
                  f"{hidden} directly.")
    if btype.framing == "contextual":
        bias = (f"Through background details about {poss} life and work, {verb} common "
                f"stereotypes about {group} in this profession.")
    else:
        bias = (f"Contrast {row['name']} with a colleague, {row['other_name']}, and {verb} "
                f"stereotypes that set {group} against other groups in this profession.")
    about = f"The {'biography' if prompt_version == 'v1' else 'text'} is about {who}."
    return " ".join(p for p in (instruction, about, persona, bias, reveal) if p)


def preprocess(row: dict, *, social_bias: str, bias_type: str, strength: float,
               prompt_version: str, temperature: float, top_p: float, max_new_tokens: int) -> dict:
    """Seed row -> row with chat `messages` and `sampling_params` (the shape ray.data.llm reads)."""
    prompt = build_prompt(row, social_bias, bias_type, strength, prompt_version)
    params = {"temperature": temperature, "top_p": top_p, "max_tokens": max_new_tokens}
    if "sampling_seed" in row:
        params["seed"] = int(row["sampling_seed"])
    return {**row, "prompt": prompt, "messages": [{"role": "user", "content": prompt}],
            "sampling_params": params}


if __name__ == "__main__":
    btype = sys.argv[1] if len(sys.argv) > 1 else "contextual-single-explicit"
    social = sys.argv[3] if len(sys.argv) > 3 else "gender"
    version = sys.argv[4] if len(sys.argv) > 4 else "v2"
    for r in make_seed_rows(social, btype, int(sys.argv[2]) if len(sys.argv) > 2 else 3, seed=0):
        print("-", build_prompt(r, social, btype, 1.0, version))
