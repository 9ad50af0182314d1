"""BBQ questions built from the BBQ templates, for the categories the offline data lacks.

The offline copy of BBQ carries the generated questions of six categories only; gender identity,
race/ethnicity and SES exist as the authors' template files (`<data dir>/bbq/templates`). This
module fills those templates the way nyu-mll/BBQ's generator does, in a smaller sample: each
template gets a few (stereotyped person, other person) pairs, in both name orders, each as four
questions (ambiguous / disambiguated x negative / non-negative question). Rows have the same
fields as the published `data/<Category>.jsonl`, so `bbq.to_item` reads both.

Simplifications against the reference generator, on purpose:
- one sampled filler per `{{WORD}}` slot and at most `PAIRS_PER_TEMPLATE` pairs per template
  (the reference enumerates all), so the set stays small enough for a smoke cell;
- race templates with proper names use the name lists' five ethnicities; templates whose
  stereotyped group has no name list (Native American, Roma, Jewish) use labels only;
- SES templates with proper names (2 of 38) are skipped.

    python -m evaluation.bbq_templates DATA_DIR     # prints the per-category counts
"""
from __future__ import annotations

import csv
import json
import random
import re
import sys
from pathlib import Path

CATEGORIES = ("Gender_identity", "Race_ethnicity", "SES")
PAIRS_PER_TEMPLATE = 2
UNKNOWN_ANSWERS = ("Can't be determined", "Not enough information", "Unknown", "Cannot answer",
                   "Not answerable", "Undetermined", "Not known", "Can't answer",
                   "Cannot be determined")
# The stereotyped-group labels of the race templates, as the proper-name lists spell them.
NAME_ETHNICITY = {"black": "Black", "african american": "Black", "hispanic": "Latino",
                  "latino": "Latino", "asian": "Asian", "middle eastern": "Arab", "arab": "Arab",
                  "white": "White", "caucasian": "White"}
GENDER_WORDS = {"man": "M", "boy": "M", "husband": "M", "male": "M",
                "woman": "F", "girl": "F", "wife": "F", "female": "F"}


def _template_rows(folder: Path, category: str) -> list[dict]:
    path = folder / f"new_templates - {category}.csv"
    with path.open(encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("Ambiguous_Context")]


def _vocabulary(folder: Path) -> tuple[list[dict], list[dict]]:
    with (folder / "vocabulary.csv").open(encoding="utf-8", newline="") as f:
        labels = list(csv.DictReader(f))
    with (folder / "vocabulary_proper_names.csv").open(encoding="utf-8", newline="") as f:
        names = list(csv.DictReader(f))
    return labels, names


def _slot_lists(spec: str) -> dict[str, list[str]]:
    """'WORD1: [a, b]; WORD2: [c]' (or '{{NAME1}}: [...]') -> {'WORD1': ['a', 'b'], ...}."""
    return {key: [v.strip() for v in values.split(",") if v.strip()]
            for key, values in re.findall(r"\{*(\w+)\}*:\s*\[([^\]]*)\]", spec or "")}


def _person_group(category: str, filler: str, info: str = "") -> str:
    """The group label written to `answer_info` for a filled-in person."""
    if info:
        return info
    if category == "Gender_identity":
        lowered = filler.lower()
        if "trans" in lowered.split() or lowered.startswith("trans"):
            return "trans"
        if lowered.startswith("cis"):
            return "nonTrans"
        for word, code in GENDER_WORDS.items():
            if word in lowered.split():
                return code
        return "nonTrans"   # "college student", "friend": the non-trans comparison person
    return filler


def _candidates(category: str, row: dict, stereotyped: set[str], labels: list[dict],
                names: list[dict]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]] | None:
    """((filler, group) of the stereotyped people, (filler, group) of the others), or None."""
    proper = row.get("Proper_nouns_only", "").strip().upper() == "TRUE"
    if category == "Gender_identity":
        if proper:
            pool = [(r["Name"], r["gender"]) for r in names if r["First_last"] == "first_only"]
        else:
            sub = row.get("Subcategory") or "adult"
            pool = [(r["Name"], GENDER_WORDS[r["Name"]]) for r in labels
                    if r["Category"] == "Gender_identity" and (r["SubCat"] or "adult") == sub]
        return ([p for p in pool if p[1].lower() in stereotyped],
                [p for p in pool if p[1].lower() not in stereotyped])
    if category == "Race_ethnicity":
        if proper:
            wanted = {NAME_ETHNICITY[g] for g in stereotyped if g in NAME_ETHNICITY}
            if not wanted:
                return None
            firsts = [r for r in names if r["First_last"] == "first"]
            lasts = {e: [r["Name"] for r in names if r["First_last"] == "last"
                         and r["ethnicity"] == e] for e in {r["ethnicity"] for r in firsts}}
            pool = [(f"{r['Name']} {lasts[r['ethnicity']][i % len(lasts[r['ethnicity']])]}",
                     f"{r['gender']}-{r['ethnicity']}") for i, r in enumerate(firsts)]
            return ([p for p in pool if p[1].split("-")[1] in wanted],
                    [p for p in pool if p[1].split("-")[1] not in wanted])
        pool = [(r["Name"], r["Name"]) for r in labels
                if r["Category"] == "Race_ethnicity" and r["Pilot_include"] != "No"]
        return ([p for p in pool if p[1].lower() in stereotyped],
                [p for p in pool if p[1].lower() not in stereotyped])
    if category == "SES":
        if proper:
            return None
        pool = [(r["Name"], r["Info"]) for r in labels if r["Category"] == "SES"]
        return ([p for p in pool if p[1] == "lowSES"], [p for p in pool if p[1] == "highSES"])
    raise ValueError(f"no template filler for BBQ category {category!r}")


