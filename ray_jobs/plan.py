"""`bias-inherit plan CONFIG [--gpus N]`: what an experiment will cost, before it runs.

Prints the cells after collapsing, the generation jobs, the tokens to generate and to train, and
an estimate of device-hours and wall time for N GPUs (or N CPUs for a CPU-only config). Throughput
figures come from the config's `throughput` section; measure them on the target hardware.

The wall-time model: the generator's download once (`throughput.model_download_seconds`), then
the generation sets on min(N, generation.actors x tensor_parallel_size) GPUs: with vLLM all sets
in one pass of replicas that start once, with HF one set after another, each starting its actors
(`throughput.engine_startup_seconds` per start-up); the grid runs its cells on
min(resources.max_concurrent_trials, N / GPUs per trial) slots, longest cells first (the
makespan of that list schedule). Each trial costs its start-up overhead, its training tokens at
the per-worker rate, and one evaluation.
"""
from __future__ import annotations

import heapq
import math
from collections import Counter
from dataclasses import dataclass, field

from bias.config import CONTROL_NULL, CONTROL_SKEWED, ExperimentConfig
from training.grid import ORIGINAL_ONLY, Cell, expand_cells, generation_jobs


@dataclass
class Plan:
    cells: list[Cell]
    cells_before_collapsing: int
    jobs: list[tuple[str, int]]
    device: str                       # "GPU" or "CPU"
    devices: int
    tokens_generated: float
    tokens_trained: float
    generation_device_s: float
    generation_wall_s: float
    generation_devices: int
    cell_seconds: dict[str, float] = field(default_factory=dict)
    devices_per_trial: float = 0.0
    slots: int = 1
    slots_limit: str = ""
    grid_wall_s: float = 0.0
    uncapped: tuple[int, float] | None = None   # (slots, grid wall) without max_concurrent_trials
    generation_startup_s: float = 0.0    # engine start-ups, one per generated set
    download_s: float = 0.0
    engine_startups: int = 0
    shared_pool: bool = False

    @property
    def grid_device_s(self) -> float:
        return sum(self.cell_seconds.values()) * self.devices_per_trial

    @property
    def wall_s(self) -> float:
        return self.generation_wall_s + self.grid_wall_s


def list_schedule_makespan(durations: list[float], slots: int) -> float:
    """Longest-first list scheduling of `durations` on `slots` identical slots."""
    finish = [0.0] * max(1, slots)
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(finish, finish[0] + d)
    return max(finish)


