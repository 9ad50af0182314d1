"""Statistics for the report, with the seed as the unit of replication.

Pure functions on a *cells frame*: one row per finished cell with the columns bias_type, ratio,
mitigation, seed, round and one column per metric (`<task>/<metric>`). `ray_jobs/report.py`
builds that frame from MLflow; nothing here reads MLflow or imports ray_jobs.

    python -m evaluation.statistics            # prints the tests on a small planted example

Cells of one seed share their original data, their γ = 0 cell and their training randomness, so
they are not independent: every test first reduces each seed to one number and then tests
across seeds (df = seeds − 1). With fewer than MIN_SEEDS seeds nothing is tested and the row
says "too few seeds". Methods (stated in the report as well):
  cell mean ± CI   mean over seeds, t-interval (mean ± t(0.975, n−1)·s/√n)
  inheritance      per seed, the OLS slope of the metric against γ over that seed's cells (the
  coefficient      shared γ = 0 cell included; pooled = all bias types of the seed in one fit);
                   estimate = mean of the per-seed slopes, one-sample t-test and t-interval
  mitigation test  per seed, |bias| under the mitigation − |bias| under none at the same γ and
                   bias type (pooled: averaged over bias types and γ within the seed first);
                   one-sample t-test across seeds. Reducing bias = moving |bias| toward zero,
                   so an over-correction that flips the sign does not count as success
  ranking          the same per-seed |bias| differences between two mitigations, pairwise
  control          per seed, the mean over γ of (control-skewed − control-null) at the same γ:
                   the planted effect net of what fine-tuning on the same texts does anyway
  round drift      per-seed slope against the round number (multi-round cells)
  mde              the smallest true effect the test detects with 80% power at α = 0.05 (two
                   sided), from the observed spread across seeds: (t(0.975) + t(0.8))·s/√n
  multiplicity     Benjamini–Hochberg (scipy.stats.false_discovery_control) over every p-value of
                   one report
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy import stats

from bias.config import CONTROL_NULL, CONTROL_SKEWED

LEVEL = 0.95
ALPHA = 0.05
POWER = 0.8
MIN_SEEDS = 3
ORIGINAL_ONLY = "original-only"   # the γ = 0 cell's bias type (training/grid.py)
POOLED = "all"                    # a test over every bias type at once (control sets left out)
CONTROL_SETS = (CONTROL_SKEWED, CONTROL_NULL)
TOO_FEW_SEEDS = f"too few seeds (fewer than {MIN_SEEDS})"
NAN = math.nan


class Interval(BaseModel):
    mean: float
    low: float
    high: float
    n: int


class SeedTest(BaseModel):
    """A one-sample t-test of per-seed values against zero."""
    n: int                 # seeds
    estimate: float        # mean of the per-seed values
    stderr: float
    ci_low: float
    ci_high: float
    statistic: float
    p_value: float
    mde: float             # minimum detectable effect (80% power, two-sided α)
    note: str = ""


def mean_ci(values, level: float = LEVEL) -> Interval:
    """Mean and t-interval over the finite values; n < 2 has no interval."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if x.size == 0:
        return Interval(mean=NAN, low=NAN, high=NAN, n=0)
    if x.size == 1:
        return Interval(mean=float(x[0]), low=NAN, high=NAN, n=1)
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return Interval(mean=float(x.mean()), low=float(x.mean() - half),
                    high=float(x.mean() + half), n=int(x.size))


def minimum_detectable_effect(sd: float, n: int, alpha: float = ALPHA,
                              power: float = POWER) -> float:
    """Smallest true mean a two-sided one-sample t-test over n values of spread `sd` detects
    with probability `power` (the usual normal-approximation form with t quantiles)."""
    if n < 2 or not np.isfinite(sd):
        return NAN
    df = n - 1
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * sd / math.sqrt(n))


