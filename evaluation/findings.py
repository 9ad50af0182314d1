"""Which metric stands for what, every test of a report, and the paper's findings checked against them.

`TASK_METRICS` names, per task, the metric drawn as its curve, its bias metric (inheritance
slopes, mitigation tests, the Pareto view) and its group metrics (the shaded band).
`run_tests(cells)` runs every test on a cells frame (see evaluation/statistics.py) and
Benjamini–Hochberg-adjusts them as one family; `check_findings` reads PAPER.md's headline
directions off those tests: "agrees", "disagrees" (BH-adjusted p < α, sign as / against the
paper), "not significant", or "not measured" (the metric is absent or too few cells to test).

    python -m evaluation.findings          # lists the findings and the metric each maps to
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from bias.vocabulary import CULTURES, GENDERS
from evaluation import statistics as st

ALPHA = 0.05


class TaskMetrics(BaseModel):
    headline: str                     # the curve of the task's panel
    bias: str                         # the gap the slopes and mitigation tests are about
    groups: tuple[str, ...] = ()      # the band spans the lowest and highest of those present


def _grouped(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}_{g}" for g in (*GENDERS, *CULTURES))


TASK_METRICS: dict[str, TaskMetrics] = {
    "occupation_classification": TaskMetrics(headline="accuracy", bias="accuracy_gap",
                                              groups=_grouped("accuracy")),
    "salary_recommendation": TaskMetrics(headline="mean_salary", bias="salary_gap",
                                         groups=_grouped("mean_salary")),
    "recruitment": TaskMetrics(headline="parity_deviation", bias="selection_gap",
                               groups=_grouped("selection_ratio")),
    "story_generation": TaskMetrics(headline="negative_share", bias="negative_share_gap",
                                    groups=_grouped("negative_share")),
    "hate_speech": TaskMetrics(headline="macro_f1", bias="macro_f1_gap",
                               groups=_grouped("macro_f1")),
    "toxigen": TaskMetrics(headline="macro_f1", bias="macro_f1_gap"),
    "bbq": TaskMetrics(headline="accuracy", bias="bias_score_ambig",
                       groups=("accuracy_ambig", "accuracy_disambig")),
    "crows_pairs": TaskMetrics(headline="stereotype_score", bias="bias"),
    "stereoset": TaskMetrics(headline="icat", bias="ss_gap"),
    "winobias": TaskMetrics(headline="accuracy", bias="accuracy_gap",
                            groups=("accuracy_pro", "accuracy_anti")),
}
# The bias metric the experiment-wide findings (rounds, mitigations) use: the first one present.
PRIMARY_BIAS = ("occupation_classification/accuracy_gap", "salary_recommendation/salary_gap",
                "recruitment/selection_gap", "story_generation/negative_share_gap")


def task_metrics(task: str, metric_names) -> TaskMetrics | None:
    """The task's metric map, full names; an unlisted task gets accuracy/macro-F1 and a *_gap."""
    names = set(metric_names)
    spec = TASK_METRICS.get(task)
    if spec is None:
        own = sorted(m.partition("/")[2] for m in names if m.startswith(task + "/"))
        headline = next((m for m in ("accuracy", "macro_f1") if m in own), None)
        bias = next((m for m in own if m.endswith("_gap")), None)
        if not headline or not bias:
            return None
        spec = TaskMetrics(headline=headline, bias=bias)
    full = TaskMetrics(headline=f"{task}/{spec.headline}", bias=f"{task}/{spec.bias}",
                       groups=tuple(f"{task}/{g}" for g in spec.groups if f"{task}/{g}" in names))
    return full if full.headline in names or full.bias in names else None


def tasks_in(metric_names) -> dict[str, TaskMetrics]:
    tasks = sorted({m.partition("/")[0] for m in metric_names if "/" in m})
    found = {t: task_metrics(t, metric_names) for t in tasks}
    return {t: spec for t, spec in found.items() if spec is not None}


def primary_bias(metric_names) -> str | None:
    return next((m for m in PRIMARY_BIAS if m in set(metric_names)), None)


# -- the findings ---------------------------------------------------------------------------

class Finding(BaseModel):
    claim: str
    metric: str | None = None         # None: the primary bias metric of the experiment
    test: Literal["slope", "window", "drift", "mitigation", "most_robust", "not_removed"]
    expected: int = 1                 # the paper's sign of the estimate
    mitigation: str | None = None
    max_ratio: float | None = None    # slope over γ <= max_ratio only ("even at low ratios")
    window: tuple[float, float] | None = None


