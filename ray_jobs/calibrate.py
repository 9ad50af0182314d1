"""`bias-inherit calibrate CONFIG`: measure the figures `plan` needs on the cluster at hand, and
write them into the config's `throughput:` block.

It runs a miniature of the config on the current Ray cluster (RAY_ADDRESS or --address, else a
local one): two generated sets of different sizes, each with one fresh engine replica, then one
training cell with the config's model, LoRA, batch, resources and tasks at a small evaluation
limit. From these:
  generation_tokens_per_second   the larger set's extra tokens / its extra seconds (one replica)
  engine_startup_seconds         the smaller set's wall time less its tokens at that rate
  generated_tokens_per_sample    mean generated tokens per seed row
  train_tokens_per_second        the cell's trained tokens / its step seconds, per worker
  tokens_per_example             trained tokens / (rows x epochs)
  eval_seconds_per_cell          each task's scoring seconds, scaled to the config's item counts
  trial_overhead_seconds         the trial's wall time minus training and evaluation (worker
                                 start-up, model load, checkpoint upload)
`model_download_seconds` is left as it is: a cached model says nothing about a cold node.

    bias-inherit calibrate configs/smoke.yaml            # measure, print, write the block
    bias-inherit calibrate configs/paper_gender.yaml --address auto --dry-run
"""
from __future__ import annotations

import math
import re
import tempfile
import time
from pathlib import Path

from bias.config import CONTROL_NULL, CONTROL_SKEWED, ExperimentConfig

PROBE_DATASET_SIZE = 64   # training rows of the probe cell: a few dozen steps
PROBE_EVAL_LIMIT = 16     # items per task; the seconds are scaled to the config's counts


def probe_config(cfg: ExperimentConfig, storage: str) -> ExperimentConfig:
    """The miniature: first engine-generated bias type, largest ratio, first seed, no mitigation."""
    generated = [t for t in cfg.bias_types if t not in (CONTROL_SKEWED, CONTROL_NULL)
                 and not cfg.file_source(t)]
    if not generated:
        from bias.errors import ConfigError
        raise ConfigError("calibrate needs a bias type the engine generates; this config has none")
    ratio = max(r for r in cfg.ratios) or 0.5
    size = min(cfg.data.dataset_size, PROBE_DATASET_SIZE)
    samples = max(cfg.generation.batch_size, math.ceil(ratio * size * 1.5) + 8)
    limit = min(cfg.evaluation.limit or PROBE_EVAL_LIMIT, PROBE_EVAL_LIMIT)
    return ExperimentConfig.model_validate({
        **cfg.model_dump(mode="json"), "name": f"{cfg.name}-calibrate", "storage_path": storage,
        "bias_types": generated[:1], "ratios": [ratio], "mitigations": ["none"],
        "seeds": cfg.seeds[:1], "evaluate_base_model": False, "rounds": 1,
        "data": {**cfg.data.model_dump(mode="json"), "dataset_size": size},
        "generation": {**cfg.generation.model_dump(mode="json"), "samples_per_type": samples,
                       "actors": 1, "cache_dir": None},
        "optim": {**cfg.optim.model_dump(mode="json"), "epochs": 1},
        "evaluation": {**cfg.evaluation.model_dump(mode="json"), "limit": limit,
                       "task_limits": {}},
        "analyses": {**cfg.analyses.model_dump(mode="json"), "distribution": False,
                     "values_source": "none"},
        "control": {**cfg.control.model_dump(mode="json"), "enabled": False}})


def _last(frame, column: str) -> float:
    values = frame[column].dropna() if column in frame else []
    return float(values.iloc[-1]) if len(values) else math.nan


def _timed_set(probe: ExperimentConfig, engine: str, job: tuple[str, int],
               samples: int) -> tuple[float, int]:
    """(wall seconds, generated tokens) of generating one fresh set of `samples` rows."""
    from ray_jobs.experiment import generate_sets
    sized = probe.model_copy(update={"generation": probe.generation.model_copy(
        update={"samples_per_type": samples})})
    started = time.perf_counter()
    gen = generate_sets(sized, engine, echo=lambda *_: None, jobs=[job])[job]
    return time.perf_counter() - started, gen.stats["generated_tokens"]


