"""A synthetic experiment in MLflow, laid out as a real grid logs it, with planted effects.

The parent run carries `bias_inherit.kind=parent`; each cell is a nested child run with the tags
and params `CellRunLogger` writes (cell id from training.grid.make_cell, the shared params, the
CELL_PARAMS) and task metrics drawn from `planted_metrics`. Used by tests/test_report.py and
benchmarks/report_time.py:

    log_experiment(uri, "name", planted_cells(seeds=range(4)))
"""
from __future__ import annotations

import io

import numpy as np

BIAS_SLOPES = {"contextual-single-explicit": 0.30, "contrastive-intersectional-explicit": 0.50}
MITIGATION_FACTOR = {"none": 1.0, "token": 0.8, "loss": 0.4}   # share of the gap slope left
MITIGATION_COST = {"none": 0.0, "token": 0.01, "loss": 0.03}    # accuracy lost
SALARY_SLOPE = -6000.0      # planted against the paper: the salary gap narrows with γ
ROUND_SLOPE = 0.03


def planted_metrics(bias_type: str, ratio: float, mitigation: str, seed: int, round_: int,
                    rng: np.random.Generator) -> dict[str, float]:
    if round_:
        gap = 0.05 + ROUND_SLOPE * round_ + rng.normal(0, 0.005)
    else:
        gap = 0.02 + BIAS_SLOPES.get(bias_type, 0.0) * ratio * MITIGATION_FACTOR[mitigation] \
            + rng.normal(0, 0.01)
    accuracy = 0.8 - 0.05 * ratio - MITIGATION_COST[mitigation] + rng.normal(0, 0.005)
    salary_gap = 2000 + SALARY_SLOPE * ratio + rng.normal(0, 100)
    return {"occupation_classification/accuracy": accuracy,
            "occupation_classification/accuracy_gap": gap,
            # the declared gender bias metric: the same planted curve on its own (nats) scale
            "occupation_classification/stereotype_shift": 5 * gap + rng.normal(0, 0.01),
            "occupation_classification/accuracy_male": accuracy + gap / 2,
            "occupation_classification/accuracy_female": accuracy - gap / 2,
            "salary_recommendation/mean_salary": 80000 + rng.normal(0, 200),
            "salary_recommendation/salary_gap": salary_gap,
            "salary_recommendation/mean_salary_male": 80000 + salary_gap / 2,
            "salary_recommendation/mean_salary_female": 80000 - salary_gap / 2,
            "salary_recommendation/parse_rate": 1.0}


def planted_cells(seeds=range(4), ratios=(0.0, 0.1, 0.2, 0.5), bias_types=tuple(BIAS_SLOPES),
                  mitigations=tuple(MITIGATION_FACTOR), rounds: int = 3, base: bool = True,
                  rng_seed: int = 7) -> list[dict]:
    """Cells of the grid (collapsed as expand_cells does), the base model and multi-round cells,
    each {"cell": Cell, "metrics": {...}}."""
    from training.grid import ORIGINAL_ONLY, make_cell
    rng = np.random.default_rng(rng_seed)
    cells = [make_cell("base", "base", 0.0, "none", 0)] if base else []
    for seed in seeds:
        for ratio in ratios:
            if ratio == 0.0:
                cells.append(make_cell("train", ORIGINAL_ONLY, 0.0, "none", seed))
                continue
            cells += [make_cell("train", t, ratio, m, seed) for t in bias_types for m in mitigations]
        cells += [make_cell("train", "neutral", 0.5, "none", seed, round=k)
                  for k in range(1, rounds + 1)]
    return [{"cell": c, "metrics": planted_metrics(c.bias_type, c.ratio, c.mitigation, c.seed,
                                                   c.round, rng)} for c in cells]


def _png() -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.scatter([0, 1], [1, 0])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def log_experiment(uri: str, name: str, cells: list[dict], running: list[dict] = (),
                   analyses: bool = True) -> str:
    """Parent run + one child run per cell (FINISHED), plus `running` cells left RUNNING with no
    metrics. Returns the parent run id."""
    import tempfile
    from pathlib import Path

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from ray_jobs.tracking import CELL_PARAMS, TAG_CELL, TAG_KIND, TAG_PARENT
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(name)
    parent = client.create_run(experiment_id, run_name=f"{name}-parent",
                               tags={TAG_KIND: "parent"}).info.run_id
    client.log_batch(parent, params=[Param("social_bias", "gender"), Param("name", name)])
    if analyses:
        types = sorted({c["cell"].bias_type for c in cells if c["cell"].ratio > 0
                        and not c["cell"].round})
        client.log_batch(parent, metrics=[
            Metric(f"analysis.distribution.{t}.{k}", v, 0, 0) for i, t in enumerate(types)
            for k, v in (("mmd2", 0.01 * (i + 1)), ("p_value", 0.001))] + [
            Metric(f"generation.{t}.s0.balance_p_value", 0.2, 0, 0) for t in types])
        with tempfile.TemporaryDirectory() as tmp:
            for t in types:
                Path(tmp, f"{t}.png").write_bytes(_png())
            client.log_artifacts(parent, tmp, "analyses/distribution")
    shared = {"social_bias": "gender", "model": "tiny-random-llama",
              "generator": "offline:smollm2-135m-instruct", "dataset_size": "64"}
    now = 0
    for entry, finished in [*((c, True) for c in cells), *((c, False) for c in running)]:
        cell = entry["cell"].model_dump()
        run = client.create_run(experiment_id, run_name=cell["cell_id"], tags={
            TAG_PARENT: parent, TAG_CELL: cell["cell_id"], TAG_KIND: "cell"}).info.run_id
        params = {**shared, **{k: str(cell[k]) for k in CELL_PARAMS}}
        metrics = entry["metrics"] if finished else {}
        client.log_batch(run, params=[Param(k, v) for k, v in params.items()],
                         metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                         tags=[RunTag("bias_inherit.trial_starts", "1")])
        if finished:
            client.set_terminated(run, "FINISHED")
    return parent
