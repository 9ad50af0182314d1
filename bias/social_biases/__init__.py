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
Adding a social bias is adding its module here: the config, the prompts, the parser, the balance
table and the tasks that read `bbq_categories` pick it up.

    python -m bias.social_biases        # list them
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
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

    def group_of(self, row: dict) -> str:
        """The group a seed row belongs to along this social bias."""
        return row[self.seed_field]


def article(word: str) -> str:
    return ("an " if word[0].lower() in "aeiou" else "a ") + word


def names() -> tuple[str, ...]:
    """The spec modules of this package, gender first (no module is imported)."""
    return plugins.module_names(__path__, first="gender")


@lru_cache(maxsize=None)
def get(name: str) -> SocialBias:
    return plugins.load(__name__, name, "SOCIAL_BIAS", "social bias", names())
