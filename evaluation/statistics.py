"""Statistics for the report: per-cell bootstrap CIs, mitigation tests, inheritance slopes, BH.

Pure functions on a *cells frame*: one row per finished cell with the columns bias_type, ratio,
mitigation, seed, round and one column per metric (`<task>/<metric>`). `ray_jobs/report.py`
builds that frame from MLflow; nothing here reads MLflow or imports ray_jobs.

    python -m evaluation.statistics            # prints the tests on a small planted example

Methods (stated in the report as well):
  cell mean ± CI   mean over seeds, 95% percentile bootstrap of the mean (2,000 resamples,
                   numpy default_rng(0), so a report is reproducible); no CI with one seed
  mitigation test  paired t-test (scipy.stats.ttest_rel) of mitigation vs `none` at the same γ
                   and bias type, pairs matched by seed; the pooled test pairs by (bias type, γ, seed)
  inheritance      OLS slope of a metric against γ over the per-seed cells (γ = 0 is the shared
  coefficient      original-only cell), scipy.stats.linregress; CI = slope ± t(0.975, n-2) · SE,
                   p = linregress' two-sided t-test of slope = 0
  round drift      the same OLS slope against the round number (multi-round cells)
  multiplicity     Benjamini–Hochberg (scipy.stats.false_discovery_control) over every p-value of
                   one report: slopes, paired tests and drifts together
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy import stats

LEVEL = 0.95
N_BOOT = 2000
BOOT_SEED = 0
ORIGINAL_ONLY = "original-only"   # the γ = 0 cell's bias type (training/grid.py)
POOLED = "all"                    # a test over every bias type at once
NAN = math.nan


class Interval(BaseModel):
    mean: float
    low: float
    high: float
    n: int


class Slope(BaseModel):
    n: int
    slope: float
    intercept: float
    stderr: float
    ci_low: float
    ci_high: float
    p_value: float


class Paired(BaseModel):
    n_pairs: int
    mean_diff: float
    statistic: float
    p_value: float


def bootstrap_ci(values, level: float = LEVEL, n_boot: int = N_BOOT,
                 seed: int = BOOT_SEED) -> Interval:
    """Mean and percentile-bootstrap CI of the mean; NaNs are dropped, n < 2 has no interval."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if x.size == 0:
        return Interval(mean=NAN, low=NAN, high=NAN, n=0)
    if x.size == 1:
        return Interval(mean=float(x[0]), low=NAN, high=NAN, n=1)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return Interval(mean=float(x.mean()), low=float(low), high=float(high), n=int(x.size))


def slope_test(x, y, level: float = LEVEL) -> Slope:
    """OLS slope of y on x with a t-based CI; NaN figures when fewer than 3 points or one x;
    slope 0 with p = 1 when y does not vary (linregress would give 0/0)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3 or np.unique(x).size < 2:
        return Slope(n=int(x.size), slope=NAN, intercept=NAN, stderr=NAN, ci_low=NAN,
                     ci_high=NAN, p_value=NAN)
    if np.ptp(y) == 0:   # a flat curve (e.g. a saturated accuracy): slope 0, nothing to test
        return Slope(n=int(x.size), slope=0.0, intercept=float(y[0]), stderr=0.0, ci_low=0.0,
                     ci_high=0.0, p_value=1.0)
    fit = stats.linregress(x, y)
    half = stats.t.ppf(0.5 + level / 2, x.size - 2) * fit.stderr
    return Slope(n=int(x.size), slope=float(fit.slope), intercept=float(fit.intercept),
                 stderr=float(fit.stderr), ci_low=float(fit.slope - half),
                 ci_high=float(fit.slope + half), p_value=float(fit.pvalue))


def paired_test(treated: pd.Series, control: pd.Series) -> Paired:
    """Paired t-test of treated - control on the index keys both have (finite values only)."""
    both = pd.concat({"t": treated, "c": control}, axis=1).dropna()
    if len(both) < 2:
        diff = float((both["t"] - both["c"]).mean()) if len(both) else NAN
        return Paired(n_pairs=len(both), mean_diff=diff, statistic=NAN, p_value=NAN)
    diff = both["t"] - both["c"]
    if np.allclose(diff, diff.iloc[0]):   # a constant difference has no variance to test
        return Paired(n_pairs=len(both), mean_diff=float(diff.iloc[0]), statistic=NAN, p_value=NAN)
    result = stats.ttest_rel(both["t"], both["c"])
    return Paired(n_pairs=len(both), mean_diff=float(diff.mean()),
                  statistic=float(result.statistic), p_value=float(result.pvalue))


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
    plus the shared γ = 0 cells; bias_type POOLED takes every bias type."""
    grid = cells[cells["round"] == 0]
    own = grid["mitigation"] == mitigation
    if bias_type != POOLED:
        own &= grid["bias_type"] == bias_type
    else:
        own &= grid["bias_type"] != ORIGINAL_ONLY
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
    """Mean and bootstrap CI over seeds per group of `by`."""
    if metric not in cells or cells.empty:
        return pd.DataFrame(columns=[*by, "metric", "n", "mean", "ci_low", "ci_high"])
    rows = []
    for key, group in cells.groupby(list(by), sort=True):
        ci = bootstrap_ci(group[metric].tolist())
        rows.append({**dict(zip(by, key)), "metric": metric, "n": ci.n, "mean": ci.mean,
                     "ci_low": ci.low, "ci_high": ci.high})
    return pd.DataFrame(rows)


