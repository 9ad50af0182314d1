"""Mitigation `mask`: sensitive cues in augmented examples (gendered words and pronouns, names
from the project's name lists, culture and nationality words) are replaced, whole words only and
case-aware, by a mask token or a neutral word (`mitigation.mask_mode`); the counts are logged.

    python -m training.mitigations.mask "He told Emma that his Spanish sister is a nurse."
"""
from __future__ import annotations

import re
import sys
from functools import lru_cache

from bias.config import MitigationConfig
from bias.vocabulary import CULTURE_WORDS, GENDERED_WORDS, NAMES, word_pattern
from training.mitigations import Mitigation

NEUTRAL_GENDER_WORDS = {
    "he": "they", "she": "they", "him": "them", "his": "their", "her": "their", "hers": "theirs",
    "himself": "themself", "herself": "themself", "man": "person", "woman": "person",
    "men": "people", "women": "people", "male": "", "female": "", "boy": "child", "girl": "child",
    "boys": "children", "girls": "children", "father": "parent", "mother": "parent",
    "son": "child", "daughter": "child", "husband": "spouse", "wife": "spouse",
    "brother": "sibling", "sister": "sibling", "mr": "Mx", "mrs": "Mx", "ms": "Mx", "miss": "Mx",
    "gentleman": "person", "lady": "person", "masculine": "", "feminine": "", "king": "monarch",
    "queen": "monarch", "uncle": "relative", "aunt": "relative",
}
NEUTRAL_NAME = "Alex"
NEUTRAL_CULTURE_WORD = "local"


@lru_cache(maxsize=1)
def _cue_patterns() -> dict[str, re.Pattern[str]]:
    gender = tuple(sorted({w for words in GENDERED_WORDS.values() for w in words}))
    names = tuple(sorted({n for names in NAMES.values() for n in names}))
    culture = tuple(sorted({w for words in CULTURE_WORDS.values() for w in words}))
    return {"gender": word_pattern(gender), "name": word_pattern(names, case_sensitive=True),
            "culture": word_pattern(culture)}


def _match_case(original: str, replacement: str) -> str:
    if not replacement:
        return replacement
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[0].isupper():
        return replacement[0].upper() + replacement[1:]
    return replacement


def mask_text(text: str, mode: str = "token", mask_token: str = "[MASK]") -> tuple[str, dict[str, int]]:
    """Replace every cue in `text`; returns (masked text, replacements per cue kind)."""
    counts = {}
    for kind, pattern in _cue_patterns().items():
        def replace(match: re.Match[str]) -> str:
            word = match.group(0)
            if mode == "token":
                return mask_token
            if kind == "gender":
                return _match_case(word, NEUTRAL_GENDER_WORDS.get(word.lower(), ""))
            return NEUTRAL_NAME if kind == "name" else NEUTRAL_CULTURE_WORD
        text, counts[kind] = pattern.subn(replace, text)
    text = re.sub(r" {2,}", " ", re.sub(r" +([.,;:!?])", r"\1", text)).strip()
    return text, counts


def mask_cues(texts: list[str], settings: MitigationConfig) -> tuple[list[str], dict[str, float]]:
    totals = {"gender": 0, "name": 0, "culture": 0}
    masked = []
    for text in texts:
        new, counts = mask_text(text, settings.mask_mode, settings.mask_token)
        masked.append(new)
        for kind, n in counts.items():
            totals[kind] += n
    return masked, {f"mask_replaced_{k}": float(v) for k, v in totals.items()} | {
        "mask_replaced_total": float(sum(totals.values()))}


MITIGATION = Mitigation(name="mask", description="group cues in augmented examples masked or "
                                                 "neutralised", rewrite=mask_cues)


if __name__ == "__main__":
    print(mask_text(" ".join(sys.argv[1:]), "token"))
    print(mask_text(" ".join(sys.argv[1:]), "neutral"))
