"""Per-trial overhead of the grid, read from MLflow: trial wall time minus training and evaluation.

The trial wall time (`trial_seconds`) runs from the start of the Tune trial function to the end of
`TorchTrainer.fit()`. Training (`train_seconds`) and evaluation (`eval_seconds`) are timed inside
the Ray Train worker. The rest is what Ray costs per cell: the Train controller and worker
start-up, imports, the model load, and the checkpoint upload.

    python benchmarks/trial_overhead.py --experiment smoke-gender [--tracking-uri URI]

The table prints, and its rows and summary go to benchmarks/results/trial_overhead.json (--json).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import add_json_option, write_results  # noqa: E402
from ray_jobs.tracking import fetch_cells, resolve_tracking_uri  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--tracking-uri")
    parser.add_argument("--parent-run")
    add_json_option(parser, "trial_overhead")
    args = parser.parse_args(argv)
    frame = fetch_cells(args.experiment, resolve_tracking_uri(None, args.tracking_uri), args.parent_run)
    rows = []
    for _, run in frame.iterrows():
        trial = run.get("metrics.trial_seconds")
        if trial != trial or trial is None:   # NaN: unfinished cell
            continue
        train = run.get("metrics.train_seconds", 0.0)
        train = 0.0 if train != train else train
        evaluation = run.get("metrics.eval_seconds", 0.0)
        rows.append((run["tags.bias_inherit.cell_id"], trial, train, evaluation,
                     trial - train - evaluation))
    if not rows:
        print("no finished cells with timings", file=sys.stderr)
        return 1
    print(f"{'cell':52} {'trial_s':>8} {'train_s':>8} {'eval_s':>8} {'overhead_s':>10}")
    for cell, trial, train, evaluation, overhead in sorted(rows):
        print(f"{cell:52} {trial:8.1f} {train:8.1f} {evaluation:8.1f} {overhead:10.1f}")
    overheads = [r[4] for r in rows]
    total = sum(r[1] for r in rows)
    print(f"\n{len(rows)} cells: overhead mean {statistics.mean(overheads):.1f} s, median "
          f"{statistics.median(overheads):.1f} s, {sum(overheads) / total:.0%} of trial time")
    write_results(args.json, "trial_overhead", {
        "experiment": args.experiment, "parent_run": args.parent_run,
        "cells": [{"cell": cell, "trial_s": trial, "train_s": train, "eval_s": evaluation,
                   "overhead_s": overhead} for cell, trial, train, evaluation, overhead in sorted(rows)],
        "overhead_mean_s": statistics.mean(overheads),
        "overhead_median_s": statistics.median(overheads),
        "overhead_fraction_of_trial_time": sum(overheads) / total}, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
