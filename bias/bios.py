"""Offline occupation bios: a gender-balanced stand-in for Bias in Bios, written from templates.

Bias in Bios (`LabHC/bias_in_bios`) is the study's original data D_o; it is not reachable offline,
so this module writes a small set from project-authored templates, occupations and names. Train
and test splits use disjoint templates and names so evaluation never sees a training sentence.

    python -m bias.bios 12        # print 12 training bios
"""
from __future__ import annotations

import random
import sys

from bias.vocabulary import GENDERS, OCCUPATION_DETAILS, OCCUPATIONS, PRONOUNS, names_for

# {name} {subj} {obj} {poss} {Subj} {Poss} {workplace} {activity} {degree}
# Like Bias in Bios' `hard_text`, no template names the occupation: the model must infer it from
# workplace, activity and training, which is where gender cues can sway it.
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


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def render_bio(template: str, name: str, gender: str, occupation: str, rng: random.Random,
               state_occupation: bool = False) -> str:
    details = OCCUPATION_DETAILS[occupation]
    p = PRONOUNS[gender]
    if state_occupation:
        template = "{name} works as {a_occupation}. " + template
    return template.format(
        name=name, subj=p["subj"], obj=p["obj"], poss=p["poss"], Subj=p["subj"].capitalize(),
        Poss=p["poss"].capitalize(), occupation=occupation, a_occupation=_article(occupation),
        workplace=rng.choice(details["workplace"]), activity=rng.choice(details["activity"]),
        degree=rng.choice(details["degree"]))


def write_bios(n: int, seed: int, split: str = "train", cultures: tuple[str, ...] = ("english",),
               occupations: tuple[str, ...] = OCCUPATIONS) -> list[dict]:
    """`n` bios balanced over occupation x gender (x culture), deterministic in `seed`.

    Each row: text, occupation, gender, culture, name, template_id, source="original".
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
        rows.append({
            "text": render_bio(TEMPLATES[template_id], name, gender, occupation, rng),
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
    is caused by the group cue alone.
    """
    rng = random.Random(f"matched-{seed}")
    rows = []
    for pair_id in range(n_pairs):
        occupation = occupations[pair_id % len(occupations)]
        template = TEMPLATES[rng.randrange(len(TEMPLATES))]
        detail_seed = rng.random()
        for culture, gender in groups:
            name = rng.choice(names_for(culture, gender))
            rows.append({
                "text": render_bio(template, name, gender, occupation, random.Random(detail_seed),
                                   state_occupation=True),
                "occupation": occupation, "gender": gender, "culture": culture, "name": name,
                "pair_id": pair_id,
            })
    return rows


if __name__ == "__main__":
    for row in write_bios(int(sys.argv[1]) if len(sys.argv) > 1 else 12, seed=0):
        print(f"[{row['occupation']}/{row['gender']}] {row['text']}")
