"""Grid cells: ratio x bias type x mitigation x seed, with equivalent cells collapsed.

γ = 0 trains on original data only, so it is the same cell for every bias type and mitigation:
it runs once per seed. The untrained base model is one more cell, evaluated once per experiment.

    python -m training.grid configs/smoke.yaml       # print the cells
"""
from __future__ import annotations

import math
import sys
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bias.config import ExperimentConfig, ResourcesConfig
from bias.errors import ClusterTooSmallError  # noqa: F401  (re-exported: its old home)

ORIGINAL_ONLY = "original-only"


class Cell(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    cell_id: str
    kind: Literal["base", "train"]
    bias_type: str          # ORIGINAL_ONLY for γ = 0, "base" for the base model
    ratio: float
    mitigation: str
    seed: int
    round: int = 0          # multi-round self-augmentation: 1..K; 0 for grid cells

    @property
    def trains(self) -> bool:
        return self.kind == "train"


def make_cell(kind: str, bias_type: str, ratio: float, mitigation: str, seed: int,
              round: int = 0) -> Cell:
    cell_id = "base" if kind == "base" else f"r{ratio:.2f}-{bias_type}-{mitigation}-s{seed}"
    if round:
        cell_id = f"round{round}-{cell_id}"
    return Cell(cell_id=cell_id, kind=kind, bias_type=bias_type, ratio=ratio,
                mitigation=mitigation, seed=seed, round=round)


def expand_cells(cfg: ExperimentConfig) -> list[Cell]:
    cells: list[Cell] = []
    if cfg.evaluate_base_model:
        cells.append(make_cell("base", "base", 0.0, "none", cfg.seeds[0]))
    for seed in cfg.seeds:
        for ratio in cfg.ratios:
            if ratio == 0.0:
                cells.append(make_cell("train", ORIGINAL_ONLY, 0.0, "none", seed))
                continue
            for bias_type in cfg.augmented_sets:
                for mitigation in cfg.mitigations:
                    cells.append(make_cell("train", bias_type, ratio, mitigation, seed))
    return cells


def worker_threads(cpus: float) -> int:
    """Torch threads for a worker holding `cpus` (fractional CPUs round up: 1.9 -> 2)."""
    return max(1, math.ceil(cpus - 1e-9))


def generation_jobs(cells: list[Cell]) -> list[tuple[str, int]]:
    """The distinct (bias type, seed) sets the cells train on; γ = 0 and base cells need none."""
    return sorted({(c.bias_type, c.seed) for c in cells if c.trains and c.ratio > 0})


def trial_demand(res: ResourcesConfig) -> dict[str, float]:
    """What one trial holds while it runs: its driver plus all its Train workers."""
    demand = {"CPU": res.driver_cpus + res.workers_per_trial * res.cpus_per_worker,
              "GPU": res.workers_per_trial * res.gpus_per_worker}
    for name, amount in res.worker_resources.items():
        demand[name] = demand.get(name, 0.0) + res.workers_per_trial * amount
    for name, amount in res.driver_resources.items():
        demand[name] = demand.get(name, 0.0) + amount
    return {k: v for k, v in demand.items() if v > 0}


def derive_max_concurrent_trials(res: ResourcesConfig, cluster: dict[str, float],
                                 n_cells: int) -> int:
    """As many trials as the cluster's CPUs, GPUs and custom resources hold at once (Tune + Train
    hangs otherwise)."""
    if res.max_concurrent_trials:
        return min(res.max_concurrent_trials, n_cells)
    demand = trial_demand(res)
    n = min(math.floor(cluster.get(name, 0) / amount + 1e-9) for name, amount in demand.items())
    if n < 1:
        wanted = ", ".join(f"{v:g} {k}" for k, v in demand.items())
        has = ", ".join(f"{cluster.get(k, 0):g} {k}" for k in demand)
        raise ClusterTooSmallError(
            f"one trial needs {wanted}; the cluster has {has}; lower resources.* or set "
            f"resources.max_concurrent_trials for an autoscaling cluster")
    return min(n, n_cells)


if __name__ == "__main__":
    from bias.config import load_config
    for c in expand_cells(load_config(sys.argv[1], sys.argv[2:])):
        print(c.cell_id)
