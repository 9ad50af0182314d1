"""The names runs log metrics and tags under, and their parsing: the one place that owns them.

On a cell's run (and the evaluate command's output):
  <task>/<metric>                          a task's metric, e.g. occupation_classification/accuracy
On the experiment's parent run:
  generation.<set>.s<seed>.<field>         a generated set's figures (kept, dropped_*, balance_*)
  analysis.distribution.<set>.<field>      the MMD test of one generated set (mmd2, p_value)
  analysis.distribution.seconds            ...and the analysis' wall time
  analysis.values.<field>                  the values analysis (js_distance_<culture>, seconds)
  round<k>.s<seed>.<field>                 one multi-round step (generation.kept, seconds)
Tags `analysis.<kind>.skipped` (and `analysis.distribution.<set>.skipped`) say why an analysis
is absent. Set names never contain a dot (bias types and control names are dashed).

    python -m bias.metric_names
"""
from __future__ import annotations

TASK_SEPARATOR = "/"
GENERATION = "generation"
DISTRIBUTION = "analysis.distribution"
VALUES = "analysis.values"


def task_metric(task: str, metric: str) -> str:
    return f"{task}{TASK_SEPARATOR}{metric}"


def is_task_metric(name: str) -> bool:
    return TASK_SEPARATOR in name


def split_task_metric(name: str) -> tuple[str, str]:
    """(task, metric) of `<task>/<metric>`; ("", name) for a name that is not a task metric."""
    task, _, metric = name.rpartition(TASK_SEPARATOR)
    return task, metric


def task_of(name: str) -> str:
    return split_task_metric(name)[0]


def generation_metric(set_name: str, seed: int, field: str) -> str:
    return f"{GENERATION}.{set_name}.s{seed}.{field}"


def generation_set_of(name: str, field: str) -> str | None:
    """`<set>.s<seed>` of a `generation.<set>.s<seed>.<field>` name, else None."""
    prefix, suffix = f"{GENERATION}.", f".{field}"
    if name.startswith(prefix) and name.endswith(suffix):
        return name[len(prefix):-len(suffix)]
    return None


def distribution_metric(set_name: str, field: str) -> str:
    return f"{DISTRIBUTION}.{set_name}.{field}"


def distribution_set_of(name: str, field: str) -> str | None:
    """The set of an `analysis.distribution.<set>.<field>` name, else None."""
    prefix, suffix = f"{DISTRIBUTION}.", f".{field}"
    if name.startswith(prefix) and name.endswith(suffix) and name.count(".") == 3:
        return name[len(prefix):-len(suffix)]
    return None


def values_metric(field: str) -> str:
    return f"{VALUES}.{field}"


def values_field_of(name: str, field_prefix: str = "") -> str | None:
    """The rest of an `analysis.values.<field_prefix><rest>` name, else None."""
    prefix = f"{VALUES}.{field_prefix}"
    return name[len(prefix):] if name.startswith(prefix) else None


def round_metric(round_k: int, seed: int, field: str) -> str:
    return f"round{round_k}.s{seed}.{field}"


def skipped_tag(analysis: str, set_name: str | None = None) -> str:
    """`analysis.<analysis>.skipped`, or per set `analysis.<analysis>.<set>.skipped`."""
    return f"analysis.{analysis}.{set_name}.skipped" if set_name else f"analysis.{analysis}.skipped"


if __name__ == "__main__":
    print(task_metric("occupation_classification", "accuracy"),
          generation_metric("contextual-single-explicit", 0, "kept"),
          distribution_metric("contextual-single-explicit", "mmd2"),
          values_metric("js_distance_arabic"), round_metric(2, 0, "seconds"), sep="\n")
