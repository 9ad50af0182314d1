"""Start a local Ray cluster the way bias-inherit's CPU training wants it.

    from bias.local_ray import start_local_ray
    start_local_ray(num_cpus=2)          # then Tune/Train as usual

On a small CPU node, Ray's defaults take time from training. `start_local_ray` sets, for the
cluster it starts (a variable already set in the environment wins):
  - workers at niceness 0 (Ray's default is 15, so that a busy worker never starves the raylet;
    at 15 a Train worker's second OpenMP thread wakes late after every parallel region, and the
    raylet and GCS use too little CPU to be starved in practice). Clusters started with
    `ray start` set the same variable (cluster/);
  - Ray's metrics collection off: every Ray process of a trial exports metrics on a timer, and a
    laptop has no Prometheus to read them (the run's metrics are in MLflow);
  - Ray Train's preemption watcher off: one more actor per Train run, polling for node drains a
    single machine never has (clusters keep it on);
  - Ray's housekeeping timers slower, since work done on a timer takes a core from a matmul
    split over all of them: the log monitor re-lists the session's log files every 5 s instead
    of on every pass (a new worker's log is still read from its first line), the dashboard
    agent sweeps process stats and the dashboard records its own metrics less often, the agent
    checks its raylet less often, and Ray's event-loop statistics are off.
Measurements behind each setting: docs/performance.md.
"""
from __future__ import annotations

import os

LOCAL_DEFAULTS = {"RAY_worker_niceness": "0", "RAY_enable_metrics_collection": "0",
                  "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
                  # housekeeping timers (docstring): log monitor, dashboard agent and head, Ray's
                  # event-loop statistics
                  "RAY_LOG_MONITOR_MANY_FILES_THRESHOLD": "0", "LOG_NAME_UPDATE_INTERVAL_S": "5",
                  "REPORTER_UPDATE_INTERVAL_MS": "30000", "METRICS_RECORD_INTERVAL_S": "60",
                  "RAY_DASHBOARD_AGENT_CHECK_PARENT_INTERVAL_S": "2", "RAY_event_stats": "0"}


def start_local_ray(**init_kwargs):
    """ray.init() for a new local cluster: workers at niceness 0, metrics collection and Train's
    preemption watcher off, housekeeping timers slower, unless the environment says otherwise."""
    import ray
    for name, value in LOCAL_DEFAULTS.items():
        os.environ.setdefault(name, value)   # read by the raylet and workers this starts
    return ray.init(**init_kwargs)