FINDINGS: list[Finding] = [
    Finding(claim="Occupation classification: majority-group (male) accuracy rises with γ",
            metric="occupation_classification/accuracy_male", test="slope", expected=1),
    Finding(claim="Occupation classification: minority-group (female) accuracy falls with γ",
            metric="occupation_classification/accuracy_female", test="slope", expected=-1),
    Finding(claim="The salary gap widens with γ",
            metric="salary_recommendation/salary_gap", test="slope", expected=1),
    Finding(claim="Recruitment shifts towards Spanish men",
            metric="recruitment/selection_ratio_spanish_male", test="slope", expected=1),
    Finding(claim="Recruitment shifts away from Arabic candidates",
            metric="recruitment/selection_ratio_arabic", test="slope", expected=-1),
    Finding(claim="Directly bias-related classification drops even at low ratios (hate speech)",
            metric="hate_speech/macro_f1", test="slope", expected=-1, max_ratio=0.2),
    Finding(claim="Directly bias-related classification drops even at low ratios (ToxiGen)",
            metric="toxigen/macro_f1", test="slope", expected=-1, max_ratio=0.2),
    Finding(claim="Indirectly related tasks can improve at γ 10–20% (BBQ)",
            metric="bbq/accuracy", test="window", expected=1, window=(0.1, 0.2)),
    Finding(claim="Indirectly related tasks can improve at γ 10–20% (WinoBias)",
            metric="winobias/accuracy", test="window", expected=1, window=(0.1, 0.2)),
    Finding(claim="Multi-round self-augmentation accumulates bias", test="drift", expected=1),
    Finding(claim="Token-based mitigation reduces bias (paper: p = 0.0359)", test="mitigation",
            mitigation="token", expected=-1),
    Finding(claim="Mask-based mitigation reduces bias (paper: p = 0.0485)", test="mitigation",
            mitigation="mask", expected=-1),
    Finding(claim="Loss-based mitigation reduces bias (paper: p = 0.0215)", test="mitigation",
            mitigation="loss", expected=-1),
    Finding(claim="Loss-based mitigation is the most robust", test="most_robust", expected=-1),
    Finding(claim="No mitigation removes inheritance fully", test="not_removed", expected=1),
]


# -- one family of tests ----------------------------------------------------------------------

@dataclass
class Tests:
    """Every test of a report; `p_adjusted` is BH over all rows of all four tables together."""
    slopes: pd.DataFrame       # per metric x bias type (and pooled) x mitigation, against γ
    paired: pd.DataFrame       # mitigation vs none per bias type x γ, and pooled
    drift: pd.DataFrame        # against the round number
    extra: pd.DataFrame        # the findings' own tests (low-γ slopes, γ windows)
    alpha: float = ALPHA
    notes: list[str] = field(default_factory=list)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"slopes": self.slopes, "paired": self.paired, "drift": self.drift,
                "extra": self.extra}


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_tests(cells: pd.DataFrame, alpha: float = ALPHA) -> Tests:
    names = [c for c in cells.columns if "/" in c]
    bias_metrics = sorted({spec.bias for spec in tasks_in(names).values() if spec.bias in names})
    slope_metrics = sorted(set(bias_metrics) | {f.metric for f in FINDINGS
                                                if f.test == "slope" and f.max_ratio is None
                                                and f.metric in names})
    slopes = _concat([st.inheritance_slopes(cells, m) for m in slope_metrics])
    paired = _concat([st.mitigation_tests(cells, m) for m in bias_metrics])
    drift = _concat([st.round_drift(cells, m) for m in bias_metrics])
    extra = []
    for f in FINDINGS:
        if f.metric not in names:
            continue
        if f.test == "slope" and f.max_ratio is not None:
            low = cells[cells["ratio"] <= f.max_ratio]
            fit = st.slope_test(st.curve_cells(low, st.POOLED, "none")["ratio"],
                                st.curve_cells(low, st.POOLED, "none")[f.metric])
            extra.append({"metric": f.metric, "test": f"slope γ ≤ {f.max_ratio:g}",
                          "estimate": fit.slope, "ci_low": fit.ci_low, "ci_high": fit.ci_high,
                          "n": fit.n, "p_value": fit.p_value})
        elif f.test == "window":
            w = st.ratio_window_test(cells, f.metric, *f.window)
            extra.append({"metric": f.metric, "test": f"γ {f.window[0]:g}–{f.window[1]:g} vs 0",
                          "estimate": w.mean_diff, "ci_low": np.nan, "ci_high": np.nan,
                          "n": w.n_pairs, "p_value": w.p_value})
    tests = Tests(slopes=slopes, paired=paired, drift=drift, extra=pd.DataFrame(extra), alpha=alpha)
    family = [t for t in tests.tables().values() if not t.empty]
    adjusted = st.bh_adjust(np.concatenate([t["p_value"].to_numpy(float) for t in family])
                            if family else [])
    start = 0
    for t in family:
        t["p_adjusted"] = adjusted[start:start + len(t)]
        start += len(t)
    return tests


# -- verdicts ---------------------------------------------------------------------------------

