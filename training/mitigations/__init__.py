"""Mitigations: each is one module in this package, found by its file name, applied to the
augmented rows of a mix (the originals are never changed) and/or as a loss term in training.

A mitigation module defines `MITIGATION = Mitigation(...)` with either or both of
  rewrite(texts, settings) -> (texts, figures)   a data transform of the augmented rows' texts
  loss_weight(settings) -> λ                       the weight of the alignment term
                                                   (training/alignment.py) in the training loss
Adding a mitigation is adding its module here; the config accepts every module name found.
A mitigation at γ = 0 has no augmented rows to act on: the grid collapses those cells.

    python -m training.mitigations      # list them
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import pandas as pd

from bias import plugins
from bias.config import MitigationConfig


@dataclass(frozen=True)
class Mitigation:
    name: str
    description: str
    rewrite: Callable[[list[str], MitigationConfig], tuple[list[str], dict[str, float]]] | None = None
    loss_weight: Callable[[MitigationConfig], float] | None = None


def names() -> tuple[str, ...]:
    """The mitigation modules of this package, "none" first (no module is imported)."""
    return plugins.module_names(__path__, first="none")


@lru_cache(maxsize=None)
def get(name: str) -> Mitigation:
    return plugins.load(__name__, name, "MITIGATION", "mitigation", names())


def apply_mitigation(mixed: pd.DataFrame, name: str,
                     settings: MitigationConfig) -> tuple[pd.DataFrame, dict[str, float]]:
    """The mix with the mitigation's rewrite applied to its augmented rows, plus figures to log."""
    mitigation = get(name)
    if mitigation.rewrite is None:
        return mixed, {}
    out = mixed.copy()
    is_aug = out["source"] == "augmented"
    texts, figures = mitigation.rewrite(out.loc[is_aug, "text"].tolist(), settings)
    out.loc[is_aug, "text"] = texts
    return out, figures


def alignment_weight(name: str, settings: MitigationConfig) -> float:
    """λ of the alignment term in the training loss under this mitigation (0: none)."""
    mitigation = get(name)
    return mitigation.loss_weight(settings) if mitigation.loss_weight else 0.0

