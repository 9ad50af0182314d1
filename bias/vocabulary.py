"""Facts of the study written by the project: occupations, genders, cultures, names, cue words.

These lists let the service run on a machine with no hub access (the offline bios, the
generation prompts, the mask mitigation and the group-cue checks all read them). Run
`python -m bias.vocabulary` to print the counts.
"""
from __future__ import annotations

import re
from functools import lru_cache

# The six Bias in Bios occupations the study uses (PAPER.md).
OCCUPATIONS: tuple[str, ...] = (
    "architect", "dentist", "nurse", "painter", "professor", "software engineer",
)
GENDERS: tuple[str, ...] = ("male", "female")
# The four cultures of the study; "english" names give gender studies culture-neutral people.
CULTURES: tuple[str, ...] = ("arabic", "chinese", "portuguese", "spanish")
NAME_CULTURES: tuple[str, ...] = ("english",) + CULTURES
AGE_GROUPS: tuple[str, ...] = ("young", "middle-aged", "older")
CULTURE_ADJECTIVE = {"arabic": "Arab", "chinese": "Chinese", "portuguese": "Portuguese",
                     "spanish": "Spanish", "english": "English"}

NAMES: dict[tuple[str, str], tuple[str, ...]] = {
    ("english", "male"): ("James", "John", "Robert", "Michael", "William", "David", "Richard",
                          "Thomas", "Charles", "Daniel", "Matthew", "Andrew", "Joshua", "Ryan",
                          "Kevin", "Brian", "George", "Edward", "Peter", "Samuel"),
    ("english", "female"): ("Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara",
                            "Susan", "Jessica", "Sarah", "Karen", "Emily", "Laura", "Rachel",
                            "Hannah", "Megan", "Rebecca", "Claire", "Alice", "Emma", "Olivia"),
    ("arabic", "male"): ("Ahmed", "Mohammed", "Omar", "Khalid", "Youssef", "Hassan", "Ali",
                         "Karim", "Tariq", "Samir", "Faisal", "Mustafa", "Rami", "Walid",
                         "Bilal", "Hamza", "Ibrahim", "Nabil", "Saeed", "Ziad"),
    ("arabic", "female"): ("Fatima", "Aisha", "Layla", "Mariam", "Noor", "Huda", "Rania",
                           "Salma", "Yasmin", "Zainab", "Amira", "Dalia", "Hana", "Leila",
                           "Nadia", "Reem", "Samira", "Lina", "Malak", "Farah"),
    ("chinese", "male"): ("Wei", "Jun", "Hao", "Lei", "Jian", "Ming", "Qiang", "Bo", "Tao",
                          "Yong", "Gang", "Peng", "Chao", "Feng", "Zhiwei", "Haoran", "Yu",
                          "Xiang", "Kai", "Hong"),
    ("chinese", "female"): ("Mei", "Li", "Xiu", "Ying", "Hui", "Lan", "Fang", "Jing", "Yan",
                            "Xia", "Ling", "Nan", "Qing", "Yun", "Xiaoyan", "Jiayi", "Ting",
                            "Wen", "Zhen", "Lihua"),
    ("portuguese", "male"): ("João", "Pedro", "Tiago", "Miguel", "Rui", "Nuno", "Bruno",
                             "Gonçalo", "Duarte", "Afonso", "Rodrigo", "Vasco", "Diogo",
                             "Henrique", "Martim", "Fábio", "Paulo", "Sérgio", "Hugo", "Luís"),
    ("portuguese", "female"): ("Maria", "Ana", "Beatriz", "Inês", "Joana", "Leonor", "Mariana",
                               "Rita", "Catarina", "Sofia", "Filipa", "Margarida", "Teresa",
                               "Raquel", "Carolina", "Matilde", "Sara", "Marta", "Helena",
                               "Francisca"),
    ("spanish", "male"): ("Carlos", "José", "Javier", "Alejandro", "Pablo", "Diego", "Sergio",
                          "Manuel", "Antonio", "Francisco", "Alberto", "Raúl", "Fernando",
                          "Jorge", "Álvaro", "Iván", "Rubén", "Adrián", "Enrique", "Marcos"),
    ("spanish", "female"): ("Lucía", "Carmen", "Isabel", "Laura", "Elena", "Marta", "Paula",
                            "Cristina", "Pilar", "Rosa", "Alba", "Nuria", "Irene", "Silvia",
                            "Rocío", "Blanca", "Lorena", "Andrea", "Patricia", "Inmaculada"),
}