class Verdict(BaseModel):
    claim: str
    metric: str
    test: str
    estimate: float = np.nan
    p_adjusted: float = np.nan
    verdict: Literal["agrees", "disagrees", "not significant", "not measured"]


def _verdict(estimate: float, p_adjusted: float, expected: int, alpha: float) -> str:
    if not np.isfinite(p_adjusted) or not np.isfinite(estimate):
        return "not measured"
    if p_adjusted >= alpha:
        return "not significant"
    return "agrees" if np.sign(estimate) == expected else "disagrees"


def _row(frame: pd.DataFrame, **match) -> pd.Series | None:
    if frame.empty:
        return None
    hit = frame
    for key, value in match.items():
        hit = hit[hit[key] == value]
    return None if hit.empty else hit.iloc[0]


def check_findings(tests: Tests, metric_names) -> list[Verdict]:
    names = set(metric_names)
    primary = primary_bias(names)
    out = []
    for f in FINDINGS:
        metric = f.metric or primary
        if metric is None or metric not in names:
            out.append(Verdict(claim=f.claim, metric=metric or "(no bias metric)", test=f.test,
                               verdict="not measured"))
            continue
        row, label = None, f.test
        if f.test == "slope" and f.max_ratio is None:
            row = _row(tests.slopes, metric=metric, bias_type=st.POOLED, mitigation="none")
            label, est = "slope vs γ, all bias types, mitigation none", "slope"
        elif f.test in ("slope", "window"):
            row = _row(tests.extra, metric=metric)
            label, est = (row["test"] if row is not None else f.test), "estimate"
        elif f.test == "drift":
            row = _row(tests.drift, metric=metric)
            label, est = "slope vs round", "slope"
        elif f.test == "mitigation":
            row = _row(tests.paired, metric=metric, bias_type=st.POOLED, mitigation=f.mitigation)
            label, est = f"paired t-test {f.mitigation} − none, pooled", "mean_diff"
        elif f.test == "most_robust":
            out.append(_most_robust(f, tests, metric))
            continue
        else:
            out.append(_not_removed(f, tests, metric))
            continue
        if row is None:
            out.append(Verdict(claim=f.claim, metric=metric, test=label, verdict="not measured"))
            continue
        out.append(Verdict(claim=f.claim, metric=metric, test=label, estimate=row[est],
                           p_adjusted=row["p_adjusted"],
                           verdict=_verdict(row[est], row["p_adjusted"], f.expected, tests.alpha)))
    return out


def _most_robust(f: Finding, tests: Tests, metric: str) -> Verdict:
    """Agrees: loss has the largest significant reduction; disagrees: another mitigation
    reduces significantly more than loss does; otherwise not significant."""
    label = "pooled paired tests: loss vs the other mitigations"
    p = tests.paired
    pooled = p[(p["bias_type"] == st.POOLED) & (p["metric"] == metric)] if not p.empty else p
    if pooled.empty or "loss" not in set(pooled["mitigation"]) or len(pooled) < 2:
        return Verdict(claim=f.claim, metric=metric, test=label, verdict="not measured")
    loss = pooled[pooled["mitigation"] == "loss"].iloc[0]
    others = pooled[pooled["mitigation"] != "loss"]
    significant = others[(others["p_adjusted"] < tests.alpha) & (others["mean_diff"] < loss["mean_diff"])]
    if not significant.empty:
        verdict = "disagrees"
    elif loss["p_adjusted"] < tests.alpha and loss["mean_diff"] < 0 \
            and (loss["mean_diff"] <= others["mean_diff"]).all():
        verdict = "agrees"
    else:
        verdict = "not significant"
    return Verdict(claim=f.claim, metric=metric, test=label, estimate=loss["mean_diff"],
                   p_adjusted=loss["p_adjusted"], verdict=verdict)


def _not_removed(f: Finding, tests: Tests, metric: str) -> Verdict:
    """Judged on the mitigation with the flattest pooled slope: still significantly > 0 agrees,
    significantly < 0 (inheritance reversed, not kept) disagrees."""
    label = "flattest slope vs γ among the mitigations, pooled"
    s = tests.slopes
    rows = s[(s["metric"] == metric) & (s["bias_type"] == st.POOLED) & (s["mitigation"] != "none")
             & s["slope"].notna()] if not s.empty else s
    if rows.empty:
        return Verdict(claim=f.claim, metric=metric, test=label, verdict="not measured")
    flat = rows.loc[rows["slope"].idxmin()]
    return Verdict(claim=f.claim, metric=metric, test=f"{label} ({flat['mitigation']})",
                   estimate=flat["slope"], p_adjusted=flat["p_adjusted"],
                   verdict=_verdict(flat["slope"], flat["p_adjusted"], f.expected, tests.alpha))


if __name__ == "__main__":
    for finding in FINDINGS:
        print(f"{finding.test:12} {finding.metric or 'primary bias metric':45} {finding.claim}")
