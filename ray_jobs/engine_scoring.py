"""Scoring the generation tasks through vLLM (`evaluation.engine: vllm`).

The trial scores every other task on its own worker; the generation tasks (those with a
`Generation`: salary_recommendation, story_generation) are scored after the grid, in one pass of
vLLM replicas over every cell's prompts, each row naming its cell's LoRA adapter (the base model's
rows name none). The continuations go through the tasks' own scorers, so the metrics carry the
same names and definitions as the HF engine's, and land in each cell's MLflow run, tagged
`bias_inherit.eval_engine: vllm`.

    bias-inherit evaluate --model offline:smollm2-135m-instruct --tasks salary_recommendation \
        --engine vllm                                   # one model, the same path
    bias-inherit run configs/smoke.yaml evaluation.engine=vllm
"""
from __future__ import annotations

import math
import time
from collections import defaultdict

from bias.config import ExperimentConfig

TAG_EVAL_ENGINE = "bias_inherit.eval_engine"


def score_with_vllm(cfg: ExperimentConfig, adapters: dict[str, str | None],
                    tasks: list[str]) -> dict[str, dict[str, float]]:
    """{model key: adapter, None for the base model} -> {model key: {"<task>/<metric>": value}},
    every model's continuations written by one vLLM processor run."""
    import ray

    from bias.models import resolve_model
    from evaluation.runner import load_task
    from evaluation.tasks import TASKS
    from generation.engines.vllm_engine import build_scoring_processor
    items = {name: load_task(name, cfg) for name in tasks}
    rows = [{"key": key, "task": name, "index": i, "prompt": prompt, "adapter": adapter or "",
             "max_tokens": TASKS[name].generation.max_new_tokens(cfg)}
            for key, adapter in adapters.items() for name in tasks
            for i, prompt in enumerate(TASKS[name].generation.prompts(items[name]))]
    on_gpu = ray.cluster_resources().get("GPU", 0) > 0
    processor = build_scoring_processor(resolve_model(cfg.model.name), cfg.generation,
                                        sorted({a for a in adapters.values() if a}), on_gpu,
                                        cfg.lora.r)
    texts: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for row in processor(ray.data.from_items(rows)).take_all():
        # A row the engine failed on (continue_on_error) scores as an empty answer: unparsed.
        texts[(row["key"], row["task"])][int(row["index"])] = row.get("generated_text") or ""
    scores: dict[str, dict[str, float]] = {key: {} for key in adapters}
    for key in adapters:
        for name in tasks:
            answers = [texts[(key, name)].get(i, "") for i in range(len(items[name]))]
            metrics = TASKS[name].generation.score(items[name], answers, cfg)
            scores[key].update({f"{name}/{k}": float(v) for k, v in metrics.items()})
            scores[key][f"{name}/n_items"] = float(len(items[name]))
    return scores


def score_grid_with_engine(cfg: ExperimentConfig, results, tracking_uri: str,
                           experiment_id: str, parent_run_id: str, echo=print) -> None:
    """After a grid: the engine-scored tasks of every cell that ran, logged into its run."""
    import mlflow
    from mlflow.entities import Metric

    from evaluation.runner import engine_scored_tasks
    from ray_jobs.tracking import TAG_ADAPTER_MODEL, adapter_location, find_cell_run
    tasks = engine_scored_tasks(cfg)
    ran = [r for r in results if not r.error and not r.metrics.get("already_finished")]
    if not tasks or not ran:
        return
    client = mlflow.MlflowClient(tracking_uri)
    runs, adapters = {}, {}
    for result in ran:
        cell_id = result.config["cell"]["cell_id"]
        runs[cell_id] = find_cell_run(client, experiment_id, parent_run_id, cell_id)
        adapters[cell_id] = adapter_location(client, runs[cell_id],
                                             result.metrics.get("adapter_path"))
    echo(f"scoring {', '.join(tasks)} for {len(adapters)} cells through vLLM "
         f"({sum(1 for a in adapters.values() if a)} adapters)")
    started = time.perf_counter()
    scores = score_with_vllm(cfg, adapters, tasks)
    seconds = time.perf_counter() - started
    now = int(time.time() * 1000)
    for cell_id, metrics in scores.items():
        run = runs[cell_id]
        model_id = run.data.tags.get(TAG_ADAPTER_MODEL)
        client.log_batch(run.info.run_id, metrics=[Metric(k, v, now, 0, model_id=model_id)
                                                   for k, v in metrics.items() if math.isfinite(v)])
        client.set_tag(run.info.run_id, TAG_EVAL_ENGINE, "vllm")
    client.log_metric(parent_run_id, "engine_scoring_seconds", seconds)
    echo(f"vLLM scoring: {len(scores)} cells in {seconds:.0f} s")
