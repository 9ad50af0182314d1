"""Run the configured task suite on one model and return flat metrics `<task>/<metric>`."""
from __future__ import annotations

import time

from evaluation.tasks import TASKS


def evaluate_suite(model, tokenizer, cfg) -> dict[str, float]:
    model.eval()
    metrics: dict[str, float] = {}
    for name in cfg.evaluation.tasks:
        task = TASKS[name]
        started = time.perf_counter()
        items = task.load(cfg)
        for key, value in task.evaluate(model, tokenizer, items, cfg).items():
            metrics[f"{name}/{key}"] = float(value)
        metrics[f"{name}/n_items"] = float(len(items))
        metrics[f"{name}/seconds"] = time.perf_counter() - started
    return metrics