def make_plan(cfg: ExperimentConfig, gpus: int | None = None, cpus: int | None = None) -> Plan:
    res, tp, g = cfg.resources, cfg.throughput, cfg.generation
    cells = expand_cells(cfg)
    before = len(cfg.ratios) * len(cfg.augmented_sets) * len(cfg.mitigations) * len(cfg.seeds) \
        + int(cfg.evaluate_base_model)
    jobs = generation_jobs(cells)
    on_gpu = res.gpus_per_worker > 0
    device = "GPU" if on_gpu else "CPU"
    per_trial = res.workers_per_trial * (res.gpus_per_worker if on_gpu else res.cpus_per_worker)
    devices = (gpus if on_gpu else cpus) or (
        (res.max_concurrent_trials or 8) * math.ceil(per_trial) if on_gpu else 2)

    per_sample = tp.generated_tokens_per_sample or g.max_new_tokens
    generation_devices = max(1, min(devices, g.actors * (g.tensor_parallel_size if on_gpu else 1)))
    # On CPU the rate is per actor; on GPU per GPU.
    generated = [job for job in jobs if job[0] not in (CONTROL_SKEWED, CONTROL_NULL)
                 and not cfg.file_source(job[0])]   # the others are written, not generated
    tokens_generated = len(generated) * g.samples_per_type * per_sample
    generation_device_s = tokens_generated / tp.generation_tokens_per_second
    # vLLM: every set in one pass, one start-up; HF: a pass, and a start-up, per set.
    shared_pool = g.engine == "vllm" or (g.engine == "auto" and on_gpu)
    startups = min(1, len(generated)) if shared_pool else len(generated)
    startup_s = startups * tp.engine_startup_seconds
    download_s = tp.model_download_seconds if generated else 0.0
    generation_wall_s = download_s + startup_s + generation_device_s / generation_devices
    generation_device_s += startup_s * generation_devices

    per_example = tp.tokens_per_example or cfg.optim.max_length
    per_cell_tokens = cfg.data.dataset_size * cfg.optim.epochs * per_example
    train_s = per_cell_tokens / (tp.train_tokens_per_second * res.workers_per_trial)
    cell_seconds = {c.cell_id: tp.trial_overhead_seconds + tp.eval_seconds_per_cell
                    + (train_s if c.trains else 0.0) for c in cells}
    tokens_trained = per_cell_tokens * sum(c.trains for c in cells)

    slots = max(1, math.floor(devices / per_trial + 1e-9))
    uncapped = min(slots, len(cells))
    limit = f"{devices} {device}s / {per_trial:g} per trial"
    if res.max_concurrent_trials and res.max_concurrent_trials < slots:
        slots = res.max_concurrent_trials
        limit = f"capped by resources.max_concurrent_trials; {devices - slots * per_trial:g} " \
                f"of {devices} {device}s idle"
    slots = min(slots, len(cells))
    plan = Plan(cells, before, jobs, device, devices, tokens_generated, tokens_trained,
                generation_device_s, generation_wall_s, generation_devices, cell_seconds,
                per_trial, slots, limit)
    plan.generation_startup_s, plan.download_s = startup_s, download_s
    plan.engine_startups, plan.shared_pool = startups, shared_pool
    plan.grid_wall_s = list_schedule_makespan(list(cell_seconds.values()), slots)
    if uncapped > slots:
        plan.uncapped = (uncapped, list_schedule_makespan(list(cell_seconds.values()), uncapped))
    return plan


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _count(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def format_plan(plan: Plan, cfg: ExperimentConfig, source: str, list_cells: bool = False) -> str:
    tp, g = cfg.throughput, cfg.generation
    dev = plan.device
    out = [f"plan for {source} (experiment {cfg.experiment_name}, {cfg.social_bias}): "
           f"{plan.devices} {dev}s",
           f"cells after collapsing: {len(plan.cells)} (of {plan.cells_before_collapsing})"]
    by_ratio = Counter("base model" if c.kind == "base" else
                       "γ=0 (original only, one per seed)" if c.bias_type == ORIGINAL_ONLY else
                       f"γ={c.ratio:g}" for c in plan.cells)
    for label, n in by_ratio.items():
        out.append(f"  {label:36} {n:5}")
    if list_cells:
        out += [f"    {c.cell_id}" for c in plan.cells]
    types = sorted({t for t, _ in plan.jobs})
    out.append(f"generation jobs: {len(plan.jobs)} ({len(types)} bias types x "
               f"{len({s for _, s in plan.jobs})} seeds), {g.samples_per_type} samples each, "
               f"model {g.model}")
    per_sample = tp.generated_tokens_per_sample or g.max_new_tokens
    out.append(f"tokens to generate: {_count(plan.tokens_generated)} "
               f"({len(plan.jobs)} x {g.samples_per_type} x "
               f"{'' if tp.generated_tokens_per_sample else '<='}{per_sample:g})")
    n_train = sum(c.trains for c in plan.cells)
    per_example = tp.tokens_per_example or cfg.optim.max_length
    out.append(f"tokens to train: {_count(plan.tokens_trained)} ({n_train} cells x "
               f"{cfg.data.dataset_size} examples x {cfg.optim.epochs} epochs x "
               f"{'' if tp.tokens_per_example else '<='}{per_example:g} tokens)")
    out.append(f"throughput (config): generation {tp.generation_tokens_per_second:g} tok/s per "
               f"{'GPU' if dev == 'GPU' else 'actor'}, training {tp.train_tokens_per_second:g} "
               f"tok/s per worker, eval {tp.eval_seconds_per_cell:g} s/cell, start-up "
               f"{tp.trial_overhead_seconds:g} s/trial")
    out.append(f"estimate on {plan.devices} {dev}s:")
    out.append(f"  generation {plan.generation_device_s / 3600:10.1f} {dev}-h   wall "
               f"{_hms(plan.generation_wall_s)} on {plan.generation_devices} "
               f"{'GPUs' if dev == 'GPU' else 'actors'} (generation.actors={g.actors}"
               f"{f' x tensor_parallel_size={g.tensor_parallel_size}' if dev == 'GPU' else ''})")
    n_sets = sum(1 for t, _ in plan.jobs if t not in (CONTROL_SKEWED, CONTROL_NULL)
                 and not cfg.file_source(t))
    order = (f"{n_sets} sets in one pass of vLLM replicas" if plan.shared_pool else
             f"{n_sets} sets one after another")
    out.append(f"    = download {_hms(plan.download_s)} + {order}: {plan.engine_startups} engine "
               f"start-up{'s' if plan.engine_startups != 1 else ''} x "
               f"{tp.engine_startup_seconds:g} s ({_hms(plan.generation_startup_s)}) + tokens "
               f"{_hms(plan.generation_wall_s - plan.download_s - plan.generation_startup_s)}")
    if dev == "GPU" and plan.generation_devices < plan.devices:
        out.append(f"    {plan.devices - plan.generation_devices} {dev}s idle while generating: "
                   f"raise generation.actors to use them")
    out.append(f"  grid       {plan.grid_device_s / 3600:10.1f} {dev}-h   wall "
               f"{_hms(plan.grid_wall_s)} with {plan.slots} trials at a time x "
               f"{plan.devices_per_trial:g} {dev}s ({plan.slots_limit})")
    out.append(f"  total      {(plan.generation_device_s + plan.grid_device_s) / 3600:10.1f} "
               f"{dev}-h   wall {_hms(plan.wall_s)}")
    if plan.uncapped:
        slots, wall = plan.uncapped
        out.append(f"  with resources.max_concurrent_trials={slots} the grid's wall time would be "
                   f"{_hms(wall)} (total {_hms(plan.generation_wall_s + wall)})")
    return "\n".join(out)


def add_commands(sub) -> None:
    """Register `plan` on the CLI's subparsers; name -> handler."""
    p = sub.add_parser("plan", help="cells, generation jobs, tokens, device-hours and wall time")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--gpus", type=int, help="GPUs to plan for (GPU configs)")
    p.add_argument("--cpus", type=int, help="CPUs to plan for (CPU-only configs)")
    p.add_argument("--cells", action="store_true", help="list every cell")
    p.add_argument("--power", action="store_true",
                   help="also score the base model once and print each bias metric's minimum "
                        "detectable effect at the config's seeds and test sizes")

    def on_plan(args) -> int:
        from bias.config import load_config
        cfg = load_config(args.config, args.overrides)
        print(format_plan(make_plan(cfg, args.gpus, args.cpus), cfg, args.config, args.cells))
        if args.power:
            print(format_power(power_rows(cfg, base_model_item_metrics(cfg)), cfg))
        return 0
    p.set_defaults(handler=on_plan)


# -- power: what the design could detect, before paying for it ---------------------------------

def power_rows(cfg: ExperimentConfig, item_metrics: dict[str, float]) -> list[dict]:
    """Per configured task: its declared bias metric for the study's social bias, and from the
    per-item standard deviation the task logs as `<metric>_item_sd` (base model): the standard
    error of one cell's value, the smallest effect one cell's own test detects, and the smallest
    γ-slope the report's per-seed slope test detects at the config's seeds and ratios, if item
    sampling were the only noise (each cell scoring its own draw of test items). Training
    randomness across seeds adds to it: the report's `mde` column uses the spread it observes."""
    from scipy import stats

    from evaluation.statistics import MIN_SEEDS, POWER, ALPHA
    from evaluation.tasks import TASKS
    seeds = len(cfg.seeds)
    ratios = [0.0, *[r for r in cfg.ratios if r > 0]] if cfg.ratios else []
    spread = sum((r - sum(ratios) / len(ratios)) ** 2 for r in ratios) if len(ratios) > 1 else 0.0
    rows = []
    for name in cfg.evaluation.tasks:
        declared = TASKS[name].bias_metric(cfg.social_bias)
        if declared is None:
            continue
        row = {"task": name, "metric": declared.name}
        sd = item_metrics.get(f"{name}/{declared.name}_item_sd")
        n = item_metrics.get(f"{name}/salary_gap_pairs" if name == "salary_recommendation"
                             else f"{name}/n_items")
        if sd is None or not n or not math.isfinite(sd):
            rows.append({**row, "note": "no per-item variance (a share or a range, not a mean "
                                        "over items)"})
            continue
        se = sd / math.sqrt(n)
        z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(POWER)
        row.update({"items": int(n), "item_sd": sd, "cell_se": se, "cell_mde": z * se})
        if seeds < MIN_SEEDS or spread == 0:
            row["note"] = f"slope not tested: {seeds} seed(s), {len(ratios)} ratio(s)"
        else:
            df = seeds - 1
            t = stats.t.ppf(1 - ALPHA / 2, df) + stats.t.ppf(POWER, df)
            row["slope_mde"] = t * se / math.sqrt(spread) / math.sqrt(seeds)
        rows.append(row)
    return rows


def format_power(rows: list[dict], cfg: ExperimentConfig) -> str:
    out = [f"power for {cfg.experiment_name} ({cfg.social_bias}, {len(cfg.seeds)} seeds, "
           f"γ {cfg.ratios}), from the base model's per-item spread; 80% power, two-sided "
           f"α = 0.05; item-sampling noise only (a lower bound on what seeds add)"]
    for r in rows:
        if "item_sd" not in r:
            out.append(f"  {r['task']}/{r['metric']}: {r['note']}")
            continue
        slope = (f"γ-slope mde {r['slope_mde']:.4g} per unit γ" if "slope_mde" in r else r["note"])
        out.append(f"  {r['task']}/{r['metric']}: {r['items']} items, item sd {r['item_sd']:.4g}, "
                   f"cell se {r['cell_se']:.4g}, one-cell mde {r['cell_mde']:.4g}; {slope}")
    return "\n".join(out)


def base_model_item_metrics(cfg: ExperimentConfig) -> dict[str, float]:
    """The configured tasks scored once on the untrained model, in this process (no Ray)."""
    import torch

    from bias.models import load_causal_lm, load_tokenizer, pick_dtype, resolve_model
    from evaluation.runner import evaluate_suite
    resolve_model(cfg.model.name)
    tokenizer = load_tokenizer(cfg.model.name, padding_side="left")
    model = load_causal_lm(cfg.model.name, pick_dtype(cfg.model.dtype, "cpu"),
                           torch.device("cpu"), cfg.model.attention)
    model.requires_grad_(False)
    return evaluate_suite(model, tokenizer, cfg)
