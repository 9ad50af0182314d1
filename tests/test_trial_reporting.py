"""Train -> Tune reporting inside a trial (training/trial.py `reports_forwarded_to_tune`).

Ray's own TuneReportCallback can deadlock the trial actor when the trial function reports after
`fit()` while the last Train report still waits in its one-slot queue; a slow Tune loop makes that
likely. Here the Tune loop is slowed on purpose (a callback that sleeps on every result) and the
trial reports after `fit()`, as run_cell_trial does: every Train report must still reach Tune, in
order, followed by the trial's own final report. With Ray's TuneReportCallback in place of
`reports_forwarded_to_tune` this test hangs (checked: killed by its timeout); with ours it takes
about 45 s on 2 cores.
"""
from __future__ import annotations

import sys
import time

import pytest
from ray import cloudpickle

# Trial and worker functions live here; Ray's workers cannot import a test module by name.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.timeout(300)   # a regression deadlocks: fail in minutes, not at the suite guard
REPORTS = 3


def _worker_loop(config: dict) -> None:
    import ray.train
    for step in range(config["reports"]):
        ray.train.report({"step": step, "value": step * 10})


def _trial(config: dict) -> None:
    import ray.train
    from ray import tune
    from ray.train.torch import TorchTrainer

    from training.trial import reports_forwarded_to_tune
    with reports_forwarded_to_tune() as forward:
        TorchTrainer(_worker_loop, train_loop_config={"reports": REPORTS},
                     scaling_config=ray.train.ScalingConfig(
                         num_workers=1, resources_per_worker={"CPU": 0.5}),
                     run_config=ray.train.RunConfig(storage_path=config["storage"],
                                                    callbacks=[forward])).fit()
    tune.report({"final": 1})


def test_train_reports_reach_tune_in_order_despite_a_slow_tune_loop(tmp_path, ray_local):
    from ray import tune

    class SlowLoop(tune.Callback):
        """Stalls the Tune loop on every result, as an MLflow outage or a loaded driver does."""

        def __init__(self):
            self.seen: list[dict] = []

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.seen.append({k: result[k] for k in ("step", "final") if k in result})
            time.sleep(6)   # longer than Train's shutdown after its last report

    slow = SlowLoop()
    storage = str(tmp_path / "storage")
    started = time.monotonic()
    results = tune.Tuner(
        tune.with_resources(_trial, {"cpu": 0.1}),
        param_space={"storage": storage},
        run_config=tune.RunConfig(storage_path=storage, callbacks=[slow], verbose=0),
    ).fit()
    assert not results.errors, results.errors
    assert [s["step"] for s in slow.seen if "step" in s] == list(range(REPORTS))
    assert slow.seen[-1] == {"final": 1}
    assert time.monotonic() - started < 250
