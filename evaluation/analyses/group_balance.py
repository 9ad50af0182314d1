"""Group-data misalignment: are the groups in generated data balanced?

For gender studies the counts are per occupation x gender; the test is a chi-square goodness of
fit against equal counts, overall (all genders pooled) and per occupation:

  χ² = Σ_g (O_g − E)² / E,   E = Σ_g O_g / #groups,   p from χ²(#groups − 1)
Neutral generations (no bias instruction) are the reference the study uses: even they come out
imbalanced when the model picks the gender itself.
"""
from __future__ import annotations

from collections import defaultdict

from scipy.stats import chisquare


def balance_table(group_counts: dict[str, int]) -> list[dict]:
    """group_counts: {"occupation|group": n} (generation stats) -> rows with a χ² test each."""
    per_occupation: dict[str, dict[str, int]] = defaultdict(dict)
    for key, n in group_counts.items():
        occupation, group = key.split("|", 1)
        per_occupation[occupation][group] = n
    groups = sorted({g for counts in per_occupation.values() for g in counts} - {"unknown"})
    rows = []
    totals = {g: 0 for g in groups}
    for occupation in sorted(per_occupation):
        observed = [per_occupation[occupation].get(g, 0) for g in groups]
        for g, n in zip(groups, observed):
            totals[g] += n
        rows.append({"occupation": occupation, **dict(zip(groups, observed)),
                     **_chi2(observed)})
    rows.append({"occupation": "all", **totals, **_chi2(list(totals.values()))})
    return rows


def _chi2(observed: list[int]) -> dict:
    if len(observed) < 2 or sum(observed) == 0:
        return {"chi2": float("nan"), "p_value": float("nan")}
    stat, p = chisquare(observed)
    return {"chi2": float(stat), "p_value": float(p)}
