"""Wall time of `bias-inherit report` on a synthetic experiment of N finished cells.

Logs N cells (tests/synthetic.py: 2 bias types x γ {0.1, 0.2, 0.5} x mitigations {none, token,
loss} + γ = 0 + one multi-round cell per seed, as many seeds as N needs) to a fresh SQLite
MLflow store, or to a running server with --tracking-uri, then times `build_report` end to end:
MLflow reads, statistics, plots, HTML, and logging the report to the parent run.

    python benchmarks/report_time.py                    # 100 cells, SQLite store in a temp dir
    python benchmarks/report_time.py --cells 400 --repeat 3 --out /tmp/report-bench

The figures print as one JSON line and go to benchmarks/results/report_time.json (--json).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from _results import add_json_option, write_results  # noqa: E402

CELLS_PER_SEED = 1 + 3 * 2 * 3 + 1   # γ = 0, the γ > 0 grid, one round


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=1, help="report runs to time")
    parser.add_argument("--tracking-uri", help="default: sqlite in a temporary directory")
    parser.add_argument("--out", help="report directory (default: temporary)")
    add_json_option(parser, "report_time")
    args = parser.parse_args(argv)

    from ray_jobs.report import build_report
    from tests.synthetic import log_experiment, planted_cells
    seeds = math.ceil(args.cells / CELLS_PER_SEED)
    cells = planted_cells(seeds=range(seeds), rounds=1, base=False)[:args.cells]
    with tempfile.TemporaryDirectory() as tmp:
        uri = args.tracking_uri or f"sqlite:///{tmp}/mlflow.db"
        name = f"report-bench-{int(time.time())}"
        started = time.perf_counter()
        log_experiment(uri, name, cells)
        logged = time.perf_counter() - started
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            result = build_report(name, uri, out_dir=args.out or f"{tmp}/report")
            times.append(time.perf_counter() - started)
        figures = {"cells": result.n_cells, "seeds": seeds, "store": uri.split(":")[0],
                   "log_seconds": round(logged, 2),
                   "report_seconds": [round(t, 2) for t in times],
                   "report_seconds_median": round(statistics.median(times), 2),
                   "plots": len(result.plots),
                   "html_kb": round(result.html.stat().st_size / 1024)}
        print(json.dumps(figures))
    write_results(args.json, "report_time", figures, argv)


if __name__ == "__main__":
    main()