def inheritance_slopes(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Slope of `metric` against γ per bias type (and pooled) x mitigation."""
    rows = []
    if metric not in cells:
        return pd.DataFrame(rows)
    for mitigation in mitigations(cells):
        for bias_type in [*bias_types(cells), POOLED]:
            curve = curve_cells(cells, bias_type, mitigation)
            fit = slope_test(curve["ratio"], curve[metric])
            rows.append({"metric": metric, "bias_type": bias_type, "mitigation": mitigation,
                         **fit.model_dump()})
    return pd.DataFrame(rows)


def mitigation_tests(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Each mitigation against `none` at the same γ and bias type (pairs: seeds), and pooled
    over every bias type and γ > 0 (pairs: bias type, γ, seed)."""
    rows = []
    if metric not in cells:
        return pd.DataFrame(rows)
    grid = cells[(cells["round"] == 0) & (cells["ratio"] > 0)]
    keyed = grid.set_index(["bias_type", "ratio", "seed"])
    control = keyed[keyed["mitigation"] == "none"][metric]
    for mitigation in mitigations(cells)[1:]:
        treated = keyed[keyed["mitigation"] == mitigation][metric]
        for (bias_type, ratio), part in treated.groupby(level=["bias_type", "ratio"]):
            base = control[(control.index.get_level_values("bias_type") == bias_type)
                           & (control.index.get_level_values("ratio") == ratio)]
            test = paired_test(part.droplevel([0, 1]), base.droplevel([0, 1]))
            rows.append({"metric": metric, "bias_type": bias_type, "ratio": float(ratio),
                         "mitigation": mitigation, **test.model_dump()})
        rows.append({"metric": metric, "bias_type": POOLED, "ratio": NAN,
                     "mitigation": mitigation, **paired_test(treated, control).model_dump()})
    return pd.DataFrame(rows)


def round_drift(cells: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Slope of `metric` against the round number over the multi-round cells."""
    rounds = cells[cells["round"] > 0]
    if metric not in cells or rounds.empty:
        return pd.DataFrame()
    return pd.DataFrame([{"metric": metric, **slope_test(rounds["round"], rounds[metric]).model_dump()}])


def ratio_window_test(cells: pd.DataFrame, metric: str, low: float, high: float) -> Paired:
    """Cells with γ in [low, high] (mitigation none, mean over bias types and γ per seed) against
    the γ = 0 cell of the same seed: does a little augmentation help or hurt?"""
    grid = cells[(cells["round"] == 0) & (cells["mitigation"] == "none")]
    if metric not in grid:
        return Paired(n_pairs=0, mean_diff=NAN, statistic=NAN, p_value=NAN)
    window = grid[(grid["ratio"] >= low) & (grid["ratio"] <= high) & (grid["ratio"] > 0)]
    zero = grid[grid["ratio"] == 0.0]
    return paired_test(window.groupby("seed")[metric].mean(), zero.groupby("seed")[metric].mean())


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
