"""`bias-inherit calibrate`: measured probes on the local Ray cluster write the config's
throughput: block, which `plan` then uses; the rest of the file is left as it was."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from bias.config import load_config
from ray_jobs.calibrate import write_throughput
from tests.conftest import REPO, write_config


@pytest.mark.unit
def test_the_throughput_block_is_replaced_and_the_rest_of_the_file_kept(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x   # the name\n\nthroughput:   # old note\n  train_tokens_per_second: 1\n"
                    "  model_download_seconds: 120\n\ntracking:\n  uri: null   # keep me\n")
    write_throughput(path, {"train_tokens_per_second": 512.5, "eval_seconds_per_cell": 7.0},
                     "measured")
    text = path.read_text()
    assert text.startswith("name: x   # the name\n") and "uri: null   # keep me" in text
    assert "old note" not in text and "# measured" in text
    assert yaml.safe_load(text)["throughput"] == {
        "train_tokens_per_second": 512.5, "model_download_seconds": 120,   # not measured: kept
        "eval_seconds_per_cell": 7}
    bare = tmp_path / "bare.yaml"
    bare.write_text("name: y\n")
    write_throughput(bare, {"trial_overhead_seconds": 3.5}, "measured")
    assert yaml.safe_load(bare.read_text()) == {"name": "y",
                                                "throughput": {"trial_overhead_seconds": 3.5}}


@pytest.mark.timeout(900)
def test_calibrate_measures_every_figure_and_plan_uses_them(tmp_path):
    path = write_config(tmp_path / "c.yaml", name="cal", bias_types=["contextual-single-explicit"],
                        ratios=[0.0, 0.5],
                        generation={"model": "offline:smollm2-135m-instruct", "batch_size": 8,
                                    "max_new_tokens": 48, "samples_per_type": 40,
                                    "cpus_per_actor": 1.0},
                        data={"dataset_size": 24, "test_size": 12},
                        evaluation={"tasks": ["occupation_classification"], "limit": 8},
                        resources={"cpus_per_worker": 1.0}, analyses={"distribution": False},
                        throughput={"model_download_seconds": 30})
    proc = subprocess.run([sys.executable, "-m", "ray_jobs.cli", "calibrate", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=840)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    measured = yaml.safe_load(path.read_text())["throughput"]
    for key in ("generation_tokens_per_second", "engine_startup_seconds",
                "generated_tokens_per_sample", "train_tokens_per_second", "tokens_per_example",
                "eval_seconds_per_cell", "trial_overhead_seconds"):
        assert measured[key] > 0, (key, measured)
    assert measured["model_download_seconds"] == 30
    assert measured["generated_tokens_per_sample"] <= 48   # at most max_new_tokens
    from ray_jobs.plan import make_plan
    cfg = load_config(path)
    plan = make_plan(cfg, cpus=2)
    base_cell = cfg.throughput.trial_overhead_seconds + cfg.throughput.eval_seconds_per_cell
    assert plan.cell_seconds["r0.00-original-only-none-s0"] == pytest.approx(
        base_cell + 24 * measured["tokens_per_example"] / measured["train_tokens_per_second"])