def _fill(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values.get(m.group(1), m.group(0)), text).strip()


def _questions(category: str, row: dict, people: dict[str, tuple[str, str]], words: dict,
               stereotyped: list[str], rng: random.Random, start_id: int) -> list[dict]:
    """The four questions of one filled template: {ambig, disambig} x {neg, nonneg}."""
    values = {**words, "NAME1": people["NAME1"][0], "NAME2": people["NAME2"][0]}
    slot_negative = "NAME1" if "NAME1" in row["Answer_negative"] else "NAME2"
    slot_other = "NAME2" if slot_negative == "NAME1" else "NAME1"
    person_answers = {slot_negative: _fill(row["Answer_negative"], values),
                      slot_other: _fill(row["Answer_non_negative"], values)}
    unknown = rng.choice(UNKNOWN_ANSWERS)
    options = [(person_answers["NAME1"], [people["NAME1"][0], people["NAME1"][1]]),
               (person_answers["NAME2"], [people["NAME2"][0], people["NAME2"][1]]),
               (unknown, [unknown, "unknown"])]
    rng.shuffle(options)
    index = {slot: next(k for k, (text, _) in enumerate(options) if text == person_answers[slot])
             for slot in ("NAME1", "NAME2")}
    unknown_index = next(k for k, (_, info) in enumerate(options) if info[1] == "unknown")
    ambiguous = _fill(row["Ambiguous_Context"], values)
    rows = []
    for context_condition in ("ambig", "disambig"):
        context = (ambiguous if context_condition == "ambig"
                   else f"{ambiguous} {_fill(row['Disambiguating_Context'], values)}")
        for polarity, question_field, gold_slot in (
                ("neg", "Question_negative_stereotype", slot_negative),
                ("nonneg", "Question_non_negative", slot_other)):
            rows.append({
                "example_id": start_id + len(rows), "question_index": row["Q_id"],
                "question_polarity": polarity, "context_condition": context_condition,
                "category": category,
                "answer_info": {f"ans{k}": info for k, (_, info) in enumerate(options)},
                "additional_metadata": {"subcategory": row.get("Subcategory") or "None",
                                        "stereotyped_groups": stereotyped,
                                        "version": row.get("version") or "",
                                        "source": "bbq templates"},
                "context": context, "question": _fill(row[question_field], values),
                **{f"ans{k}": text for k, (text, _) in enumerate(options)},
                "label": unknown_index if context_condition == "ambig" else index[gold_slot],
            })
    return rows


def _pairs_for(category: str, row: dict, stereotyped: set[str], labels: list[dict],
               names: list[dict], rng: random.Random) -> list[tuple[tuple, tuple]]:
    """(NAME1, NAME2) fillers, each (text, group): a stereotyped person and another, both orders."""
    fixed = _slot_lists(row.get("Names", ""))
    if fixed:   # the template fixes which list fills which name (its `version` rows swap them)
        group1 = _person_group(category, fixed["NAME1"][0], row.get("NAME1_info", ""))
        group2 = _person_group(category, fixed["NAME2"][0], row.get("NAME2_info", ""))
        if category == "Gender_identity" and {group1, group2} == {"F", "M"} \
                and fixed["NAME1"][0] in ("female", "male"):
            pool = {g: [r["Name"] for r in names if r["First_last"] == "first_only"
                        and r["gender"] == g] for g in ("F", "M")}
            fixed = {"NAME1": pool[group1], "NAME2": pool[group2]}
        return [((rng.choice(fixed["NAME1"]), group1), (rng.choice(fixed["NAME2"]), group2))
                for _ in range(PAIRS_PER_TEMPLATE)]
    found = _candidates(category, row, stereotyped, labels, names)
    if found is None or not found[0] or not found[1]:
        return []
    targets, others = found
    pairs = []
    for _ in range(PAIRS_PER_TEMPLATE // 2 or 1):
        target, other = rng.choice(targets), rng.choice(others)
        pairs += [(target, other), (other, target)]
    return pairs


def build(category: str, folder: Path, seed: int = 0) -> list[dict]:
    """All questions of one category built from its templates, deterministic in `seed`."""
    if category not in CATEGORIES:
        raise ValueError(f"BBQ category {category!r} is not built from templates; "
                         f"choose from {list(CATEGORIES)}")
    labels, names = _vocabulary(folder)
    rng = random.Random(f"bbq-{category}-{seed}")
    rows: list[dict] = []
    for row in _template_rows(folder, category):
        stereotyped = json.loads(row["Known_stereotyped_groups"])
        words = {slot: rng.choice(options)
                 for slot, options in _slot_lists(row.get("Lexical_diversity", "")).items()}
        for name1, name2 in _pairs_for(category, row, {g.lower() for g in stereotyped}, labels,
                                       names, rng):
            if name1[0] == name2[0]:
                continue
            rows += _questions(category, row, {"NAME1": name1, "NAME2": name2}, words,
                               stereotyped, rng, start_id=len(rows))
    return rows


if __name__ == "__main__":
    from collections import Counter
    root = Path(sys.argv[1]) / "bbq" / "templates"
    for name in CATEGORIES:
        built = build(name, root)
        print(name, len(built), Counter(r["context_condition"] for r in built))