PRONOUNS: dict[str, dict[str, str]] = {
    "male": {"subj": "he", "obj": "him", "poss": "his", "refl": "himself", "title": "Mr.",
             "noun": "man", "plural": "men"},
    "female": {"subj": "she", "obj": "her", "poss": "her", "refl": "herself", "title": "Ms.",
               "noun": "woman", "plural": "women"},
}

# Words whose presence marks a gender; the mask mitigation and cue checks use them.
GENDERED_WORDS: dict[str, tuple[str, ...]] = {
    "male": ("he", "him", "his", "himself", "man", "men", "male", "boy", "boys", "father",
             "son", "husband", "brother", "mr", "gentleman", "masculine", "king", "uncle"),
    "female": ("she", "her", "hers", "herself", "woman", "women", "female", "girl", "girls",
               "mother", "daughter", "wife", "sister", "mrs", "ms", "miss", "lady", "feminine",
               "queen", "aunt"),
}

CULTURE_WORDS: dict[str, tuple[str, ...]] = {
    "arabic": ("Arab", "Arabs", "Arabic", "Saudi", "Egyptian", "Moroccan", "Lebanese",
               "Jordanian", "Emirati", "Syrian", "Iraqi", "Middle Eastern"),
    "chinese": ("Chinese", "China", "Beijing", "Shanghai", "Cantonese", "Mandarin"),
    "portuguese": ("Portuguese", "Portugal", "Lisbon", "Porto", "Brazilian", "Brazil"),
    "spanish": ("Spanish", "Spain", "Madrid", "Barcelona", "Hispanic", "Latino", "Latina",
                "Mexican", "Castilian"),
}

# Per-occupation facts the offline bios and generation seeds draw on.
OCCUPATION_DETAILS: dict[str, dict[str, tuple[str, ...]]] = {
    "architect": {
        "workplace": ("a design studio", "an urban planning firm", "a sustainable building practice"),
        "activity": ("designs public libraries", "plans energy-efficient housing",
                     "restores historic facades", "draws up plans for school campuses"),
        "degree": ("architecture", "urban design"),
    },
    "dentist": {
        "workplace": ("a family dental clinic", "a community health centre", "a private practice"),
        "activity": ("treats patients of all ages", "specialises in restorative dentistry",
                     "performs root canal treatments", "runs a preventive care programme"),
        "degree": ("dental surgery", "dentistry"),
    },
    "nurse": {
        "workplace": ("a regional hospital", "an intensive care unit", "a paediatric ward"),
        "activity": ("cares for post-operative patients", "coordinates patient care plans",
                     "administers medication on night shifts", "trains new ward staff"),
        "degree": ("nursing", "health sciences"),
    },
    "painter": {
        "workplace": ("a shared studio", "a coastal art colony", "a downtown gallery"),
        "activity": ("paints large abstract canvases", "works in oil and watercolour",
                     "exhibits landscapes in galleries", "paints portraits on commission"),
        "degree": ("fine arts", "painting"),
    },
    "professor": {
        "workplace": ("a state university", "a research institute", "a liberal arts college"),
        "activity": ("teaches graduate seminars", "leads a research group",
                     "publishes on economic history", "supervises doctoral students"),
        "degree": ("history", "physics", "economics", "linguistics"),
    },
    "software engineer": {
        "workplace": ("a cloud software company", "a fintech start-up", "a game studio"),
        "activity": ("builds distributed backend services", "maintains open-source libraries",
                     "writes firmware for sensors", "develops mobile applications"),
        "degree": ("computer science", "software engineering"),
    },
}


