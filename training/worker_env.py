"""The Train workers' process environment: jemalloc instead of glibc's malloc, and no idle
process group in a one-worker run.

    from training.worker_env import train_worker_runtime_env
    ray.train.RunConfig(..., worker_runtime_env=train_worker_runtime_env("jemalloc"))
    release_single_worker_process_group(world_size)   # first thing in the train loop

Why: every training step allocates vocabulary-sized buffers (the kept positions' logits and their
gradient). glibc serves anything over 32 MB with a fresh mmap and unmaps it on free, so each step
faults in and zeroes new pages (minor faults by the million over a short run). jemalloc, with page purging off, keeps the freed pages and hands them
back out, and the same loop runs faster than in a plain process (docs/performance.md has the
side-by-side figures). Ray ships jemalloc with its
wheel (ray/core/libjemalloc.so, for its own raylet and GCS); it is preloaded into the Train
workers only, so no new dependency and no effect on the driver or Ray's helper processes.

The price: a worker keeps its peak heap until it exits (purging off), as PyTorch's CUDA caching
allocator does with GPU memory. "system" keeps glibc; without the library (macOS wheels, an
unusual build) the workers keep glibc too, with a warning: detected, not assumed.

TorchTrainer sets up a process group even for one worker, which has nothing to all-reduce. Gloo's
TCP loop thread then wakes ~100 times a second (98.5/s measured here) beside the training
threads, for the whole run; on 2 cores each wake-up takes a core from a GEMM split over both.
A one-worker loop destroys the group at its start; with more workers DDP needs it, so it stays.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

# Never purge freed pages back to the OS: they are reused by the next step's buffers.
JEMALLOC_CONF = "dirty_decay_ms:-1,muzzy_decay_ms:-1"


def bundled_jemalloc() -> Path | None:
    """Ray's own libjemalloc.so, where this Ray install has one."""
    import ray
    path = Path(ray.__file__).parent / "core" / "libjemalloc.so"
    return path if path.is_file() else None


def allocator_env_vars(allocator: str) -> dict[str, str]:
    """Environment variables that make a new process use `allocator` ("jemalloc" or "system")."""
    if allocator == "system":
        return {}
    library = bundled_jemalloc()
    if library is None:
        warnings.warn("Ray's bundled libjemalloc.so is not in this install; training workers "
                      "keep the system allocator (resources.worker_allocator: system silences this)",
                      stacklevel=2)
        return {}
    preload = " ".join(p for p in (str(library), os.environ.get("LD_PRELOAD", "")) if p)
    return {"LD_PRELOAD": preload,
            "MALLOC_CONF": os.environ.get("MALLOC_CONF", JEMALLOC_CONF)}


def train_worker_runtime_env(allocator: str) -> dict:
    """`RunConfig.worker_runtime_env` for the Train workers (merged over the job's own runtime
    env by Ray, so a submitted job's working_dir still applies)."""
    env_vars = allocator_env_vars(allocator)
    return {"env_vars": env_vars} if env_vars else {}


def active_allocator() -> str:
    """"jemalloc" if this process runs with jemalloc loaded, else "system" (read from the
    process's memory maps, so it reports what happened, not what was asked)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system"
    return "jemalloc" if "jemalloc" in maps else "system"


def release_single_worker_process_group(world_size: int) -> bool:
    """Destroy the torch.distributed group a one-worker Train run never uses (and with it gloo's
    threads); returns whether the process is left without one. Ray Train's own shutdown only
    destroys the group for several workers, and checks that one exists first."""
    import torch.distributed as dist
    if world_size == 1 and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return not (dist.is_available() and dist.is_initialized())
