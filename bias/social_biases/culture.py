"""Social bias `culture`: four cultures, read off first names and culture words (nationalities,
places, languages).

    python -m bias.social_biases     # lists every social bias
"""
from __future__ import annotations

from bias.social_biases import SocialBias, article
from bias.vocabulary import CULTURE_ADJECTIVE, CULTURE_WORDS, CULTURES, infer_culture, word_pattern


def _shows_culture(text: str, row: dict) -> bool:
    words = CULTURE_WORDS.get(row.get("culture", ""), ())
    return bool(words) and word_pattern(tuple(words)).search(text) is not None


def _person(row: dict) -> tuple[str, str]:
    adjective = CULTURE_ADJECTIVE[row["culture"]]
    return f"{article(adjective)} person", f"{adjective} people"


SOCIAL_BIAS = SocialBias(
    name="culture", groups=CULTURES, seed_field="culture", infer=infer_culture,
    shows_group=_shows_culture, person=_person,
    bbq_categories=("Nationality", "Race_ethnicity", "Religion"),
    cues=word_pattern(tuple(sorted({w for words in CULTURE_WORDS.values() for w in words}))),
    neutral=lambda cue: "local")
