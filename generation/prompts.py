"""Seed rows and prompts: the preprocess half shared by the vLLM and HF engines.

A seed row fixes who the generated bio is about (occupation, gender, culture, age, name); the
prompt turns it into chat messages whose wording follows the bias type's three axes.

    python -m generation.prompts contrastive-intersectional-explicit 3
"""
from __future__ import annotations

import random
import sys

from bias.taxonomy import BiasType, parse_bias_type
from bias.vocabulary import AGE_GROUPS, CULTURES, GENDERS, OCCUPATIONS, PRONOUNS, names_for

CULTURE_ADJECTIVE = {"arabic": "Arab", "chinese": "Chinese", "portuguese": "Portuguese",
                     "spanish": "Spanish", "english": "English"}
PROMPT_VERSIONS = ("v1",)


def _article(word: str) -> str:
    return ("an " if word[0].lower() in "aeiou" else "a ") + word


def make_seed_rows(social_bias: str, bias_type: str, n: int, seed: int) -> list[dict]:
    """`n` seed rows, deterministic in (social_bias, bias_type, seed), balanced over groups."""
    btype = parse_bias_type(bias_type)
    rng = random.Random(f"seeds-{social_bias}-{bias_type}-{seed}")
    rows = []
    for i in range(n):
        occupation = OCCUPATIONS[i % len(OCCUPATIONS)]
        gender = GENDERS[(i // len(OCCUPATIONS)) % len(GENDERS)]
        if social_bias == "culture" or btype.scope == "intersectional":
            culture = CULTURES[(i // (len(OCCUPATIONS) * len(GENDERS))) % len(CULTURES)]
        else:
            culture = "english"
        age = rng.choice(AGE_GROUPS) if btype.scope == "intersectional" else None
        rows.append({
            "prompt_id": f"{bias_type}-{seed}-{i}", "occupation": occupation, "gender": gender,
            "culture": culture, "age": age or "", "name": rng.choice(names_for(culture, gender)),
            "other_name": rng.choice(names_for(culture, GENDERS[1 - GENDERS.index(gender)])),
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
    noun, plural = PRONOUNS[row["gender"]]["noun"], PRONOUNS[row["gender"]]["plural"]
    culture = CULTURE_ADJECTIVE[row["culture"]]
    if btype.scope == "intersectional":
        group = f"{row['age']} {culture} {noun}"
        return _article(group), f"{row['age']} {culture} {plural}"
    if social_bias == "culture":
        return f"{_article(culture)} person", f"{culture} people"
    return _article(noun), plural


def build_prompt(row: dict, social_bias: str, bias_type: str, strength: float,
                 prompt_version: str = "v1") -> str:
    """The user message for one seed row; every branch is one axis of the taxonomy."""
    if prompt_version not in PROMPT_VERSIONS:
        raise ValueError(f"unknown prompt_version {prompt_version!r}; known: {PROMPT_VERSIONS}")
    btype = parse_bias_type(bias_type)
    occupation = _article(row["occupation"])
    instruction = ("Write a short professional biography of 2 to 3 sentences, in the third person. "
                   "Reply with the biography only.")
    if btype.is_neutral:
        return f"{instruction} The person works as {occupation}. Give the person a first name."
    person, group = _group_phrase(row, social_bias, btype)
    verb = _strength_phrase(strength)
    poss = PRONOUNS[row["gender"]]["poss"]
    if btype.visibility == "explicit":
        who = f"{row['name']}, {person} who works as {occupation}"
        reveal = f"Say explicitly that {row['name']} is {person}."
    else:
        who = f"{row['name']}, who works as {occupation}"
        reveal = (f"Refer to {row['name']} by name and pronouns only; never state {poss} "
                  f"gender, culture or age directly.")
    if btype.framing == "contextual":
        bias = (f"Through background details about {poss} life and work, {verb} common "
                f"stereotypes about {group} in this profession.")
    else:
        bias = (f"Contrast {row['name']} with a colleague, {row['other_name']}, and {verb} "
                f"stereotypes that set {group} against other groups in this profession.")
    return f"{instruction} The biography is about {who}. {bias} {reveal}"


def preprocess(row: dict, *, social_bias: str, bias_type: str, strength: float,
               prompt_version: str, temperature: float, top_p: float, max_new_tokens: int) -> dict:
    """Seed row -> row with chat `messages` and `sampling_params` (the shape ray.data.llm reads)."""
    prompt = build_prompt(row, social_bias, bias_type, strength, prompt_version)
    return {**row, "prompt": prompt,
            "messages": [{"role": "user", "content": prompt}],
            "sampling_params": {"temperature": temperature, "top_p": top_p,
                                "max_tokens": max_new_tokens}}


if __name__ == "__main__":
    btype = sys.argv[1] if len(sys.argv) > 1 else "contextual-single-explicit"
    for r in make_seed_rows("gender", btype, int(sys.argv[2]) if len(sys.argv) > 2 else 3, seed=0):
        print("-", build_prompt(r, "gender", btype, 1.0))
