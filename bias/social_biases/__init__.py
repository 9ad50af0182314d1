"""Social biases: each is one spec module in this package, found by its file name.

A spec says everything the pipeline needs to study one social bias:
  groups          the groups compared, in a fixed order (balance tables, per-group metrics)
  seed_field      the seed-row field that holds a row's group (seed rows cycle it, balanced)
  infer(text)     the group a text shows, or None (neutral rows, the group-balance analysis)
  shows_group(text, row)   does a generated text still show its seed row's group (besides the
                  person's name, which always counts)? Rows that do not are dropped
  person(row)     the prompt's phrases for a single-scope bias type: (what to call the person,
                  the group the stereotypes are about)
  bbq_categories  the BBQ categories its `bbq/bias_score_ambig_<name>` averages over
  cues            the words and phrases that show a group (the `mask` mitigation replaces them;
                  first names are masked apart, for every social bias)
  neutral(word)   a cue's neutral stand-in for `mask_mode: neutral` ("" drops it)
Adding a social bias is adding its module here: the config, the prompts, the parser, the balance
table and the tasks that read `bbq_categories` pick it up.

    python -m bias.social_biases        # list them
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
import re
from typing import Callable

from bias import plugins


@dataclass(frozen=True)
class SocialBias:
    name: str
    groups: tuple[str, ...]
    seed_field: str
    infer: Callable[[str], str | None]
    shows_group: Callable[[str, dict], bool]
    person: Callable[[dict], tuple[str, str]]
    bbq_categories: tuple[str, ...] = ()
    cues: re.Pattern[str] | None = None
    neutral: Callable[[str], str] = lambda cue: ""

    def group_of(self, row: dict) -> str:
        """The group a seed row belongs to along this social bias."""
        return row[self.seed_field]


def match_case(original: str, replacement: str) -> str:
    """`replacement` in `original`'s case: "He" -> "They", "HE" -> "THEY"."""
    if not replacement:
        return replacement
    if original.isupper() and len(original) > 1:
        return replacement.upper()
    if original[0].isupper():
        return replacement[0].upper() + replacement[1:]
    return replacement


def article(word: str) -> str:
    return ("an " if word[0].lower() in "aeiou" else "a ") + word


def names() -> tuple[str, ...]:
    """The spec modules of this package, gender first (no module is imported)."""
    return plugins.module_names(__path__, first="gender")


@lru_cache(maxsize=None)
def get(name: str) -> SocialBias:
    return plugins.load(__name__, name, "SOCIAL_BIAS", "social bias", names())
