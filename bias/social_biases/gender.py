"""Social bias `gender`: male and female, read off pronouns and gendered nouns.

    python -m bias.social_biases     # lists every social bias
"""
from __future__ import annotations

from bias.social_biases import SocialBias, article, match_case
from bias.vocabulary import GENDERED_WORDS, GENDERS, PRONOUNS, infer_gender, word_pattern

NEUTRAL_WORDS = {
    "he": "they", "she": "they", "him": "them", "his": "their", "her": "their", "hers": "theirs",
    "himself": "themself", "herself": "themself", "man": "person", "woman": "person",
    "men": "people", "women": "people", "male": "", "female": "", "boy": "child", "girl": "child",
    "boys": "children", "girls": "children", "father": "parent", "mother": "parent",
    "son": "child", "daughter": "child", "husband": "spouse", "wife": "spouse",
    "brother": "sibling", "sister": "sibling", "mr": "Mx", "mrs": "Mx", "ms": "Mx", "miss": "Mx",
    "gentleman": "person", "lady": "person", "masculine": "", "feminine": "", "king": "monarch",
    "queen": "monarch", "uncle": "relative", "aunt": "relative",
}


def _person(row: dict) -> tuple[str, str]:
    pronouns = PRONOUNS[row["gender"]]
    return article(pronouns["noun"]), pronouns["plural"]


SOCIAL_BIAS = SocialBias(
    name="gender", groups=GENDERS, seed_field="gender", infer=infer_gender,
    shows_group=lambda text, row: infer_gender(text) == row["gender"],
    person=_person, bbq_categories=("Gender_identity",),
    cues=word_pattern(tuple(sorted({w for words in GENDERED_WORDS.values() for w in words}))),
    neutral=lambda cue: match_case(cue, NEUTRAL_WORDS.get(cue.lower(), "")))
