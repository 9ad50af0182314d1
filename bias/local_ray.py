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

Ray Train's preemption watcher is off for local clusters too: it is one more actor per Train run
that polls for node drains (spot reclaims), which a single local machine never has. Every idle
Ray process wakes ~100 times a second (the core worker's signal check); the eager loop paid for
such wake-ups on 2 cores (8 plain processes waking at 100 Hz beside it: 375 against 396 tokens/s,
interleaved), the compiled loop hardly (below). With a Train worker asleep in a
Tune trial, the watcher off took the node from 47.3k to 43.4k context switches and from 2.85 to
2.52 CPU-seconds in 20 s. RAY_TRAIN_ENABLE_PREEMPTION_WATCHER=1 wins; clusters keep it on.

Ray's own housekeeping timers run slower too. What a 2-core node's training pays for Ray is
mostly the node itself, not the trial: a plain process's compiled loop ran 12% slower beside a
bare local node (ray.init, nothing submitted: 1,016 against 1,156 tokens/s over alternating
windows), about as much as beside a node holding an idle Tune+Train trial (941 against 1,054 in
another run). Bare wake-ups cost the compiled loop little (5 and 10 processes waking 100 times a
second beside it: 1.021x and 0.999x; the eager loop's 0.95x above was 8 of them); what costs is
work done on a timer, each burst taking a core from a GEMM split over both. So, for local
clusters only:
  - the log monitor re-lists the session's log files every 5 s instead of on every 0.1 s pass
    (six globs of the log directory, ten times a second, whenever there are under 1,000 files);
    a new worker's log is still read from its first line, found up to 5 s later;
  - the dashboard agent sweeps process stats every 30 s (5 s), the dashboard records its own
    metrics every 60 s (5 s), and the agent checks its raylet every 2 s (0.4 s);
  - Ray's event-loop statistics (per-handler timing kept for debug dumps) are off.
Beside the bare node those took the loop from 1,016 to 1,054 tokens/s (the log monitor's alone:
1,038), alternating windows in one run. Each variable set in the environment wins.
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