def seed_test(per_seed, level: float = LEVEL, min_seeds: int = MIN_SEEDS) -> SeedTest:
    """One-sample t-test of per-seed values against 0 (finite values only)."""
    x = np.asarray([v for v in per_seed if v is not None and np.isfinite(v)], dtype=float)
    n = int(x.size)
    estimate = float(x.mean()) if n else NAN
    if n < min_seeds:
        return SeedTest(n=n, estimate=estimate, stderr=NAN, ci_low=NAN, ci_high=NAN,
                        statistic=NAN, p_value=NAN, mde=NAN, note=TOO_FEW_SEEDS)
    sd = float(x.std(ddof=1))
    if sd == 0.0:
        if estimate == 0.0:   # e.g. a saturated accuracy: no effect in any seed
            return SeedTest(n=n, estimate=0.0, stderr=0.0, ci_low=0.0, ci_high=0.0,
                            statistic=0.0, p_value=1.0, mde=0.0)
        return SeedTest(n=n, estimate=estimate, stderr=0.0, ci_low=estimate, ci_high=estimate,
                        statistic=NAN, p_value=NAN, mde=0.0,
                        note="identical in every seed: no spread to test against")
    se = sd / math.sqrt(n)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * se
    result = stats.ttest_1samp(x, 0.0)
    return SeedTest(n=n, estimate=estimate, stderr=se, ci_low=estimate - half,
                    ci_high=estimate + half, statistic=float(result.statistic),
                    p_value=float(result.pvalue), mde=minimum_detectable_effect(sd, n))


def ols_slope(x, y) -> float:
    """OLS slope of y on x over the finite pairs; NaN with fewer than two distinct x."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 2 or np.unique(x).size < 2:
        return NAN
    xc = x - x.mean()
    return float(xc @ (y - y.mean()) / (xc @ xc))


def seed_slopes(cells: pd.DataFrame, metric: str, x: str = "ratio") -> pd.Series:
    """Per seed, the OLS slope of `metric` against column `x` over that seed's cells."""
    if metric not in cells or cells.empty:
        return pd.Series(dtype=float)
    return cells.groupby("seed").apply(lambda g: ols_slope(g[x], g[metric]),
                                       include_groups=False).astype(float)


