"""Group balance of a generated set (the paper's group-data misalignment): counts per group and
occupation, and a chi-square test of those counts against balance.

Balance means every group of the social bias (gender: male, female; culture: the four cultures,
plus any other culture a neutral generation chose) is equally frequent within each occupation.
The test is a goodness-of-fit over the occupation x group cells, with each cell's expected count
the occupation's total divided by the number of groups (dof = occupations x (groups - 1)).
Rows whose group cannot be read off the text never reach a kept set (missing_group_cue).

    python -m generation.balance PATH_OR_URI_OF_A_SET gender
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from bias import social_biases


def expected_groups(social_bias: str, observed=()) -> list[str]:
    base = list(social_biases.get(social_bias).groups)
    return base + sorted(set(observed) - set(base) - {""})


def balance_table(frame: pd.DataFrame, social_bias: str) -> pd.DataFrame:
    """One row per occupation, one column per group (counts), plus total."""
    groups = expected_groups(social_bias, frame["group"].unique() if len(frame) else ())
    if frame.empty:
        return pd.DataFrame(columns=["occupation", *groups, "total"])
    table = (frame.groupby(["occupation", "group"]).size().unstack(fill_value=0)
             .reindex(columns=groups, fill_value=0))
    table["total"] = table.sum(axis=1)
    return table.reset_index().rename_axis(columns=None)


def balance_test(table: pd.DataFrame) -> dict:
    """Chi-square goodness of fit of the occupation x group counts against equal groups."""
    counts = table.drop(columns=["occupation", "total"])
    counts = counts[counts.sum(axis=1) > 0]
    n_groups = counts.shape[1]
    if counts.empty or n_groups < 2:
        return {"chi2": 0.0, "dof": 0, "p_value": 1.0, "n": int(counts.values.sum())}
    observed = counts.to_numpy(dtype=float)
    expected = np.repeat(observed.sum(axis=1, keepdims=True) / n_groups, n_groups, axis=1)
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    # Each occupation's total is fixed by the data, so each row has groups - 1 free cells.
    dof = observed.shape[0] * (n_groups - 1)
    return {"chi2": chi2, "dof": int(dof), "p_value": float(scipy_stats.chi2.sf(chi2, dof)),
            "n": int(observed.sum())}


def group_shares(frame: pd.DataFrame, social_bias: str) -> dict[str, float]:
    groups = expected_groups(social_bias, frame["group"].unique() if len(frame) else ())
    total = len(frame)
    return {g: (float((frame["group"] == g).sum()) / total if total else 0.0) for g in groups}


if __name__ == "__main__":
    from generation.pipeline import read_generated
    data = read_generated(sys.argv[1])
    social = sys.argv[2] if len(sys.argv) > 2 else "gender"
    tab = balance_table(data, social)
    print(tab.to_string(index=False))
    print(balance_test(tab))
