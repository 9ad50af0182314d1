"""Mitigation `mask`: sensitive cues in augmented examples are replaced, whole words only and
case-aware, by a mask token or a neutral word (`mitigation.mask_mode`); the counts are logged.
The cues are every social bias's own (`cues` in bias/social_biases/: gendered words and
pronouns, culture and nationality words, stated ages, ...) and the first names of the project's
name lists; a new social bias's cues are masked without touching this file.

    python -m training.mitigations.mask "He told Emma that his Spanish sister is a nurse."
"""
from __future__ import annotations

import re
import sys
from functools import lru_cache
from typing import Callable

from bias import social_biases
from bias.config import MitigationConfig
from bias.vocabulary import NAMES, word_pattern
from training.mitigations import Mitigation

NEUTRAL_NAME = "Alex"


@lru_cache(maxsize=1)
def _cues() -> tuple[re.Pattern[str], dict[str, Callable[[str], str]]]:
    """One pattern over every kind of cue, a named group per kind, and each kind's neutral
    stand-in. One pattern, not one per kind: the earliest cue in the text wins, so a phrase
    ("in her sixties", an age) is replaced whole rather than losing its pronoun to gender."""
    specs = [social_biases.get(name) for name in social_biases.names()]
    names = tuple(sorted({n for group in NAMES.values() for n in group}))
    kinds = {s.name: (s.cues, s.neutral) for s in specs if s.cues is not None}
    kinds["name"] = (word_pattern(names, case_sensitive=True), lambda _: NEUTRAL_NAME)
    alternatives = [f"(?P<{kind}>{f'(?i:{p.pattern})' if p.flags & re.I else p.pattern})"
                    for kind, (p, _) in kinds.items()]
    return re.compile("|".join(alternatives)), {kind: n for kind, (_, n) in kinds.items()}


def mask_text(text: str, mode: str = "token", mask_token: str = "[MASK]") -> tuple[str, dict[str, int]]:
    """Replace every cue in `text`; returns (masked text, replacements per cue kind)."""
    pattern, neutral = _cues()
    counts = dict.fromkeys(neutral, 0)

    def replace(match: re.Match[str]) -> str:
        counts[match.lastgroup] += 1
        return mask_token if mode == "token" else neutral[match.lastgroup](match.group(0))
    text = pattern.sub(replace, text)
    text = re.sub(r" {2,}", " ", re.sub(r" +([.,;:!?])", r"\1", text)).strip()
    return text, counts


def mask_cues(texts: list[str], settings: MitigationConfig) -> tuple[list[str], dict[str, float]]:
    totals = dict.fromkeys(_cues()[1], 0)
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
