"""Start a local Ray cluster the way bias-inherit's CPU training wants it.

    from bias.local_ray import start_local_ray
    start_local_ray(num_cpus=2)          # then Tune/Train as usual

Ray starts worker processes at niceness 15 (`worker_niceness`), so that a busy worker never
starves the raylet. On a small CPU node that costs our training: in a Train worker, a 750x576
bf16 elementwise op took 250-275 us, against 42-55 us in a plain process, and 46-50 us once the
worker's threads ran at niceness 0 (the second OpenMP thread wakes late after every parallel
region). The raylet and GCS use little CPU, so they are not starved in practice. An explicit
RAY_worker_niceness wins. Clusters started with `ray start` set the same variable (cluster/).
"""
from __future__ import annotations

import os

WORKER_NICENESS_ENV = "RAY_worker_niceness"


def start_local_ray(**init_kwargs):
    """ray.init() for a new local cluster, its workers at niceness 0 unless set otherwise."""
    import ray
    os.environ.setdefault(WORKER_NICENESS_ENV, "0")   # read by the raylet this starts
    return ray.init(**init_kwargs)
