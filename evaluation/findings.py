"""Which metric stands for what, every test of a report, and the paper's findings checked against them.

The metric map comes from the tasks' own declarations (evaluation/tasks: headline, one bias
metric per social bias with its sign, group metrics): a culture study is judged on culture
metrics and a gender study on gender metrics. `run_tests(cells, social_bias)` runs every test on
a cells frame (see evaluation/statistics.py) and Benjamini–Hochberg-adjusts them as one family;
`check_findings` reads PAPER.md's headline directions off those tests, per bias type first and
pooled second: "agrees", "disagrees" (BH-adjusted p < α, sign as / against the paper), "not
significant" (with the smallest effect the design could have detected), or "not measured" (the
metric is absent, or too few seeds to test).

    python -m evaluation.findings          # lists the findings and the metric each maps to
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

from bias import metric_names
from bias.config import CONTROL_NULL, CONTROL_SKEWED
from evaluation import statistics as st

ALPHA = 0.05
CONTROL_TEST = f"{CONTROL_SKEWED} − {CONTROL_NULL}, per seed"


class TaskMetrics(BaseModel):
    headline: str                     # the curve of the task's panel
    bias: str                         # the bias metric the slopes and mitigation tests are about
    groups: tuple[str, ...] = ()      # the band spans the lowest and highest of those present
    signed: bool = True


def task_metrics(task: str, metric_names, social_bias: str) -> TaskMetrics | None:
    """The task's declared metrics for a study of `social_bias`, full names; None when the task
    is unknown, cannot speak to that social bias, or logged none of them."""
    from evaluation.tasks import TASKS
    names = set(metric_names)
    spec = TASKS.get(task)
    declared = spec.bias_metric(social_bias) if spec else None
    if declared is None:
        return None
    full = TaskMetrics(headline=f"{task}/{spec.headline}", bias=f"{task}/{declared.name}",
                       groups=tuple(f"{task}/{g}" for g in spec.group_metrics
                                    if f"{task}/{g}" in names), signed=declared.signed)
    return full if full.headline in names or full.bias in names else None


def tasks_in(metric_names, social_bias: str) -> dict[str, TaskMetrics]:
    tasks = sorted({m.partition("/")[0] for m in metric_names if "/" in m})
    found = {t: task_metrics(t, metric_names, social_bias) for t in tasks}
    return {t: spec for t, spec in found.items() if spec is not None}


def primary_bias(metric_names, social_bias: str) -> str | None:
    """The experiment-wide bias metric (rounds, mitigations): the first signed bias metric
    declared for the study's social bias, in registry order, that was logged; else the first
    unsigned one."""
    from evaluation.tasks import TASKS
    names = set(metric_names)
    present = [(t.name, t.bias_metric(social_bias)) for t in TASKS.values()]
    present = [(task, b) for task, b in present if b and f"{task}/{b.name}" in names]
    ordered = [p for p in present if p[1].signed] + [p for p in present if not p[1].signed]
    return f"{ordered[0][0]}/{ordered[0][1].name}" if ordered else None


# -- the findings ---------------------------------------------------------------------------

class Finding(BaseModel):
    claim: str
    metric: str | None = None         # None: the primary bias metric of the experiment
    social_bias: str | None = None    # the study the claim is about (None: any)
    test: Literal["slope", "window", "drift", "mitigation", "most_robust", "not_removed",
                  "control"]
    expected: int = 1                 # the paper's sign of the estimate
    mitigation: str | None = None
    max_ratio: float | None = None    # slope over γ <= max_ratio only ("even at low ratios")
    window: tuple[float, float] | None = None


FINDINGS: list[Finding] = [
    Finding(claim="Control: the planted gender → occupation skew is detected (control-skewed "
                  "− control-null, same texts)", test="control", expected=1),
    Finding(claim="Biased augmentation moves the model toward the stereotype (primary bias "
                  "metric rises with γ)", test="slope", expected=1),
    Finding(claim="Occupation classification: majority-group (male) accuracy rises with γ",
            metric="occupation_classification/accuracy_male", social_bias="gender",
            test="slope", expected=1),
    Finding(claim="Occupation classification: minority-group (female) accuracy falls with γ",
            metric="occupation_classification/accuracy_female", social_bias="gender",
            test="slope", expected=-1),
    Finding(claim="The salary gap widens with γ", social_bias="gender",
            metric="salary_recommendation/salary_gap", test="slope", expected=1),
    Finding(claim="Recruitment shifts towards Spanish men", social_bias="culture",
            metric="recruitment/selection_ratio_spanish_male", test="slope", expected=1),
    Finding(claim="Recruitment shifts away from Arabic candidates", social_bias="culture",
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


def findings_for(social_bias: str) -> list[Finding]:
    return [f for f in FINDINGS if f.social_bias in (None, social_bias)]


# -- one family of tests ----------------------------------------------------------------------

@dataclass
class Tests:
    """Every test of a report; `p_adjusted` is BH over all rows of all tables together, except
    the control's rows, which are their own family."""
    slopes: pd.DataFrame       # per metric x bias type (and pooled) x mitigation, against γ
    paired: pd.DataFrame       # |bias| under a mitigation vs none, per bias type x γ, and pooled
    ranking: pd.DataFrame      # |bias| between two mitigations, pooled
    drift: pd.DataFrame        # against the round number
    extra: pd.DataFrame        # the findings' own tests (low-γ slopes, γ windows)
    social_bias: str = "gender"
    alpha: float = ALPHA
    notes: list[str] = field(default_factory=list)
    item_mde: dict[str, float] = field(default_factory=dict)   # metric -> one cell's item mde

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"slopes": self.slopes, "paired": self.paired, "ranking": self.ranking,
                "drift": self.drift, "extra": self.extra}


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _extra_row(metric: str, test: str, result: st.SeedTest) -> dict:
    return {"metric": metric, "test": test, "estimate": result.estimate, "ci_low": result.ci_low,
            "ci_high": result.ci_high, "n": result.n, "p_value": result.p_value,
            "mde": result.mde, "note": result.note}


