"""Social bias `gender`: male and female, read off pronouns and gendered nouns.

    python -m bias.social_biases     # lists every social bias
"""
from __future__ import annotations

from bias.social_biases import SocialBias, article
from bias.vocabulary import GENDERS, PRONOUNS, infer_gender


def _person(row: dict) -> tuple[str, str]:
    pronouns = PRONOUNS[row["gender"]]
    return article(pronouns["noun"]), pronouns["plural"]


SOCIAL_BIAS = SocialBias(
    name="gender", groups=GENDERS, seed_field="gender", infer=infer_gender,
    shows_group=lambda text, row: infer_gender(text) == row["gender"],
    person=_person, bbq_categories=("Gender_identity",))
