"""Mitigations applied to the augmented rows of a mix: none, token (more land with the Mitigation issue).

token: a bias-warning sentence is prepended to augmented examples only; originals are untouched.
A mitigation at γ = 0 has no augmented rows to act on: the grid collapses those cells.
"""
from __future__ import annotations

import pandas as pd

from bias.config import MitigationConfig


def apply_mitigation(mixed: pd.DataFrame, mitigation: str, settings: MitigationConfig) -> pd.DataFrame:
    if mitigation == "none":
        return mixed
    if mitigation == "token":
        out = mixed.copy()
        is_aug = out["source"] == "augmented"
        out.loc[is_aug, "text"] = settings.token_text + " " + out.loc[is_aug, "text"]
        return out
    raise ValueError(f"mitigation {mitigation!r} is not implemented")
