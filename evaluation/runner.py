"""Run the configured task suite on one model and return flat metrics `<task>/<metric>`."""
from __future__ import annotations

import time

import csv
import json

from bias.paths import MissingDataError
from evaluation.tasks import TASKS


def load_task(name: str, cfg) -> list[dict]:
    """A task's items; data that is there but unreadable (a wrong column, a truncated file) is a
    `MissingDataError` naming the task, like data that is absent: a user error, not a crash."""
    try:
        items = TASKS[name].load(cfg)
        if not items:
            raise ValueError("it holds no usable items (wrong columns, or an empty file?)")
        return items
    except MissingDataError:
        raise
    except (OSError, KeyError, IndexError, ValueError, csv.Error, json.JSONDecodeError) as e:
        raise MissingDataError(f"task {name}: its data cannot be read ({type(e).__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else e!r}); check it with "
                               f"`bias-inherit data verify`") from e


def load_suite(cfg) -> dict[str, list[dict]]:
    """Every configured task's items, loaded up front: a missing dataset fails before any model work."""
    return {name: load_task(name, cfg) for name in cfg.evaluation.tasks}


def engine_scored_tasks(cfg) -> list[str]:
    """The tasks `evaluation.engine` scores outside the trial (none for hf)."""
    if cfg.evaluation.engine == "hf":
        return []
    return [name for name in cfg.evaluation.tasks if TASKS[name].generation is not None]


def evaluate_suite(model, tokenizer, cfg, items: dict[str, list[dict]] | None = None) -> dict[str, float]:
    """`items`: the output of `load_suite`; tasks missing from it load their items here. The
    tasks another engine scores after the grid (`engine_scored_tasks`) are left out."""
    model.eval()
    metrics: dict[str, float] = {}
    elsewhere = engine_scored_tasks(cfg)
    for name in (t for t in cfg.evaluation.tasks if t not in elsewhere):
        task = TASKS[name]
        started = time.perf_counter()
        task_items = items[name] if items and name in items else load_task(name, cfg)
        for key, value in task.evaluate(model, tokenizer, task_items, cfg).items():
            metrics[f"{name}/{key}"] = float(value)
        metrics[f"{name}/n_items"] = float(len(task_items))
        metrics[f"{name}/seconds"] = time.perf_counter() - started
    return metrics
