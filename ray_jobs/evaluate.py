"""`bias-inherit evaluate`: score one model, base or LoRA adapter, on the task suite and print every metric.

    bias-inherit evaluate --model offline:smollm2-135m-instruct --tasks all --limit 50
    bias-inherit evaluate --model meta-llama/Llama-3.1-8B-Instruct --adapter DIR --tasks bbq,winobias

--model is an offline name (offline:smollm2-135m-instruct, tiny-random-llama), a hub name or a
local directory. --adapter applies a peft LoRA adapter on top of it (PeftModel.from_pretrained,
no merged copy). Every task's items are loaded before the model, so a missing dataset fails
before any model work. Unknown tasks, missing data and unloadable models print one `error:`
line and exit 2 (`bias.errors.USER_ERRORS`).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from bias.paths import explicit_data_dir


def add_commands(sub) -> None:
    """Register `evaluate` on the CLI's subparsers (`handler`)."""
    p = sub.add_parser("evaluate", help="score one model (base or LoRA adapter) on the task suite")
    p.add_argument("--model", required=True,
                   help="offline:smollm2-135m-instruct | tiny-random-llama | hub name | local dir")
    p.add_argument("--adapter", help="a peft LoRA adapter directory, applied without merging")
    p.add_argument("--tasks", default="all", help="'all' or a comma-separated list (bias-inherit tasks)")
    p.add_argument("--limit", type=int, help="items per task, sampled stratified by group")
    p.add_argument("--data-dir", help="benchmark data dir (default: BIAS_INHERIT_DATA_DIR; "
                                      "see `bias-inherit data list`)")
    p.add_argument("--source", choices=("offline", "hub"), default="offline",
                   help="offline: the data dir; hub: datasets.load_dataset with the hub names")
    from bias import social_biases
    p.add_argument("--social-bias", choices=social_biases.names(), default="gender",
                   help="the groups salary_recommendation compares")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--dtype", choices=("auto", "bf16", "fp32"), default="auto")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--engine", choices=("hf", "vllm"), default="hf",
                   help="who writes the generation tasks' continuations (vllm: the vllm extra, "
                        "`make test-vllm`; the other tasks are scored by HF either way)")
    p.set_defaults(handler=evaluate_command)


def parse_tasks(spec: str) -> list[str]:
    from bias.config import ConfigError
    from evaluation.tasks import TASKS
    names = list(TASKS) if spec.strip() == "all" else [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in names if t not in TASKS]
    if unknown or not names:
        raise ConfigError(f"unknown task(s) {unknown or [spec]}; known: all, {', '.join(TASKS)}")
    return names


def build_config(args):
    """An ExperimentConfig carrying only what evaluation reads (data, model, evaluation)."""
    from pydantic import ValidationError

    from bias.config import ConfigError, ExperimentConfig
    from bias.taxonomy import DEFAULT_BIAS_TYPES
    if args.data_dir and not Path(args.data_dir).is_dir():
        raise ConfigError(f"--data-dir {args.data_dir} is not a directory")
    try:
        return ExperimentConfig(
            name="evaluate", social_bias=args.social_bias, bias_types=[DEFAULT_BIAS_TYPES[0]],
            ratios=[0.0], model={"name": args.model, "dtype": args.dtype},
            data={"dir": args.data_dir, "original": args.source},
            evaluation={"tasks": parse_tasks(args.tasks), "limit": args.limit,
                        "batch_size": args.batch_size, "engine": args.engine})
    except ValidationError as e:   # one line: e.g. "--limit: Input should be greater than ..."
        problems = "; ".join(f"--{str(err['loc'][-1]).replace('_', '-')}: "
                             f"{err['msg'].removeprefix('Value error, ')}" for err in e.errors())
        raise ConfigError(f"invalid evaluate options: {problems}") from None


def check_adapter(adapter: str | None) -> None:
    from bias.models import ModelUnavailableError
    if adapter and not (Path(adapter) / "adapter_config.json").is_file():
        raise ModelUnavailableError(f"--adapter {adapter}: no adapter_config.json there; give a "
                                    f"peft LoRA adapter directory (a cell's checkpoint)")


def load_model(name: str, adapter: str | None, dtype_preference: str = "auto"):
    """(model, tokenizer) in eval mode; the adapter, if any, wraps the base model unmerged."""
    import torch

    from bias.models import ModelUnavailableError, load_causal_lm, load_tokenizer, pick_dtype
    check_adapter(adapter)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        tokenizer = load_tokenizer(name)
        model = load_causal_lm(name, pick_dtype(dtype_preference, device), device)
    except OSError as e:
        raise ModelUnavailableError(f"cannot load model {name!r}: {e}") from None
    if adapter:
        from peft import PeftModel
        model = PeftModel.from_pretrained(model, adapter)
    return model.eval().requires_grad_(False), tokenizer


def evaluate_command(args) -> int:
    from evaluation.runner import engine_scored_tasks, evaluate_suite, load_suite
    started = time.perf_counter()
    cfg = build_config(args)
    check_adapter(args.adapter)          # every user error before the data and the model load
    by_engine = engine_scored_tasks(cfg)
    if by_engine:
        from bias.config import ConfigError
        from generation.engines import vllm_missing
        missing = vllm_missing("--engine vllm")
        if missing:
            raise ConfigError(missing)
    with explicit_data_dir(args.data_dir):
        items = load_suite(cfg)
    metrics: dict[str, float] = {}
    if len(by_engine) < len(cfg.evaluation.tasks):
        model, tokenizer = load_model(args.model, args.adapter, args.dtype)
        metrics.update(evaluate_suite(model, tokenizer, cfg, items))
    if by_engine:
        from ray_jobs.engine_scoring import score_with_vllm
        from ray_jobs.experiment import connect_ray
        connect_ray(None, verbose=False)
        adapter = str(Path(args.adapter).resolve()) if args.adapter else None
        metrics.update(score_with_vllm(cfg, {"model": adapter}, by_engine)["model"])
    wall = time.perf_counter() - started
    label = args.model + (f" + adapter {args.adapter}" if args.adapter else "")
    if args.format == "json":
        clean = {k: (None if math.isnan(v) else v) for k, v in metrics.items()}
        print(json.dumps({"model": label, "limit": args.limit, "wall_seconds": wall,
                          "metrics": clean}, indent=1))
    else:
        print_table(metrics, f"{label} · limit {args.limit or 'none'} · {wall:.0f} s wall")
    return 0


def print_table(metrics: dict[str, float], title: str) -> None:
    """One section per task: its metrics in the task's order, then n_items and seconds."""
    from rich.console import Console
    from rich.table import Table

    from evaluation.tasks import TASKS
    view = Table(title=title)
    for col, justify in (("task", "left"), ("metric", "left"), ("value", "right")):
        view.add_column(col, justify=justify)
    tasks = list(dict.fromkeys(key.split("/", 1)[0] for key in metrics))
    for task in tasks:
        rows = [(key.split("/", 1)[1], value) for key, value in metrics.items()
                if key.startswith(task + "/")]
        heads = [task, f"({TASKS[task].kind}, {TASKS[task].relation})" if task in TASKS else ""]
        for i, (metric, value) in enumerate(rows):
            view.add_row(heads[i] if i < len(heads) else "", metric,
                         "nan" if math.isnan(value) else f"{value:.4g}", end_section=i == len(rows) - 1)
    Console(width=120).print(view)