def run_tests(cells: pd.DataFrame, social_bias: str = "gender", alpha: float = ALPHA) -> Tests:
    names = [c for c in cells.columns if "/" in c]
    findings = findings_for(social_bias)
    bias_metrics = sorted({spec.bias for spec in tasks_in(names, social_bias).values()
                           if spec.bias in names})
    slope_metrics = sorted(set(bias_metrics) | {f.metric for f in findings
                                                if f.test == "slope" and f.max_ratio is None
                                                and f.metric in names})
    slopes = _concat([st.inheritance_slopes(cells, m) for m in slope_metrics])
    paired = _concat([st.mitigation_tests(cells, m) for m in bias_metrics])
    ranking = _concat([st.mitigation_ranking(cells, m) for m in bias_metrics])
    drift = _concat([st.round_drift(cells, m) for m in bias_metrics])
    extra = []
    for f in findings:
        if f.metric not in names:
            continue
        if f.test == "slope" and f.max_ratio is not None:
            low = st.curve_cells(cells[cells["ratio"] <= f.max_ratio], st.POOLED, "none")
            extra.append(_extra_row(f.metric, f"slope γ ≤ {f.max_ratio:g}",
                                    st.slope_test(low, f.metric)))
        elif f.test == "window":
            extra.append(_extra_row(f.metric, f"γ {f.window[0]:g}–{f.window[1]:g} vs 0",
                                    st.ratio_window_test(cells, f.metric, *f.window)))
    types = set(cells.loc[cells["ratio"] > 0, "bias_type"]) if "bias_type" in cells else set()
    if {CONTROL_SKEWED, CONTROL_NULL} <= types:
        extra += [_extra_row(m, CONTROL_TEST, st.contrast_test(cells, m, CONTROL_SKEWED, CONTROL_NULL))
                  for m in bias_metrics]
    tests = Tests(slopes=slopes, paired=paired, ranking=ranking, drift=drift,
                  extra=pd.DataFrame(extra), social_bias=social_bias, alpha=alpha)
    for metric in bias_metrics:   # what a grid too small to test across seeds can still say
        sd, n = f"{metric}_item_sd", metric_names.task_metric(metric_names.task_of(metric), "n_items")
        if sd in cells and n in cells:
            tests.item_mde[metric] = st.item_mde(float(cells[sd].mean()), float(cells[n].mean()))
    _bh_family(list(tests.tables().values()), lambda t: ~_is_control(t))
    # The control is a check of the instrument, not a finding of the study: its rows (the
    # skewed − twin contrast and each control set's own tests) are their own family, so a planted
    # (known) effect neither needs to survive the study's multiplicity nor lowers the study's
    # adjusted p-values by adding a guaranteed discovery.
    _bh_family(list(tests.tables().values()), _is_control)
    return tests


