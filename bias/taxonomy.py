"""The bias generation framework's three binary axes, as data.

A bias type is `<framing>-<scope>-<visibility>`:
  framing    contextual (bias in the background description) | contrastive (two groups set against each other)
  scope      single (one identity dimension) | intersectional (gender x culture x age stacked)
  visibility explicit (the group is named) | implicit (the group shows only through cues: names, pronouns)
All 8 combinations parse; `neutral` (no bias instruction) is the control.

    python -m bias.taxonomy      # list every type
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

FRAMINGS = ("contextual", "contrastive")
SCOPES = ("single", "intersectional")
VISIBILITIES = ("explicit", "implicit")
NEUTRAL = "neutral"

# The project's default six (PAPER.md); the last two are the ones the paper calls most harmful.
DEFAULT_BIAS_TYPES: tuple[str, ...] = (
    "contextual-single-explicit", "contextual-single-implicit",
    "contrastive-single-explicit", "contrastive-single-implicit",
    "contextual-intersectional-implicit", "contrastive-intersectional-explicit",
)
BIAS_TYPES: tuple[str, ...] = tuple("-".join(p) for p in product(FRAMINGS, SCOPES, VISIBILITIES)) + (NEUTRAL,)


@dataclass(frozen=True)
class BiasType:
    name: str
    framing: str | None      # None for neutral
    scope: str | None
    visibility: str | None

    @property
    def is_neutral(self) -> bool:
        return self.name == NEUTRAL

    def axes(self) -> dict[str, str]:
        return {"framing": self.framing or "none", "scope": self.scope or "none",
                "visibility": self.visibility or "none"}


def parse_bias_type(name: str) -> BiasType:
    if name == NEUTRAL:
        return BiasType(NEUTRAL, None, None, None)
    parts = name.split("-")
    if (len(parts) != 3 or parts[0] not in FRAMINGS or parts[1] not in SCOPES
            or parts[2] not in VISIBILITIES):
        raise ValueError(f"unknown bias type {name!r}; a type is <{'|'.join(FRAMINGS)}>-"
                         f"<{'|'.join(SCOPES)}>-<{'|'.join(VISIBILITIES)}> or 'neutral'")
    return BiasType(name, *parts)


if __name__ == "__main__":
    for t in BIAS_TYPES:
        print(t, "(default)" if t in DEFAULT_BIAS_TYPES else "")