def calibrate(cfg: ExperimentConfig, address: str | None = None, echo=print) -> dict[str, float]:
    """Run the probes; the measured `throughput` fields."""
    from bias.errors import ExperimentError
    from evaluation.runner import load_task
    from ray_jobs.experiment import (cell_trainable, checked, choose_engine, connect_ray,
                                     generate_sets, grid_tuner, storage_uri)
    from training.grid import make_cell
    with tempfile.TemporaryDirectory(prefix="bias-inherit-calibrate-") as storage:
        probe, _ = checked(probe_config(cfg, storage_uri(storage)), None, echo)
        ray = connect_ray(address, verbose=False)
        engine = choose_engine(probe, ray.cluster_resources().get("GPU", 0))
        job = (probe.bias_types[0], probe.seeds[0])
        small, large = probe.generation.batch_size, probe.generation.samples_per_type
        echo(f"probe 1/2: generating {small}, then {large} rows of {job[0]} with one {engine} "
             f"replica of {probe.generation.model}")
        # Two sets, each starting its replica: the difference between them is generation
        # alone (the pipeline is lazy, so a pass's own clock includes the start-up).
        (wall_small, tokens_small), (wall_large, tokens_large) = (
            _timed_set(probe, engine, job, n) for n in (small, large))
        rate = (tokens_large - tokens_small) / (wall_large - wall_small)
        figures = {"generation_tokens_per_second": rate,
                   "engine_startup_seconds": max(0.0, wall_small - tokens_small / rate),
                   "generated_tokens_per_sample": tokens_large / large}
        generated = generate_sets(probe, engine, echo=lambda *_: None, jobs=[job])   # cached
        echo(f"probe 2/2: training and scoring one cell ({probe.data.dataset_size} rows, "
             f"{len(probe.evaluation.tasks)} tasks at {probe.evaluation.limit} items)")
        cell = make_cell("train", job[0], probe.ratios[0], "none", job[1])
        tuner = grid_tuner(cell_trainable(probe, generated), [cell.model_dump()],
                           storage_uri(storage), "calibrate", 1, 0, [])
        result = tuner.fit()[0]
        if result.error:
            raise ExperimentError(f"the training probe failed: {str(result.error).splitlines()[0]}")
        frame = result.metrics_dataframe
        scaled = 0.0
        as_configured = cfg.model_copy(update={"data": probe.data.model_copy(
            update={"dataset_size": cfg.data.dataset_size})})
        full = {name: len(load_task(name, as_configured)) for name in probe.evaluation.tasks}
        for name in probe.evaluation.tasks:
            n = _last(frame, f"{name}/n_items")
            scaled += _last(frame, f"{name}/seconds") * (full[name] / n if n else 1.0)
        rows = _last(frame, "n_augmented_rows") + _last(frame, "n_original_rows")
        figures.update(
            train_tokens_per_second=_last(frame, "train_tokens_per_second"),
            tokens_per_example=_last(frame, "train_tokens") / rows / probe.optim.epochs,
            eval_seconds_per_cell=scaled,
            trial_overhead_seconds=max(0.0, _last(frame, "trial_seconds")
                                       - _last(frame, "train_seconds")
                                       - _last(frame, "eval_seconds")))
    bad = sorted(k for k, v in figures.items() if not (isinstance(v, float | int) and
                                                      math.isfinite(v) and v > 0))
    if bad:
        raise ExperimentError(f"calibrate could not measure {', '.join(bad)}; rerun with --verbose")
    return {k: round(float(v), 1) for k, v in figures.items()}


def write_throughput(path: Path, figures: dict[str, float], note: str) -> None:
    """Replace (or append) the config file's top-level `throughput:` block, keeping the rest of
    the file, comments included, and the block's fields that were not measured."""
    import yaml
    text = path.read_text()
    block = re.search(r"^throughput:.*?(?=^\S|\Z)", text, flags=re.M | re.S)
    kept = {}
    if block:
        kept = yaml.safe_load(block.group(0)).get("throughput") or {}
    values = {**kept, **figures}
    lines = [f"throughput:                      # {note}"]
    lines += [f"  {key}: {value:g}" if isinstance(value, float | int) else f"  {key}: {value}"
              for key, value in values.items()]
    new = "\n".join(lines) + "\n"
    if block:
        text = text[:block.start()] + new + ("\n" if text[block.end():] else "") + \
            text[block.end():].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + new
    path.write_text(text)


def add_commands(sub) -> None:
    """Register `calibrate` on the CLI's subparsers (`handler`)."""
    p = sub.add_parser("calibrate", help="measure throughput on this cluster and write the "
                                         "config's throughput: block")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--address", help="Ray address (default: RAY_ADDRESS, else a local cluster)")
    p.add_argument("--dry-run", action="store_true", help="print the block, leave the file")

    def on_calibrate(args) -> int:
        import platform

        from bias.config import load_config
        from ray_jobs.console import start_console
        cfg = load_config(args.config, args.overrides)
        start_console(cfg, verbose=False)
        figures = calibrate(cfg, args.address, echo=lambda *a: print(*a, flush=True))
        note = (f"measured by bias-inherit calibrate, {time.strftime('%Y-%m-%d')}, "
                f"{platform.node() or 'this cluster'}")
        for key, value in figures.items():
            print(f"  {key}: {value:g}")
        if not args.dry_run:
            write_throughput(Path(args.config), figures, note)
            print(f"wrote the throughput: block of {args.config}; `bias-inherit plan "
                  f"{args.config}` now uses it")
        return 0
    p.set_defaults(handler=on_calibrate)