def _is_control(table: pd.DataFrame) -> pd.Series:
    rows = pd.Series(False, index=table.index)
    if "test" in table:
        rows |= table["test"] == CONTROL_TEST
    if "bias_type" in table:
        rows |= table["bias_type"].isin([CONTROL_SKEWED, CONTROL_NULL])
    return rows


def _bh_family(tables: list[pd.DataFrame], member) -> None:
    """BH-adjust the rows `member(table)` selects across `tables`, as one family."""
    parts = [(t, member(t)) for t in tables if not t.empty]
    p = np.concatenate([t.loc[m, "p_value"].to_numpy(float) for t, m in parts]) if parts else []
    adjusted = st.bh_adjust(p)
    start = 0
    for t, m in parts:
        n = int(m.sum())
        if "p_adjusted" not in t:
            t["p_adjusted"] = np.nan
        t.loc[m, "p_adjusted"] = adjusted[start:start + n]
        start += n


# -- verdicts ---------------------------------------------------------------------------------

class Verdict(BaseModel):
    claim: str
    metric: str
    test: str
    bias_type: str = st.POOLED
    estimate: float = np.nan
    p_adjusted: float = np.nan
    mde: float = np.nan               # the smallest effect the test could have detected
    verdict: Literal["agrees", "disagrees", "not significant", "not measured"]
    note: str = ""


def _verdict(estimate: float, p_adjusted: float, expected: int, alpha: float) -> str:
    if not np.isfinite(p_adjusted) or not np.isfinite(estimate):
        return "not measured"
    if p_adjusted >= alpha:
        return "not significant"
    return "agrees" if np.sign(estimate) == expected else "disagrees"


def _rows(frame: pd.DataFrame, **match) -> pd.DataFrame:
    if frame.empty:
        return frame
    hit = frame
    for key, value in match.items():
        hit = hit[hit[key] == value]
    return hit


def _from_row(f: Finding, metric: str, label: str, row: pd.Series | None, est: str,
              alpha: float, bias_type: str = st.POOLED, item_mde: dict | None = None) -> Verdict:
    item_mde = item_mde or {}
    if row is None:
        return Verdict(claim=f.claim, metric=metric, test=label, bias_type=bias_type,
                       verdict="not measured")
    note, mde = str(row.get("note") or ""), row.get("mde", np.nan)
    if note == st.TOO_FEW_SEEDS and np.isfinite(item_mde.get(metric, np.nan)):
        mde, note = item_mde[metric], f"{note}; mde from one cell's items alone (a lower bound)"
    return Verdict(claim=f.claim, metric=metric, test=label, bias_type=bias_type,
                   estimate=row[est], p_adjusted=row["p_adjusted"], mde=mde,
                   verdict=_verdict(row[est], row["p_adjusted"], f.expected, alpha), note=note)


