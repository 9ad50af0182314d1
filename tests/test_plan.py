"""`bias-inherit plan`: cells, generation jobs, tokens and the device-hour / wall-time estimate."""
from __future__ import annotations

import subprocess
import sys

import pytest

from bias.config import load_config
from ray_jobs.plan import list_schedule_makespan, make_plan
from tests.conftest import REPO, write_config


@pytest.mark.unit
def test_list_schedule_makespan():
    assert list_schedule_makespan([10.0] * 8, 4) == 20.0
    assert list_schedule_makespan([5.0, 4.0, 3.0, 3.0, 3.0], 2) == 10.0   # LPT, not optimal (9)
    assert list_schedule_makespan([7.0], 16) == 7.0


@pytest.mark.unit
def test_plan_figures_follow_the_config(tmp_path):
    cfg = load_config(write_config(
        tmp_path / "p.yaml", ratios=[0.0, 0.5], seeds=[0, 1], mitigations=["none", "token"],
        bias_types=["contextual-single-explicit", "contrastive-single-implicit"],
        data={"dataset_size": 100, "test_size": 12},
        generation={"samples_per_type": 80, "max_new_tokens": 50},
        optim={"epochs": 2, "max_length": 64},
        resources={"gpus_per_worker": 1, "workers_per_trial": 2, "cpus_per_worker": 4},
        throughput={"generation_tokens_per_second": 100, "train_tokens_per_second": 50,
                    "eval_seconds_per_cell": 10, "trial_overhead_seconds": 5}))
    plan = make_plan(cfg, gpus=4)
    # base + (γ=0 + 2 types x 2 mitigations) x 2 seeds
    assert len(plan.cells) == 11 and plan.cells_before_collapsing == 17
    assert plan.jobs == [("contextual-single-explicit", 0), ("contextual-single-explicit", 1),
                         ("contrastive-single-implicit", 0), ("contrastive-single-implicit", 1)]
    assert plan.tokens_generated == 4 * 80 * 50
    assert plan.tokens_trained == 10 * 100 * 2 * 64
    # a training cell: overhead 5 + tokens 12800 / (train rate 50 x 2 workers) + eval 10 seconds
    assert plan.cell_seconds["r0.50-contextual-single-explicit-none-s0"] == 5 + 128 + 10
    assert plan.cell_seconds["base"] == 15
    assert plan.slots == 2 and plan.devices_per_trial == 2     # 4 GPUs / 2 per trial
    assert plan.grid_device_s == pytest.approx(2 * (10 * 143 + 15))
    # a GPU config: vLLM generates the 4 sets in one pass, one engine start-up (default 60 s),
    # on generation.actors = 1; HF generates them one after another, a start-up each
    assert plan.generation_wall_s == pytest.approx(60 + 16000 / 100 / 1)
    hf = make_plan(cfg.model_copy(update={"generation": cfg.generation.model_copy(
        update={"engine": "hf"})}), gpus=4)
    assert hf.generation_wall_s == pytest.approx(4 * 60 + 16000 / 100 / 1)
    with_download = make_plan(cfg.model_copy(update={"throughput": cfg.throughput.model_copy(
        update={"model_download_seconds": 300, "engine_startup_seconds": 0})}), gpus=4)
    assert with_download.generation_wall_s == pytest.approx(300 + 16000 / 100)


@pytest.mark.parametrize("gpus,fragments", [
    (64, ("cells after collapsing: 148", "generation jobs: 18 (6 bias types x 3 seeds)",
          "tokens to generate: 4.75M", "tokens to train: 285.77M", "GPU-h",
          "estimate on 64 GPUs", "64 trials at a time")),   # every GPU used, no cap
    (32, ("on 32 GPUs (generation.actors=64", "32 trials at a time",   # each term named
          "= download 0:02:00 + 18 sets in one pass of vLLM replicas: 1 engine start-up x 90 s",
          "tokens ")),
])
def test_plan_paper_gender_uses_every_gpu_and_names_each_term(gpus, fragments):
    proc = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "plan", "configs/paper_gender.yaml",
                           "--gpus", str(gpus)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stdout, (fragment, proc.stdout)
    assert "idle" not in proc.stdout, proc.stdout


def test_plan_of_a_bad_config_is_one_error_line(tmp_path):
    path = write_config(tmp_path / "bad.yaml", ratios=[1.5])
    proc = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "plan", str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: invalid config")
