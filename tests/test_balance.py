"""The group-balance table (counts per occupation x group) and its chi-square test against balance."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from generation.balance import balance_table, balance_test, group_shares

pytestmark = pytest.mark.unit   # no Ray, MLflow or model


def _frame(counts: dict[tuple[str, str], int]) -> pd.DataFrame:
    rows = [{"occupation": o, "group": g} for (o, g), n in counts.items() for _ in range(n)]
    return pd.DataFrame(rows)


def test_table_counts_per_occupation_and_group_with_every_group_as_a_column():
    frame = _frame({("nurse", "female"): 8, ("nurse", "male"): 2, ("architect", "male"): 5})
    table = balance_table(frame, "gender")
    assert list(table.columns) == ["occupation", "male", "female", "total"]
    by_occ = table.set_index("occupation")
    assert by_occ.loc["nurse"].tolist() == [2, 8, 10]
    assert by_occ.loc["architect"].tolist() == [5, 0, 5]       # an absent group is a 0, not a gap
    culture = balance_table(_frame({("nurse", "arabic"): 3, ("nurse", "english"): 1}), "culture")
    # the four cultures always, plus a group a neutral generation chose
    assert list(culture.columns) == ["occupation", "arabic", "chinese", "portuguese", "spanish",
                                     "english", "total"]
    assert group_shares(frame, "gender") == pytest.approx({"male": 7 / 15, "female": 8 / 15})


def test_chi_square_against_balance_matches_scipy_per_occupation():
    frame = _frame({("nurse", "female"): 8, ("nurse", "male"): 2,
                    ("architect", "male"): 6, ("architect", "female"): 4})
    result = balance_test(balance_table(frame, "gender"))
    # Balance within each occupation: the statistic is the sum of per-occupation tests.
    expected = stats.chisquare([8, 2]).statistic + stats.chisquare([6, 4]).statistic
    assert result["chi2"] == pytest.approx(expected)
    assert result["dof"] == 2 and result["n"] == 20
    assert result["p_value"] == pytest.approx(stats.chi2.sf(expected, 2))


def test_balanced_sets_do_not_reject_and_skewed_sets_do():
    balanced = _frame({(o, g): 10 for o in ("nurse", "dentist") for g in ("male", "female")})
    assert balance_test(balance_table(balanced, "gender")) == {"chi2": 0.0, "dof": 2,
                                                               "p_value": 1.0, "n": 40}
    skewed = _frame({("nurse", "female"): 40, ("nurse", "male"): 5,
                     ("dentist", "male"): 30, ("dentist", "female"): 10})
    assert balance_test(balance_table(skewed, "gender"))["p_value"] < 1e-6
    empty = balance_test(balance_table(pd.DataFrame(columns=["occupation", "group"]), "gender"))
    assert empty["p_value"] == 1.0 and empty["n"] == 0
    assert np.isfinite(balance_test(balance_table(_frame({("nurse", "chinese"): 4}), "culture"))["chi2"])