def check_findings(tests: Tests, metric_names) -> list[Verdict]:
    """One verdict per finding and bias type (slopes: each bias type, then pooled)."""
    names = set(metric_names)
    primary = primary_bias(names, tests.social_bias)
    out = []
    has_control = not _rows(tests.extra, test=CONTROL_TEST).empty if not tests.extra.empty else False
    for f in findings_for(tests.social_bias):
        if f.test == "control" and not has_control:
            continue   # no control sets in this experiment: nothing to say about them
        metric = f.metric or primary
        if metric is None or metric not in names:
            out.append(Verdict(claim=f.claim, metric=metric or "(no bias metric)", test=f.test,
                               verdict="not measured"))
            continue
        if f.test == "slope" and f.max_ratio is None:
            rows = _rows(tests.slopes, metric=metric, mitigation="none")
            label = "mean per-seed slope vs γ, mitigation none"
            ordered = ([r for _, r in rows.iterrows() if r["bias_type"] != st.POOLED]
                       + [r for _, r in rows.iterrows() if r["bias_type"] == st.POOLED])
            out += [_from_row(f, metric, label, r, "slope", tests.alpha, r["bias_type"],
                              tests.item_mde) for r in ordered] or [_from_row(f, metric, label, None, "slope", tests.alpha)]
        elif f.test in ("slope", "window"):
            rows = _rows(tests.extra, metric=metric)
            row = rows.iloc[0] if len(rows) else None
            out.append(_from_row(f, metric, row["test"] if row is not None else f.test, row,
                                 "estimate", tests.alpha))
        elif f.test == "control":
            rows = _rows(tests.extra, metric=metric, test=CONTROL_TEST)
            out.append(_from_row(f, metric, CONTROL_TEST, rows.iloc[0] if len(rows) else None,
                                 "estimate", tests.alpha))
        elif f.test == "drift":
            rows = _rows(tests.drift, metric=metric)
            out.append(_from_row(f, metric, "mean per-seed slope vs round",
                                 rows.iloc[0] if len(rows) else None, "slope", tests.alpha))
        elif f.test == "mitigation":
            rows = _rows(tests.paired, metric=metric, bias_type=st.POOLED, mitigation=f.mitigation)
            out.append(_from_row(f, metric, f"|bias| {f.mitigation} − none, per seed, pooled",
                                 rows.iloc[0] if len(rows) else None, "mean_diff", tests.alpha))
        elif f.test == "most_robust":
            out.append(_most_robust(f, tests, metric))
        else:
            out.append(_not_removed(f, tests, metric))
    return out


def _most_robust(f: Finding, tests: Tests, metric: str) -> Verdict:
    """Agrees: loss reduces |bias| against none, and leaves significantly less |bias| than every
    other mitigation in the pairwise tests; disagrees: another mitigation leaves significantly
    less than loss; otherwise not significant. Rankings of point estimates decide nothing."""
    label = "pairwise |bias|: loss vs each other mitigation, per seed"
    loss = _rows(tests.paired, metric=metric, bias_type=st.POOLED, mitigation="loss")
    ranking = tests.ranking
    pairs = (ranking[(ranking["metric"] == metric)
                     & ((ranking["mitigation"] == "loss") | (ranking["versus"] == "loss"))]
             if not ranking.empty else ranking)
    if loss.empty or pairs.empty:
        return Verdict(claim=f.claim, metric=metric, test=label, verdict="not measured",
                       note="needs loss and at least one other mitigation")
    # Orient every pair as loss − other.
    diffs = np.where(pairs["mitigation"] == "loss", 1.0, -1.0) * pairs["mean_diff"].to_numpy()
    p_adj = pairs["p_adjusted"].to_numpy(float)
    significant = np.isfinite(p_adj) & (p_adj < tests.alpha)
    loss_row = loss.iloc[0]
    beats_none = loss_row["p_adjusted"] < tests.alpha and loss_row["mean_diff"] < 0
    if (significant & (diffs > 0)).any():
        verdict = "disagrees"
    elif beats_none and (significant & (diffs < 0)).all():
        verdict = "agrees"
    elif not np.isfinite(p_adj).any():
        verdict = "not measured"
    else:
        verdict = "not significant"
    worst = int(np.nanargmax(np.where(np.isfinite(p_adj), p_adj, -1)))
    return Verdict(claim=f.claim, metric=metric, test=label, estimate=float(diffs[worst]),
                   p_adjusted=float(p_adj[worst]), mde=float(pairs["mde"].iloc[worst]),
                   verdict=verdict)


def _not_removed(f: Finding, tests: Tests, metric: str) -> Verdict:
    """Judged on the mitigation with the flattest pooled slope: still significantly > 0 agrees,
    significantly < 0 (inheritance reversed, not kept) disagrees."""
    label = "flattest mean per-seed slope vs γ among the mitigations, pooled"
    s = tests.slopes
    rows = s[(s["metric"] == metric) & (s["bias_type"] == st.POOLED) & (s["mitigation"] != "none")
             & s["slope"].notna()] if not s.empty else s
    if rows.empty:
        return Verdict(claim=f.claim, metric=metric, test=label, verdict="not measured")
    flat = rows.loc[rows["slope"].abs().idxmin()]
    return _from_row(f, metric, f"{label} ({flat['mitigation']})", flat, "slope", tests.alpha)


if __name__ == "__main__":
    for finding in FINDINGS:
        print(f"{finding.test:12} {finding.metric or 'primary bias metric':45} {finding.claim}")