# Held-out details: only the offline test bios use them, so an occupation is never a lookup of a
# phrase seen in training; the model must generalise from what the words mean.
HELD_OUT_DETAILS: dict[str, dict[str, tuple[str, ...]]] = {
    "architect": {"workplace": ("a firm that designs airports", "a landscape and building studio"),
                  "activity": ("sketches floor plans for new museums",
                               "oversees the blueprints of office towers",
                               "designs bridges and pavilions"),
                  "degree": ("building design", "architectural engineering")},
    "dentist": {"workplace": ("an orthodontic practice", "a dental hospital"),
                "activity": ("fits braces and crowns", "extracts wisdom teeth",
                             "cleans and fills cavities"),
                "degree": ("oral medicine", "orthodontics")},
    "nurse": {"workplace": ("a maternity ward", "an emergency department"),
              "activity": ("monitors patients' vital signs", "dresses wounds after surgery",
                           "looks after patients on the cardiac ward"),
              "degree": ("midwifery", "clinical nursing")},
    "painter": {"workplace": ("an artists' cooperative", "a studio above a gallery"),
                "activity": ("paints murals in public spaces", "mixes pigments for still lifes",
                             "shows canvases at art fairs"),
                "degree": ("visual arts", "studio art")},
    "professor": {"workplace": ("a technical university", "a graduate school"),
                  "activity": ("lectures to undergraduates", "writes grant proposals and papers",
                               "chairs the faculty's research committee"),
                  "degree": ("sociology", "mathematics")},
    "software engineer": {"workplace": ("a cybersecurity company", "a data platform team"),
                          "activity": ("writes code for web services", "debugs database queries",
                                       "ships features to a mobile app"),
                          "degree": ("information technology", "computer engineering")},
}

# Details that say nothing about the occupation: the offline bios use them to be ambiguous, as
# Bias in Bios' `hard_text` (the occupation sentence removed) often is.
GENERIC_DETAILS: dict[str, tuple[str, ...]] = {
    "workplace": ("a mid-sized organisation in the city", "a large public institution",
                  "a small team downtown", "an office near the river"),
    "activity": ("works long hours during the week", "mentors younger colleagues",
                 "volunteers at a local charity", "travels often for work",
                 "enjoys the variety of the job"),
    "degree": ("a general studies programme", "a two-year college course",
               "an evening programme"),
}

# Occupations whose details overlap in meaning: an ambiguous bio borrows a detail from its pair.
CONFUSABLE: dict[str, str] = {"architect": "painter", "painter": "architect",
                              "dentist": "nurse", "nurse": "dentist",
                              "professor": "software engineer", "software engineer": "professor"}

# The direction of each occupation's gender stereotype: the majority gender of its workers in
# Bias in Bios (De-Arteaga et al. 2019) and in US labour statistics. Painter and professor are
# near parity there and carry no direction.
OCCUPATION_GENDER_TYPING: dict[str, str | None] = {
    "architect": "male", "dentist": "male", "software engineer": "male",
    "nurse": "female", "painter": None, "professor": None,
}

# Word swaps for counterfactual bios whose text this project did not write (the hub's Bias in
# Bios): each gendered word and its counterpart. "her" is either "him" or "his", see swap_gender.
GENDER_SWAPS: dict[str, str] = {
    "he": "she", "she": "he", "him": "her", "his": "her", "hers": "his", "himself": "herself",
    "herself": "himself", "man": "woman", "woman": "man", "men": "women", "women": "men",
    "mr": "ms", "ms": "mr", "mrs": "mr", "boy": "girl", "girl": "boy", "father": "mother",
    "mother": "father", "son": "daughter", "daughter": "son", "husband": "wife", "wife": "husband",
    "brother": "sister", "sister": "brother", "male": "female", "female": "male",
}


