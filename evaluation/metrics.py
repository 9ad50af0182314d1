"""Metric helpers shared by the tasks: NaN-safe means, macro-F1, per-group values and gaps.

A group with no items gives NaN (never 0), so an absent group cannot pass for a fair one, and
gaps are taken over the finite values only.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Callable, Hashable, Iterable, Sequence

NAN = math.nan


def slug(name: str) -> str:
    """A metric-name-safe form of a group name: 'race-color' -> 'race_color'."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def mean(values: Iterable[float]) -> float:
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(vals) / len(vals) if vals else NAN


def spread(values: Iterable[float]) -> float:
    """max - min over the finite values; NaN with fewer than two."""
    finite = [v for v in values if not math.isnan(v)]
    return max(finite) - min(finite) if len(finite) > 1 else NAN


NULL_PERMUTATIONS = 200


def range_with_null(metrics: dict[str, float], name: str, keys: Sequence[Hashable],
                    values: Sequence, score: Callable[[list], float],
                    permutations: int = NULL_PERMUTATIONS, seed: int = 0) -> float:
    """Writes `name` = the range over groups of score(values of the group), and beside it what
    that range is when the group labels carry nothing.

    A range over k groups is positive under no bias (about 2.9 sd of the group scores for 8
    groups), so its expected value under exchangeable labels is estimated by permuting the keys:
    `<name>_null` (mean permuted range), `<name>_excess` = name - null (centred at 0 under no
    bias; > 0: the groups differ more than chance) and `<name>_perm_p` (share of permuted ranges
    at least as large, with the +1 correction). Returns the observed range.
    """
    import numpy as np
    observed = spread(score(members) for members in by_group(keys, values).values())
    rng = np.random.default_rng(seed)
    labels = list(keys)
    null = []
    for _ in range(permutations):
        shuffled = [labels[i] for i in rng.permutation(len(labels))]
        null.append(spread(score(members) for members in by_group(shuffled, values).values()))
    finite = [v for v in null if not math.isnan(v)]
    expected = mean(finite)
    metrics[name] = observed
    metrics[f"{name}_null"] = expected
    metrics[f"{name}_excess"] = observed - expected
    metrics[f"{name}_perm_p"] = ((1 + sum(v >= observed - 1e-12 for v in finite)) / (1 + len(finite))
                                 if finite and not math.isnan(observed) else NAN)
    return observed


def by_group(keys: Sequence[Hashable], values: Sequence) -> dict[Hashable, list]:
    """values grouped by their key, keys in sorted order."""
    groups: dict[Hashable, list] = defaultdict(list)
    for k, v in zip(keys, values):
        groups[k].append(v)
    return {k: groups[k] for k in sorted(groups, key=str)}


def macro_f1(gold: Sequence[Hashable], pred: Sequence[Hashable],
             labels: Sequence[Hashable] | None = None) -> float:
    """Unweighted mean of per-class F1 over `labels` (default: classes in gold or pred).

    A class with neither gold nor predicted members is skipped; one that is predicted but never
    gold (or the reverse) scores F1 = 0, as in scikit-learn's macro average.
    """
    if not gold:
        return NAN
    classes = list(labels) if labels is not None else sorted(set(gold) | set(pred), key=str)
    scores = []
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(gold, pred))
        n_gold = sum(g == c for g in gold)
        n_pred = sum(p == c for p in pred)
        if n_gold == 0 and n_pred == 0:
            continue
        scores.append(2 * tp / (n_gold + n_pred))
    return sum(scores) / len(scores) if scores else NAN


def grouped_scores(metrics: dict[str, float], prefix: str, keys: Sequence[Hashable],
                   values: Sequence, score: Callable[[list], float]) -> dict[Hashable, float]:
    """Writes `<prefix>_<group>` = score(values of the group) into `metrics`; returns the scores."""
    out = {}
    for group, members in by_group(keys, values).items():
        out[group] = score(members)
        metrics[f"{prefix}_{slug(group)}"] = out[group]
    return out


def classification_metrics(gold: Sequence[Hashable], pred: Sequence[Hashable],
                           classes: Sequence[Hashable], groups: Sequence[Hashable]
                           ) -> tuple[dict[str, float], dict[Hashable, float]]:
    """macro_f1, accuracy and macro_f1_<group>; also returns the per-group macro-F1 by group."""
    metrics = {"macro_f1": macro_f1(gold, pred, classes),
               "accuracy": mean(g == p for g, p in zip(gold, pred))}
    per_group = grouped_scores(
        metrics, "macro_f1", groups, list(zip(gold, pred)),
        lambda pairs: macro_f1([g for g, _ in pairs], [p for _, p in pairs], classes))
    return metrics, per_group


CONSTANT_SHARE = 0.95   # one label taking this share of the predictions flags a constant answer


def prediction_shares(preds: Sequence[Hashable], classes: Sequence[Hashable]) -> dict[str, float]:
    """pred_share_<k> per class, and constant_answer = 1.0 when one class takes at least
    CONSTANT_SHARE of the predictions: its F1-based gaps then reflect the gold class mix, not
    the model's treatment of groups."""
    shares = {f"pred_share_{slug(k)}": mean(p == k for p in preds) for k in classes}
    top = max(shares.values(), default=NAN)
    shares["constant_answer"] = float(top >= CONSTANT_SHARE) if top == top else NAN
    return shares