def item_mde(item_sd: float, n_items: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest shift of one cell's mean that its own items could detect (normal
    approximation, item sampling only): a lower bound on what any test of that cell can see,
    and all a grid with too few seeds can say about its sensitivity."""
    if not (np.isfinite(item_sd) and n_items and n_items > 1):
        return NAN
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * item_sd
                 / math.sqrt(n_items))


def slope_test(cells: pd.DataFrame, metric: str, x: str = "ratio") -> SeedTest:
    """Mean per-seed slope of `metric` against `x`, tested across seeds."""
    return seed_test(seed_slopes(cells, metric, x).tolist())


def bh_adjust(p_values) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values; NaN stays NaN and is not counted as a comparison."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, NAN)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = stats.false_discovery_control(np.clip(p[finite], 0.0, 1.0), method="bh")
    return out


# -- the cells frame -------------------------------------------------------------------------

def curve_cells(cells: pd.DataFrame, bias_type: str, mitigation: str) -> pd.DataFrame:
    """Grid cells (round 0) of one inheritance curve: the bias type's cells under the mitigation
    plus the shared γ = 0 cells; bias_type POOLED takes every bias type but the control sets
    (planted on purpose, they would dilute or inflate the study's own pooled answer)."""
    grid = cells[cells["round"] == 0]
    own = grid["mitigation"] == mitigation
    if bias_type != POOLED:
        own &= grid["bias_type"] == bias_type
    else:
        own &= ~grid["bias_type"].isin((ORIGINAL_ONLY, *CONTROL_SETS))
    return grid[own | (grid["ratio"] == 0.0)]


def bias_types(cells: pd.DataFrame) -> list[str]:
    grid = cells[cells["round"] == 0]
    return sorted(set(grid.loc[grid["ratio"] > 0, "bias_type"]))


def mitigations(cells: pd.DataFrame) -> list[str]:
    """`none` first, then the others alphabetically."""
    found = set(cells.loc[(cells["round"] == 0) & (cells["ratio"] > 0), "mitigation"])
    return sorted(found, key=lambda m: (m != "none", m))


def summarize(cells: pd.DataFrame, metric: str,
              by: tuple[str, ...] = ("bias_type", "ratio", "mitigation")) -> pd.DataFrame:
    """Mean and t-interval over seeds per group of `by`."""
    if metric not in cells or cells.empty:
        return pd.DataFrame(columns=[*by, "metric", "n", "mean", "ci_low", "ci_high"])
    rows = []
    for key, group in cells.groupby(list(by), sort=True):
        ci = mean_ci(group[metric].tolist())
        rows.append({**dict(zip(by, key)), "metric": metric, "n": ci.n, "mean": ci.mean,
                     "ci_low": ci.low, "ci_high": ci.high})
    return pd.DataFrame(rows)


def _slope_row(test: SeedTest) -> dict:
    return {"n": test.n, "slope": test.estimate, "stderr": test.stderr, "ci_low": test.ci_low,
            "ci_high": test.ci_high, "p_value": test.p_value, "mde": test.mde, "note": test.note}


def inheritance_slopes(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Slope of `metric` against γ per bias type (and pooled) x mitigation; per bias type first."""
    rows = []
    if metric not in cells:
        return pd.DataFrame(rows)
    types = bias_types(cells)
    pooled = [POOLED] if set(types) - set(CONTROL_SETS) else []
    for mitigation in mitigations(cells):
        for bias_type in [*types, *pooled]:
            curve = curve_cells(cells, bias_type, mitigation)
            rows.append({"metric": metric, "bias_type": bias_type, "mitigation": mitigation,
                         **_slope_row(slope_test(curve, metric))})
    return pd.DataFrame(rows)


def _paired_row(test: SeedTest, signed: float) -> dict:
    return {"n_pairs": test.n, "mean_diff": test.estimate, "signed_diff": signed,
            "statistic": test.statistic, "ci_low": test.ci_low, "ci_high": test.ci_high,
            "p_value": test.p_value, "mde": test.mde, "note": test.note}


def _per_seed_difference(grid: pd.DataFrame, metric: str, treated: str, control: str,
                         magnitude: bool = True) -> pd.Series:
    """Per seed, the mean over matched (bias type, γ) of f(treated) − f(control), f = |·| or
    the identity."""
    keyed = grid.set_index(["bias_type", "ratio", "seed"])[["mitigation", metric]]
    a = keyed[keyed["mitigation"] == treated][metric]
    b = keyed[keyed["mitigation"] == control][metric]
    both = pd.concat({"a": a, "b": b}, axis=1).dropna()
    if magnitude:
        both = both.abs()
    return (both["a"] - both["b"]).groupby(level="seed").mean()


def mitigation_tests(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each mitigation against `none`: per bias type and γ (a seed's difference is one pair),
    and pooled (each seed's differences averaged over bias types and γ first). The test is on
    |bias|: mean_diff < 0 means the mitigation moved the bias toward zero."""
    rows = []
    if metric not in cells:
        return pd.DataFrame(rows)
    grid = cells[(cells["round"] == 0) & (cells["ratio"] > 0)]
    for mitigation in mitigations(cells)[1:]:
        for (bias_type, ratio), part in grid.groupby(["bias_type", "ratio"], sort=True):
            diff = _per_seed_difference(part, metric, mitigation, "none")
            signed = _per_seed_difference(part, metric, mitigation, "none", magnitude=False)
            if diff.empty:
                continue
            rows.append({"metric": metric, "bias_type": bias_type, "ratio": float(ratio),
                         "mitigation": mitigation,
                         **_paired_row(seed_test(diff.tolist()), float(signed.mean()))})
        diff = _per_seed_difference(grid, metric, mitigation, "none")
        signed = _per_seed_difference(grid, metric, mitigation, "none", magnitude=False)
        rows.append({"metric": metric, "bias_type": POOLED, "ratio": NAN, "mitigation": mitigation,
                     **_paired_row(seed_test(diff.tolist()),
                                   float(signed.mean()) if len(signed) else NAN)})
    return pd.DataFrame(rows)


def mitigation_ranking(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Every pair of mitigations (none left out), pooled per seed as in `mitigation_tests`:
    mean_diff < 0 means `mitigation` leaves less |bias| than `versus`."""
    rows = []
    if metric not in cells:
        return pd.DataFrame(rows)
    grid = cells[(cells["round"] == 0) & (cells["ratio"] > 0)]
    others = mitigations(cells)[1:]
    for i, a in enumerate(others):
        for b in others[i + 1:]:
            diff = _per_seed_difference(grid, metric, a, b)
            rows.append({"metric": metric, "mitigation": a, "versus": b,
                         **_paired_row(seed_test(diff.tolist()), NAN)})
    return pd.DataFrame(rows)


def contrast_test(cells: pd.DataFrame, metric: str, treated: str, control: str,
                  mitigation: str = "none") -> SeedTest:
    """Two bias types against each other (signed): per seed, the mean over γ > 0 of treated −
    control at the same γ; tested across seeds. The planted control's own test: the skewed set
    and its null twin share their texts, so the difference is the planted dependence alone."""
    grid = cells[(cells["round"] == 0) & (cells["ratio"] > 0) & (cells["mitigation"] == mitigation)]
    if metric not in grid:
        return seed_test([])
    keyed = grid.set_index(["ratio", "seed"])
    a = keyed[keyed["bias_type"] == treated][metric]
    b = keyed[keyed["bias_type"] == control][metric]
    both = pd.concat({"a": a, "b": b}, axis=1).dropna()
    return seed_test((both["a"] - both["b"]).groupby(level="seed").mean().tolist())


def round_drift(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per-seed slope of `metric` against the round number over the multi-round cells."""
    rounds = cells[cells["round"] > 0]
    if metric not in cells or rounds.empty:
        return pd.DataFrame()
    return pd.DataFrame([{"metric": metric, **_slope_row(slope_test(rounds, metric, x="round"))}])


def ratio_window_test(cells: pd.DataFrame, metric: str, low: float, high: float) -> SeedTest:
    """Cells with γ in [low, high] (mitigation none, mean over bias types and γ per seed) against
    the γ = 0 cell of the same seed: does a little augmentation help or hurt?"""
    grid = cells[(cells["round"] == 0) & (cells["mitigation"] == "none")]
    if metric not in grid:
        return seed_test([])
    window = grid[(grid["ratio"] >= low) & (grid["ratio"] <= high) & (grid["ratio"] > 0)]
    zero = grid[grid["ratio"] == 0.0]
    diff = (window.groupby("seed")[metric].mean() - zero.groupby("seed")[metric].mean()).dropna()
    return seed_test(diff.tolist())


def _demo() -> None:
    rng = np.random.default_rng(1)
    rows = [{"bias_type": "bt" if r else ORIGINAL_ONLY, "ratio": r, "mitigation": m, "seed": s,
             "round": 0, "gap": 0.3 * r - (0.1 * r if m == "loss" else 0) + rng.normal(0, 0.01)}
            for s in range(4) for r in (0.0, 0.1, 0.5) for m in (("none",) if r == 0 else ("none", "loss"))]
    cells = pd.DataFrame(rows)
    print(inheritance_slopes(cells, "gap").to_string())
    print(mitigation_tests(cells, "gap").to_string())


if __name__ == "__main__":
    _demo()
