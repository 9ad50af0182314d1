"""Grid expansion: equivalent cells collapse; concurrency is derived from cluster resources."""
from __future__ import annotations

import pytest

from bias.config import ResourcesConfig, load_config
from tests.conftest import write_config
from training.grid import ClusterTooSmallError, derive_max_concurrent_trials, expand_cells, worker_threads

pytestmark = pytest.mark.unit   # no Ray, MLflow or model


def test_gamma_zero_runs_once_per_seed_and_base_once(tmp_path):
    cfg = load_config(write_config(
        tmp_path / "c.yaml", bias_types=["contextual-single-explicit", "contrastive-single-implicit",
                                         "neutral"],
        ratios=[0.0, 0.1, 0.25], mitigations=["none", "token"], seeds=[0, 1],
        generation={"samples_per_type": 12}))
    cells = expand_cells(cfg)
    ids = [c.cell_id for c in cells]
    assert len(ids) == len(set(ids))
    assert sum(c.kind == "base" for c in cells) == 1
    zero = [c for c in cells if c.ratio == 0.0 and c.kind == "train"]
    assert len(zero) == 2 and {c.seed for c in zero} == {0, 1}
    assert all(c.mitigation == "none" for c in zero)
    # 1 base + 2 seeds x (1 γ=0 + 2 ratios x 3 types x 2 mitigations)
    assert len(cells) == 1 + 2 * (1 + 2 * 3 * 2)


def test_base_cell_can_be_turned_off(tmp_path):
    cfg = load_config(write_config(tmp_path / "c.yaml", evaluate_base_model=False))
    assert all(c.kind == "train" for c in expand_cells(cfg))


@pytest.mark.parametrize("cluster, res, n_cells, expected", [
    ({"CPU": 2}, dict(cpus_per_worker=1.9, driver_cpus=0.1), 10, 1),
    ({"CPU": 16}, dict(cpus_per_worker=1.9, driver_cpus=0.1), 10, 8),
    ({"CPU": 16}, dict(cpus_per_worker=1.9, driver_cpus=0.1), 3, 3),
    ({"CPU": 64, "GPU": 8}, dict(cpus_per_worker=4, gpus_per_worker=1, workers_per_trial=2), 50, 4),
    ({"CPU": 8, "GPU": 8}, dict(cpus_per_worker=4, gpus_per_worker=1), 50, 1),
    ({"CPU": 2}, dict(max_concurrent_trials=5), 3, 3),
    ({"CPU": 64, "GPU": 16, "trial_driver": 2},
     dict(cpus_per_worker=4, gpus_per_worker=1, driver_resources={"trial_driver": 1}), 50, 2),
])
def test_max_concurrent_trials_fits_the_cluster(cluster, res, n_cells, expected):
    assert derive_max_concurrent_trials(ResourcesConfig(**res), cluster, n_cells) == expected


def test_trial_bigger_than_cluster_is_an_error():
    with pytest.raises(ClusterTooSmallError, match="one trial needs"):
        derive_max_concurrent_trials(ResourcesConfig(gpus_per_worker=1), {"CPU": 8}, 4)


def test_worker_threads_round_fractional_cpus_up():
    assert [worker_threads(c) for c in (0.5, 1.0, 1.9, 2.0, 4.0)] == [1, 1, 2, 2, 4]
