"""Orchestration cost of the grid, in two figures.

1. Per-trial overhead with and without fault tolerance. One-cell grids (a γ = 0 cell of the tiny
   random Llama on a local Ray) run through `run_experiment`, alternating in ABBA order: with
   per-epoch checkpoints and retries (resources.checkpoint_every_epoch, max_failures=1) and
   without (no epoch checkpoints, max_failures=0). Overhead per trial = the trial's lifetime as
   Tune sees it (its MLflow child run, start to end) minus the pure training steps and the
   evaluation timed inside the Train worker; checkpoint writing counts as overhead.
2. Makespan of a simulated grid on a simulated GPU cluster: N cells of fixed synthetic duration
   through the grid's own Tuner (`grid_tuner`: derived max_concurrent_trials, FailureConfig, the
   MLflow `CellRunLogger`), each trial holding a driver bundle plus one worker bundle with a
   GPU, on a local Ray that declares G logical GPUs. Ideal = ceil(N / G) x duration; the figure
   is measured / ideal.

    python benchmarks/grid_scaling.py                 # 240 cells, 32 GPUs, 30 s trials; 4 cells per FT setting
    python benchmarks/grid_scaling.py --quick         # 64 cells, 16 GPUs, 5 s trials; 2 cells per FT setting
    python benchmarks/grid_scaling.py --part makespan --cells 240 --gpus 32 --trial-seconds 60

The figures print and go to benchmarks/results/grid_scaling.json (--json).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import add_json_option, write_results  # noqa: E402


def overhead_grid(tmp: Path, name: str, fault_tolerant: bool, seeds: list[int],
                  epochs: int) -> list[dict]:
    """Run the tiny grid with or without fault tolerance; per-trial figures from MLflow."""
    import yaml
    from mlflow.tracking import MlflowClient

    from bias.config import load_config
    from ray_jobs.run import run_experiment
    raw = {"name": name, "social_bias": "gender", "bias_types": ["contextual-single-explicit"],
           "ratios": [0.0], "seeds": seeds, "evaluate_base_model": False,
           "data": {"dataset_size": 64, "test_size": 12},
           "generation": {"model": "tiny-random-llama", "samples_per_type": 8},
           "model": {"name": "tiny-random-llama"}, "optim": {"epochs": epochs, "batch_size": 4},
           "evaluation": {"limit": 12},
           "resources": {"cpus_per_worker": 1.0, "driver_cpus": 0.1, "max_concurrent_trials": 1,
                         "checkpoint_every_epoch": fault_tolerant,
                         "max_failures": 1 if fault_tolerant else 0},
           "storage_path": str(tmp / f"storage-{name}")}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    parent = run_experiment(load_config(path), tracking_uri=uri, echo=lambda *_: None)
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id],
                              f"tags.`mlflow.parentRunId` = '{parent}'")
    rows = []
    for run in runs:
        m = run.data.metrics
        lifetime = (run.info.end_time - run.info.start_time) / 1000
        work = m["train_step_seconds"] + m["eval_seconds"]
        rows.append({"lifetime_s": lifetime, "trial_s": m["trial_seconds"], "work_s": work,
                     "checkpoint_s": m.get("checkpoint_seconds", 0.0),
                     "overhead_s": lifetime - work, "in_trial_overhead_s": m["trial_seconds"] - work})
    return rows


def part_overhead(rounds: int, epochs: int) -> dict:
    """Rounds of one cell without and one with fault tolerance, in ABBA order so that load drift
    on a shared machine falls on both settings alike; medians per setting, mean paired difference."""
    import ray
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows: dict[str, list[dict]] = {"without": [], "with": []}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ft-") as tmp:
            for i in range(rounds):
                order = ("without", "with") if i % 2 == 0 else ("with", "without")
                for label in order:
                    rows[label] += overhead_grid(Path(tmp), f"bench-ft-{label}-{i}",
                                                 label == "with", [i], epochs)
    finally:
        ray.shutdown()
    out = {label: {"cells": len(r), **{k: statistics.median(x[k] for x in r) for k in r[0]}}
           for label, r in rows.items()}
    out["paired_difference_s"] = statistics.mean(
        a["overhead_s"] - b["overhead_s"] for a, b in zip(rows["with"], rows["without"]))
    return out


def synthetic_trial(config: dict, seconds: float) -> None:
    """Holds its resources for a fixed time, then reports like a cell does."""
    from ray import tune
    started = time.perf_counter()
    time.sleep(seconds)
    tune.report({"trial_seconds": time.perf_counter() - started})


def part_makespan(cells: int, gpus: int, seconds: float, mlflow: bool,
                  reuse_actors: bool = False) -> dict:
    import ray
    from ray import tune

    from bias.config import ResourcesConfig
    from ray_jobs.run import grid_tuner
    from ray_jobs.tracking import CellRunLogger
    from training.grid import derive_max_concurrent_trials, make_cell
    res = ResourcesConfig(workers_per_trial=1, cpus_per_worker=1.0, gpus_per_worker=1.0,
                          driver_cpus=0.1)
    # Logical resources only: 2 x GPUs CPUs and G GPUs, as a cluster of 8-GPU nodes would offer.
    ray.init(num_cpus=2 * gpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
    try:
        grid = [make_cell("train", f"type{i % 8}", 0.1, "none", i // 8).model_dump()
                for i in range(cells)]
        max_concurrent = derive_max_concurrent_trials(res, ray.cluster_resources(), cells)
        trainable = tune.with_resources(
            tune.with_parameters(synthetic_trial, seconds=seconds),
            tune.PlacementGroupFactory([{"CPU": res.driver_cpus},
                                        {"CPU": res.cpus_per_worker, "GPU": res.gpus_per_worker}]))
        with tempfile.TemporaryDirectory(prefix="bench-grid-") as tmp:
            callbacks = []
            if mlflow:
                import mlflow as mlflow_lib
                uri = f"sqlite:///{tmp}/mlflow.db"
                mlflow_lib.set_tracking_uri(uri)
                exp = mlflow_lib.set_experiment("bench-makespan")
                parent = mlflow_lib.start_run(run_name="makespan")
                callbacks = [CellRunLogger(uri, exp.experiment_id, parent.info.run_id,
                                           {c["cell_id"]: c for c in grid}, {}, tmp)]
            tuner = grid_tuner(trainable, grid, tmp, "makespan", max_concurrent, 1, callbacks,
                               reuse_actors)
            started = time.perf_counter()
            results = tuner.fit()
            makespan = time.perf_counter() - started
            if mlflow:
                mlflow_lib.end_run()
        errors = sum(1 for r in results if r.error)
        ideal = math.ceil(cells / max_concurrent) * seconds
        return {"cells": cells, "gpus": gpus, "trial_seconds": seconds,
                "max_concurrent_trials": max_concurrent, "errors": errors,
                "makespan_s": makespan, "ideal_s": ideal, "ratio": makespan / ideal,
                "overhead_per_wave_s": (makespan - ideal) / math.ceil(cells / max_concurrent),
                "mlflow": mlflow, "reuse_actors": reuse_actors}
    finally:
        ray.shutdown()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small, for CI: about 2-4 minutes")
    parser.add_argument("--part", choices=("overhead", "makespan", "all"), default="all")
    parser.add_argument("--cells", type=int)
    parser.add_argument("--gpus", type=int)
    parser.add_argument("--trial-seconds", type=float)
    parser.add_argument("--ft-cells", type=int, help="rounds (cells) per fault-tolerance setting")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--no-mlflow", action="store_true", help="makespan without CellRunLogger")
    parser.add_argument("--reuse-actors", action="store_true",
                        help="makespan with Tune reusing trial processes (the grid does not)")
    add_json_option(parser, "grid_scaling")
    args = parser.parse_args(argv)
    cells = args.cells or (64 if args.quick else 240)
    gpus = args.gpus or (16 if args.quick else 32)
    seconds = args.trial_seconds or (5.0 if args.quick else 30.0)
    ft_cells = args.ft_cells or (2 if args.quick else 4)
    out = {}
    if args.part in ("overhead", "all"):
        out["overhead"] = o = part_overhead(ft_cells, args.epochs)
        print(f"per-trial overhead ({ft_cells} rounds of one cell per setting, ABBA order, "
              f"{args.epochs} epochs each, tiny Llama; medians):")
        for label in ("without", "with"):
            r = o[label]
            print(f"  {label:7} fault tolerance: lifetime {r['lifetime_s']:6.1f} s, work "
                  f"{r['work_s']:5.1f} s, overhead {r['overhead_s']:6.1f} s (in-trial "
                  f"{r['in_trial_overhead_s']:5.1f} s, checkpoints {r['checkpoint_s']:4.1f} s)")
        print(f"  fault tolerance adds {o['paired_difference_s']:+.1f} s per trial (mean paired "
              f"difference; checkpoint writes {o['with']['checkpoint_s'] / args.epochs:.2f} s per "
              f"epoch on the worker)")
    if args.part in ("makespan", "all"):
        out["makespan"] = m = part_makespan(cells, gpus, seconds, not args.no_mlflow,
                                            args.reuse_actors)
        print(f"makespan: {m['cells']} cells x {m['trial_seconds']:g} s on {m['gpus']} GPUs "
              f"({m['max_concurrent_trials']} at a time{', MLflow logging' if m['mlflow'] else ''}"
              f"{', reused trial processes' if m['reuse_actors'] else ''}): "
              f"{m['makespan_s']:.1f} s vs ideal {m['ideal_s']:.0f} s -> ratio {m['ratio']:.3f} "
              f"({m['overhead_per_wave_s']:.1f} s per wave, {m['errors']} errors)")
    write_results(args.json, "grid_scaling", out, argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
