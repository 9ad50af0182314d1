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
            for bias_type in cfg.bias_types:
                for mitigation in cfg.mitigations:
                    cells.append(make_cell("train", bias_type, ratio, mitigation, seed))
    return cells


def worker_threads(cpus: float) -> int:
    """Torch threads for a worker holding `cpus` (fractional CPUs round up: 1.9 -> 2)."""
    return max(1, math.ceil(cpus - 1e-9))


class ClusterTooSmallError(RuntimeError):
    """One trial needs more than the whole cluster has."""


def derive_max_concurrent_trials(res: ResourcesConfig, cluster: dict[str, float],
                                 n_cells: int) -> int:
    """As many trials as the cluster's CPUs and GPUs hold at once (Tune + Train hangs otherwise)."""
    if res.max_concurrent_trials:
        return min(res.max_concurrent_trials, n_cells)
    per_trial_cpu = res.driver_cpus + res.workers_per_trial * res.cpus_per_worker
    per_trial_gpu = res.workers_per_trial * res.gpus_per_worker
    fits = [math.floor(cluster.get("CPU", 0) / per_trial_cpu + 1e-9)]
    if per_trial_gpu:
        fits.append(math.floor(cluster.get("GPU", 0) / per_trial_gpu + 1e-9))
    for name, amount in res.driver_resources.items():
        fits.append(math.floor(cluster.get(name, 0) / amount + 1e-9))
    n = min(fits)
    if n < 1:
        raise ClusterTooSmallError(
            f"one trial needs {per_trial_cpu:g} CPU, {per_trial_gpu:g} GPU and "
            f"{res.driver_resources or 'no custom resources'}; the cluster has "
            f"{cluster.get('CPU', 0):g} CPU and {cluster.get('GPU', 0):g} GPU; lower "
            f"resources.* or set resources.max_concurrent_trials for an autoscaling cluster")
    return min(n, n_cells)


if __name__ == "__main__":
    from bias.config import load_config
    for c in expand_cells(load_config(sys.argv[1], sys.argv[2:])):
        print(c.cell_id)