def swap_gender(text: str) -> str:
    """The same text about a person of the other gender: gendered words and first names from
    NAMES swapped (a name becomes the name at the same place in the other gender's list). "her"
    becomes "his" before a word and "him" otherwise, the usual heuristic of counterfactual data
    augmentation (Lu et al. 2020)."""
    names = {}
    for (culture, gender), listed in NAMES.items():
        other = NAMES[(culture, "female" if gender == "male" else "male")]
        for i, name in enumerate(listed):
            names.setdefault(name, other[i % len(other)])

    def word(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in names:
            return names[token]
        lower = token.lower()
        if lower == "her":
            rest = match.string[match.end():]
            swapped = "his" if re.match(r"\s+[A-Za-z]", rest) and not re.match(
                r"\s+(?:and|or|to|at|in|on|for|with|as|that|because|when)\b", rest) else "him"
        elif lower in GENDER_SWAPS:
            swapped = GENDER_SWAPS[lower]
        else:
            return token
        return swapped.capitalize() if token[0].isupper() else swapped
    return re.sub(r"[A-Za-zÀ-ÿ]+", word, text)


def names_for(culture: str, gender: str) -> tuple[str, ...]:
    """First names that signal `culture` x `gender`; KeyError names the valid keys."""
    try:
        return NAMES[(culture, gender)]
    except KeyError:
        raise KeyError(f"no names for culture={culture!r}, gender={gender!r}; "
                       f"known: {sorted(set(c for c, _ in NAMES))} x {list(GENDERS)}") from None


def distinctive_names(culture: str, gender: str) -> tuple[str, ...]:
    """The group's names that no other list holds ("Marta" is Portuguese and Spanish): the name
    alone then signals one culture x gender."""
    others = {n for key, names in NAMES.items() if key != (culture, gender) for n in names}
    return tuple(n for n in names_for(culture, gender) if n not in others)


@lru_cache(maxsize=None)
def word_pattern(words: tuple[str, ...], case_sensitive: bool = False) -> re.Pattern[str]:
    """Whole-word matcher: 'he' matches 'He' but not 'the' or 'hello'. Names match case-
    sensitively, so the name 'Li' never hits the word 'li' in another language's quote."""
    alternatives = "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
    return re.compile(rf"(?<![\w'-])(?:{alternatives})(?![\w-])",
                      0 if case_sensitive else re.IGNORECASE)


def gender_cues(text: str) -> dict[str, int]:
    """Count gendered words per gender in `text` (pronouns, nouns, titles)."""
    return {g: len(word_pattern(GENDERED_WORDS[g]).findall(text)) for g in GENDERS}


def infer_gender(text: str) -> str | None:
    """The gender a text signals by its pronouns and nouns, or None when neither dominates."""
    counts = gender_cues(text)
    if counts["male"] == counts["female"]:
        return None
    return "male" if counts["male"] > counts["female"] else "female"


def culture_cues(text: str) -> dict[str, int]:
    """Count culture cues per name culture: first names from NAMES and culture words."""
    counts = {}
    for culture in NAME_CULTURES:
        names = NAMES[(culture, "male")] + NAMES[(culture, "female")]
        words = names + CULTURE_WORDS.get(culture, ())
        counts[culture] = len(word_pattern(words).findall(text))
    return counts


def infer_culture(text: str) -> str | None:
    """The culture a text signals by names and culture words ('english' for English names), or
    None when no culture dominates (no cue, or a tie such as a name two cultures share)."""
    counts = culture_cues(text)
    top = max(counts.values())
    leaders = [c for c, n in counts.items() if n == top]
    return leaders[0] if top > 0 and len(leaders) == 1 else None


if __name__ == "__main__":
    print(f"{len(OCCUPATIONS)} occupations, {len(NAMES)} name lists, "
          f"{sum(len(v) for v in NAMES.values())} names")
