"""Pre-flight: every check that needs no cluster, in one pass, before Ray starts.

`run`, `resume`, `generate` and `validate` call `preflight(cfg, tracking_uri)`; `submit` calls it
with `local=False` (the data, models and storage live on the cluster, where the job's own `run`
checks them again). It collects every problem into one `PreflightError` paragraph instead of
stopping at the first, and decides which tasks `evaluation.missing_data: skip` leaves out.

Checks: the models resolve (an `offline:` name is known, a path exists, a hub name is cached or
the hub answers within seconds); each task can study the config's social bias; each task's data is in the data dir, fetched, or on a reachable
hub; the values analysis' source exists; the tracking store answers; the storage path is
writable. The config's schema and text were checked when it was loaded.

    bias-inherit validate configs/smoke.yaml      # pre-flight only; prints the grid
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bias.config import ExperimentConfig
from bias.errors import PreflightError  # noqa: F401  (re-exported: its old home)


@dataclass
class Preflight:
    skipped: dict[str, str] = field(default_factory=dict)   # task -> what was not found
    seconds: float = 0.0

    def skip_lines(self) -> list[str]:
        return [f"skip {task}: not measured, no data ({where}); get it with "
                f"`bias-inherit data fetch {task}` (docs/data.md)"
                for task, where in self.skipped.items()]


def _model_problems(cfg: ExperimentConfig, local: bool) -> list[str]:
    """`local=False` (submit): only what the name alone shows (an unknown `offline:` name)."""
    from bias.models import OFFLINE_PREFIX, RANDOM_PREFIX, model_problem
    problems, seen = [], set()
    generates = bool(cfg.bias_types) or cfg.rounds > 1
    roles = [("model.name", cfg.model.name)] + ([("generation.model", cfg.generation.model)]
                                                 if generates else [])
    if cfg.analyses.distribution:
        roles.append(("analyses.embedder", cfg.analyses.embedder))
    for role, name in roles:
        if name in seen:
            continue
        seen.add(name)
        if name.startswith(RANDOM_PREFIX):
            problems.append(f"{role}: {name} is a random-weight model for speed benchmarks; it has "
                            f"no tokenizer, so it cannot train, generate or score text")
            continue
        static = name.startswith(OFFLINE_PREFIX)
        problem = (model_problem(name) if (local or static)
                   and not name.startswith("offline:all-minilm") else None)
        if problem:
            problems.append(f"{role}: {problem}")
    return problems


def _data_problems(cfg: ExperimentConfig, skipped: dict[str, str]) -> list[str]:
    from bias.paths import hub_reachable
    from evaluation.sources import data_status
    from evaluation.tasks import TASKS
    problems, missing = [], {}
    for name in cfg.evaluation.tasks:
        state, where = data_status(TASKS[name], cfg)
        if state == "missing":
            missing[name] = where
    if missing and cfg.evaluation.missing_data == "skip":
        skipped.update(missing)
    elif missing:
        listed = "; ".join(f"{t}: {where}" for t, where in missing.items())
        problems.append(f"{len(missing)} task{'s have' if len(missing) > 1 else ' has'} no data "
                        f"({listed}). Fetch it (`bias-inherit data fetch TASK`, docs/data.md), "
                        f"point BIAS_INHERIT_DATA_DIR at it, or set evaluation.missing_data: skip")
    if skipped and len(skipped) == len(cfg.evaluation.tasks):
        problems.append("no configured task has its data, so nothing could be measured")
    if cfg.data.original == "hub" and not hub_reachable():
        problems.append("data.original: hub, but the Hugging Face hub did not answer; use "
                        "data.original: offline")
    source = cfg.analyses.values_source
    if source == "hub" and not hub_reachable():
        problems.append("analyses.values_source: hub, but the hub did not answer; give a local "
                        "file in GlobalOpinionQA's schema or none")
    elif source not in ("none", "hub") and not Path(source).expanduser().exists():
        problems.append(f"analyses.values_source: file {source} does not exist")
    return problems


def _task_problems(cfg: ExperimentConfig) -> list[str]:
    """Tasks whose items are built per social bias cannot run in a study they have no items for."""
    from evaluation.tasks import TASKS
    return [f"evaluation.tasks: {name} has no items for a study of {cfg.social_bias} (it has "
            f"them for {', '.join(TASKS[name].social_biases)}); leave it out of this config"
            for name in cfg.evaluation.tasks
            if TASKS[name].items_per_social_bias and not TASKS[name].bias_metric(cfg.social_bias)]


def _engine_problems(cfg: ExperimentConfig) -> list[str]:
    """An engine the config names that this environment cannot import."""
    from evaluation.runner import engine_scored_tasks
    from generation.engines import vllm_missing
    wanted = []
    if cfg.generation.engine == "vllm" and (cfg.bias_types or cfg.rounds > 1):
        wanted.append("generation.engine=vllm")
    if engine_scored_tasks(cfg):
        wanted.append("evaluation.engine=vllm")
    return [m for m in map(vllm_missing, wanted) if m]


def _storage_problem(path: str) -> str | None:
    if "://" in path:
        return None   # a pyarrow URI (s3://, gs://): checked by the cluster that writes it
    folder = Path(path).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".preflight-"):
            pass
    except OSError as e:
        return f"storage_path {path}: not writable ({e.strerror or type(e).__name__})"
    return None


def preflight(cfg: ExperimentConfig, tracking_uri: str | None, local: bool = True,
              tasks: bool = True) -> Preflight:
    """All checks; raises one `PreflightError` listing every problem, else what to skip.
    `tasks=False` (generate): the evaluation tasks' data is not needed."""
    from ray_jobs.tracking import TrackingUnreachableError, check_tracking_reachable
    started = time.perf_counter()
    result, problems = Preflight(), []
    problems += _model_problems(cfg, local)
    problems += _task_problems(cfg)
    if local:
        problems += _engine_problems(cfg)
        if tasks:
            problems += _data_problems(cfg, result.skipped)
        storage = _storage_problem(cfg.storage_path)
        if storage:
            problems.append(storage)
    if tracking_uri:
        try:
            check_tracking_reachable(tracking_uri)
        except TrackingUnreachableError as e:
            problems.append(str(e))
    if len(problems) == 1:
        raise PreflightError(problems[0])
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise PreflightError(f"pre-flight found {len(problems)} problem"
                             f"{'s' if len(problems) > 1 else ''}; nothing was started:\n{listed}")
    result.seconds = time.perf_counter() - started
    return result


def without_skipped(cfg: ExperimentConfig, result: Preflight) -> ExperimentConfig:
    """The config with the skipped tasks left out of evaluation (and of its per-task settings)."""
    if not result.skipped:
        return cfg
    ev = cfg.evaluation
    kept = [t for t in ev.tasks if t not in result.skipped]
    evaluation = ev.model_copy(update={
        "tasks": kept, "task_limits": {t: n for t, n in ev.task_limits.items() if t in kept},
        "calibrate": [t for t in ev.calibrate if t in kept]})
    return cfg.model_copy(update={"evaluation": evaluation})
