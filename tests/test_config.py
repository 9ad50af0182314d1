"""Config validation: every shipped config loads; bad configs fail with one readable message."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bias.config import ConfigError, load_config
from tests.conftest import REPO, needs_data, write_config

CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


@pytest.mark.unit
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_validate_and_say_how_to_launch(path: Path):
    cfg = load_config(path)
    assert cfg.augmented_sets and cfg.ratios
    first = path.read_text().splitlines()[0]
    assert first.startswith("#") and ("bias-inherit" in first or "ray job submit" in first), first


@pytest.mark.unit
def test_smoke_config_has_the_required_grid():
    cfg = load_config(REPO / "configs" / "smoke.yaml")
    assert cfg.social_bias == "gender"
    assert len(cfg.bias_types) >= 2
    assert cfg.ratios == [0.0, 0.2, 0.5]
    assert set(cfg.mitigations) == {"none", "token"}
    assert len(cfg.seeds) == 1
    assert cfg.model.name == "offline:smollm2-135m-instruct"


@pytest.mark.unit
def test_overrides_use_dotted_keys_and_yaml_values(tmp_path):
    cfg = load_config(write_config(tmp_path / "c.yaml"),
                      ["optim.lr=0.001", "ratios=[0.0, 0.5]", "seeds=[1,2]"])
    assert cfg.optim.lr == 0.001 and cfg.ratios == [0.0, 0.5] and cfg.seeds == [1, 2]


@pytest.mark.parametrize("overrides, fragment", [
    (["ratios=[0.2, 1.0]"], "must be in [0, 1)"),
    (["ratios=[-0.1]"], "must be in [0, 1)"),
    (["ratios=[0.2, 0.2]"], "duplicates"),
    (["ratios=[]"], "ratios"),
    (["bias_types=[contextual-single-sneaky]"], "unknown bias type"),
    (["bias_types=[]"], "bias_types"),
    (["social_bias=culture", "control.enabled=true"], "control sets plant a gender"),
    (["mitigations=[magic]"], "unknown mitigation"),
    (["evaluation.tasks=[not_a_task]"], "unknown task"),
    (["evaluation.task_limits={bbq: 8}"], "task_limits names task(s) not in tasks: ['bbq']"),
    (["evaluation.task_limits={occupation_classification: 1}"], "must be >= 2 items"),
    (["social_bias=religion"], "social_bias"),
    (["optim.lr=0"], "optim.lr"),
    (["optim.batch_size=0"], "optim.batch_size"),
    (["data.dataset_size=2"], "data.dataset_size"),
    (["generation.temperature=5"], "generation.temperature"),
    (["typo_key=1"], "typo_key: unknown key"),
    (["optim.learning_rate=0.1"], "optim.learning_rate: unknown key"),
    (["name=has space"], "name"),
    (["resources.cpus_per_worker=0"], "resources.cpus_per_worker"),
    # γ=0.25 of |D|=64 needs 16 augmented rows, only 4 are requested
    (["data.dataset_size=64", "generation.samples_per_type=4"], "samples_per_type"),
])
@pytest.mark.unit
def test_bad_configs_are_rejected_with_the_offending_key(tmp_path, overrides, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path / "c.yaml"), overrides)
    assert fragment in str(err.value)
    assert "Traceback" not in str(err.value)


@pytest.mark.unit
@needs_data
def test_task_limits_override_the_shared_limit_per_task(tmp_path):
    from evaluation.tasks import TASKS
    cfg = load_config(write_config(tmp_path / "c.yaml"), [
        "evaluation.tasks=[occupation_classification, crows_pairs]", "evaluation.limit=8",
        "evaluation.task_limits={crows_pairs: 6}"])
    assert cfg.evaluation.limit_for("crows_pairs") == 6
    assert cfg.evaluation.limit_for("occupation_classification") == 8
    assert len(TASKS["crows_pairs"].load(cfg)) == 6
    assert len(TASKS["occupation_classification"].load(cfg)) == 8


@pytest.mark.unit
def test_a_config_logged_with_a_retired_model_key_still_loads(tmp_path):
    """model.packed_linears was retired; configs logged to MLflow before that must still load
    (resume, report), while an unknown key of any other name is still refused."""
    cfg = load_config(write_config(tmp_path / "c.yaml"), ["model.packed_linears=true"])
    assert "packed_linears" not in cfg.model.model_dump()
    with pytest.raises(ConfigError, match="model.packed_linear"):
        load_config(write_config(tmp_path / "d.yaml"), ["model.packed_linear=true"])


@pytest.mark.unit
def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a\n- list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(bad)
    with pytest.raises(ConfigError, match="key=value"):
        load_config(write_config(tmp_path / "c.yaml"), ["no_equals_sign"])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ray_jobs.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_bad_config_exits_2_with_one_message(tmp_path):
    path = write_config(tmp_path / "c.yaml", ratios=[0.0, 1.5], evaluation={"tasks": ["nope"]})
    for command in ("validate", "run"):
        proc = _cli(command, str(path))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: invalid config")
        assert "must be in [0, 1)" in proc.stderr and "unknown task" in proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout


def test_cli_unreachable_tracking_server_exits_2_before_ray_starts(tmp_path):
    path = write_config(tmp_path / "c.yaml")
    proc = _cli("run", str(path), "--tracking-uri", "http://127.0.0.1:9")
    assert proc.returncode == 2
    assert "error: MLflow tracking server http://127.0.0.1:9 is unreachable" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Started a local Ray instance" not in proc.stderr + proc.stdout


def test_cli_validate_prints_collapsed_cells(tmp_path):
    proc = _cli("validate", str(REPO / "configs" / "smoke.yaml"))
    assert proc.returncode == 0, proc.stderr
    assert "10 cells" in proc.stdout and "r0.00-original-only-none-s0" in proc.stdout


def test_every_command_has_help():
    for command in ("run", "validate", "results", "tasks"):
        proc = _cli(command, "--help")
        assert proc.returncode == 0 and "usage:" in proc.stdout, command
