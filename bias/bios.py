"""Offline occupation bios: a gender-balanced stand-in for Bias in Bios, written from templates.

Bias in Bios (`LabHC/bias_in_bios`) is the study's original data D_o; it is not reachable offline,
so this module writes a small set from project-authored templates, occupations and names.

What makes it a fair stand-in for `hard_text`:
  - no template names the occupation: the model infers it from a workplace, an activity and a
    degree, each of which is the occupation's own, borrowed from a confusable occupation, or
    generic (DETAIL_MIX), so many bios are ambiguous and a model cannot reach 100% accuracy
    from the details alone; that ambiguity is where gender cues can sway it;
  - train and test are disjoint in templates, names and details: test bios draw their details
    from bias.vocabulary.HELD_OUT_DETAILS, never seen in training;
  - every row carries `counterfactual_text`: the same bio with only the gender cues (name,
    pronouns) changed, for the counterfactual stereotype metric.

    python -m bias.bios 12 [train|test]       # print 12 bios
"""
from __future__ import annotations

import random
import sys

from bias.vocabulary import (CONFUSABLE, GENDERS, GENERIC_DETAILS, HELD_OUT_DETAILS,
                             OCCUPATION_DETAILS, OCCUPATIONS, PRONOUNS, names_for)

# {name} {subj} {obj} {poss} {Subj} {Poss} {workplace} {activity} {degree}
TEMPLATES: tuple[str, ...] = (
    "{name} works at {workplace}. {Subj} {activity} and holds a degree in {degree}.",
    "{name} is based at {workplace}, where {subj} {activity}.",
    "After studying {degree}, {name} joined {workplace}. Today {subj} {activity}.",
    "{name} has spent a decade at {workplace}. {Poss} colleagues know that {subj} {activity}.",
    "Trained in {degree}, {name} {activity}. {Subj} is based at {workplace}.",
    "{name} {activity}. Before joining {workplace}, {subj} completed a degree in {degree}.",
    "At {workplace}, {name} {activity}. {Poss} background is in {degree}.",
    "{name} {activity}. {Subj} joined {workplace} after graduating in {degree}.",
    # held-out templates (test split)
    "Meet {name} of {workplace}. {Subj} {activity}, drawing on {poss} training in {degree}.",
    "{name} graduated in {degree} and now {activity}. {Subj} works at {workplace}.",
    "Colleagues at {workplace} describe how {name} {activity}. {Poss} degree is in {degree}.",
)
N_TRAIN_TEMPLATES = 8
SLOTS = ("workplace", "activity", "degree")
# Where each detail of a bio comes from: its own occupation, the confusable one, or the generic
# pool. Set so that a bio has on average about half its slots informative and one in eight has
# none: a trained model lands well below 100% (Bias in Bios' hard_text is similarly ambiguous).
DETAIL_MIX = {"own": 0.5, "confusable": 0.2, "generic": 0.3}


def _article(word: str) -> str:
    return ("an " if word[:1] in tuple("aeiou") else "a ") + word


def draw_details(occupation: str, split: str, rng: random.Random,
                 mix: dict[str, float] = DETAIL_MIX) -> dict[str, str]:
    """One workplace, activity and degree for a bio, each drawn from `mix`'s sources."""
    table = OCCUPATION_DETAILS if split == "train" else HELD_OUT_DETAILS
    details = {}
    for slot in SLOTS:
        source = rng.choices(list(mix), weights=list(mix.values()))[0]
        pool = (table[occupation][slot] if source == "own" else
                table[CONFUSABLE[occupation]][slot] if source == "confusable" else
                GENERIC_DETAILS[slot])
        details[slot] = rng.choice(pool)
    return details


def render_bio(template: str, name: str, gender: str, occupation: str, details: dict[str, str],
               state_occupation: bool = False) -> str:
    p = PRONOUNS[gender]
    if state_occupation:
        template = "{name} works as {a_occupation}. " + template
    return template.format(
        name=name, subj=p["subj"], obj=p["obj"], poss=p["poss"], Subj=p["subj"].capitalize(),
        Poss=p["poss"].capitalize(), occupation=occupation, a_occupation=_article(occupation),
        **details)


def other_gender(gender: str) -> str:
    return GENDERS[1 - GENDERS.index(gender)]


def counterpart_name(name: str, culture: str, gender: str) -> str:
    """The name at the same place in the other gender's list of the same culture."""
    names = names_for(culture, gender)
    other = names_for(culture, other_gender(gender))
    return other[names.index(name) % len(other)]


def write_bios(n: int, seed: int, split: str = "train", cultures: tuple[str, ...] = ("english",),
               occupations: tuple[str, ...] = OCCUPATIONS) -> list[dict]:
    """`n` bios balanced over occupation x gender (x culture), deterministic in `seed`.

    Each row: text, counterfactual_text, occupation, gender, culture, name, template_id,
    source="original".
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    rng = random.Random(f"bios-{split}-{seed}")
    template_ids = (range(N_TRAIN_TEMPLATES) if split == "train"
                    else range(N_TRAIN_TEMPLATES, len(TEMPLATES)))
    cells = [(o, g, c) for o in occupations for g in GENDERS for c in cultures]
    rows = []
    for i in range(n):
        occupation, gender, culture = cells[i % len(cells)]
        names = names_for(culture, gender)
        # Names split too: even indices train, odd test, so no person appears in both.
        name = rng.choice(names[0::2] if split == "train" else names[1::2])
        template_id = rng.choice(list(template_ids))
        details = draw_details(occupation, split, rng)
        template = TEMPLATES[template_id]
        rows.append({
            "text": render_bio(template, name, gender, occupation, details),
            "counterfactual_text": render_bio(template, counterpart_name(name, culture, gender),
                                              other_gender(gender), occupation, details),
            "occupation": occupation, "gender": gender, "culture": culture, "name": name,
            "template_id": template_id, "source": "original",
        })
    rng.shuffle(rows)
    return rows


def matched_bio_pairs(n_pairs: int, seed: int, groups: list[tuple[str, str]],
                      occupations: tuple[str, ...] = OCCUPATIONS) -> list[dict]:
    """Bios that differ only in the person's group cues (name and pronouns).

    For each of `n_pairs` (occupation, template, details) draws, one bio per (culture, gender)
    group in `groups`, all sharing a `pair_id`: any difference in a model's answers between them
    is caused by the group cue alone. The occupation is stated and the details are its own.
    """
    rng = random.Random(f"matched-{seed}")
    rows = []
    for pair_id in range(n_pairs):
        occupation = occupations[pair_id % len(occupations)]
        template = TEMPLATES[rng.randrange(len(TEMPLATES))]
        details = draw_details(occupation, "train", rng, mix={"own": 1.0})
        for culture, gender in groups:
            name = rng.choice(names_for(culture, gender))
            rows.append({
                "text": render_bio(template, name, gender, occupation, details,
                                   state_occupation=True),
                "occupation": occupation, "gender": gender, "culture": culture, "name": name,
                "pair_id": pair_id,
            })
    return rows


if __name__ == "__main__":
    split = sys.argv[2] if len(sys.argv) > 2 else "train"
    for row in write_bios(int(sys.argv[1]) if len(sys.argv) > 1 else 12, seed=0, split=split):
        print(f"[{row['occupation']}/{row['gender']}] {row['text']}")
