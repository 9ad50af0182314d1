"""Start a local Ray cluster the way bias-inherit's CPU training wants it.

    from bias.local_ray import start_local_ray
    start_local_ray(num_cpus=2)          # then Tune/Train as usual

Ray starts worker processes at niceness 15 (`worker_niceness`), so that a busy worker never
starves the raylet. On a small CPU node that costs our training: in a Train worker, a 750x576
bf16 elementwise op took 250-275 us, against 42-55 us in a plain process, and 46-50 us once the
worker's threads ran at niceness 0 (the second OpenMP thread wakes late after every parallel
region). The raylet and GCS use little CPU, so they are not starved in practice. An explicit
RAY_worker_niceness wins. Clusters started with `ray start` set the same variable (cluster/).

Metrics collection is off for local clusters too: every Ray process (a Tune trial holds about ten:
the Train controller, its helper actors, the worker) exports metrics on a timer, and on 2 cores
that took ~2% of a core from training (idle cluster: 9.1% -> 7.3% of a core). A laptop run has no
Prometheus to read them; the run's metrics are in MLflow. RAY_enable_metrics_collection=1 wins.
"""
from __future__ import annotations

import os

LOCAL_DEFAULTS = {"RAY_worker_niceness": "0", "RAY_enable_metrics_collection": "0"}


def start_local_ray(**init_kwargs):
    """ray.init() for a new local cluster: workers at niceness 0 and metrics collection off,
    unless the environment says otherwise."""
    import ray
    for name, value in LOCAL_DEFAULTS.items():
        os.environ.setdefault(name, value)   # read by the raylet and workers this starts
    return ray.init(**init_kwargs)
