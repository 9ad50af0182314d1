"""The code's shape: the import layers hold (import-linter, contracts in pyproject.toml), reading
configs and task declarations needs no torch, and the task registry is lazy.

    pytest tests/test_architecture.py -q
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit


def test_import_layers_hold():
    """ray_jobs -> training -> generation | evaluation -> bias, and inside ray_jobs:
    cli -> commands -> orchestration -> shared services, no command importing another."""
    lint = Path(sys.executable).parent / "lint-imports"
    proc = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    return set(out.stdout.split())


def test_reading_a_config_imports_no_torch():
    loaded = _modules_after("from bias.config import load_config\n"
                            "load_config('configs/smoke.yaml')")
    assert "torch" not in loaded
    assert "evaluation.tasks.bbq" not in loaded     # task names are checked without the modules


def test_every_task_declaration_reads_without_torch():
    """Pre-flight, `validate`, `data list` and the report read what each task declares."""
    loaded = _modules_after("from evaluation.tasks import TASKS\n"
                            "[(t.bias_metrics, t.data, t.hub) for t in TASKS.values()]")
    assert "torch" not in loaded and "transformers" not in loaded
    assert "evaluation.tasks.bbq" in loaded          # the control: the modules did load


def test_validate_imports_no_torch(tmp_path):
    code = ("import sys\nfrom ray_jobs.cli import main\n"
            f"code = main(['validate', 'configs/smoke.yaml', 'storage_path={tmp_path}',"
            f" 'tracking.uri=sqlite:///{tmp_path}/m.db', 'evaluation.missing_data=skip'])\n"
            "assert code == 0, code")
    assert "torch" not in _modules_after(code)


def test_the_registry_is_lazy_and_checks_its_lines():
    from evaluation.tasks import TASK_MODULES, TaskRegistry
    registry = TaskRegistry({"winobias": TASK_MODULES["winobias"]})
    assert "winobias" in registry and "bbq" not in registry and len(registry) == 1
    assert registry["winobias"].name == "winobias"
    with pytest.raises(KeyError):
        registry["bbq"]
    wrong = TaskRegistry({"bbq": TASK_MODULES["winobias"]})      # a line pointing elsewhere
    with pytest.raises(ValueError, match="points at task 'winobias'"):
        wrong["bbq"]


def test_a_new_mitigation_is_one_module(tmp_path):
    """Drop one module into training/mitigations/ (in a copy of the packages): the config accepts
    its name and the training data go through its rewrite, with nothing else edited."""
    import shutil
    for package in ("bias", "training", "generation", "evaluation"):
        shutil.copytree(REPO / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "training" / "mitigations" / "reverse.py").write_text(
        '"""Mitigation `reverse`: a test double of a data transform."""\n'
        "from training.mitigations import Mitigation\n\n"
        "MITIGATION = Mitigation(name='reverse', description='reversed text',\n"
        "                        rewrite=lambda texts, s: ([t[::-1] for t in texts], {'n': 1.0}))\n")
    code = (
        "import pandas as pd\n"
        "from bias.config import ExperimentConfig, known_mitigations\n"
        "from training.mitigations import alignment_weight, apply_mitigation\n"
        "cfg = ExperimentConfig(name='x', bias_types=['contextual-single-explicit'],\n"
        "                       mitigations=['none', 'reverse'], ratios=[0.0, 0.5])\n"
        "mixed = pd.DataFrame({'text': ['abc', 'xyz'], 'source': ['original', 'augmented']})\n"
        "out, figures = apply_mitigation(mixed, 'reverse', cfg.mitigation)\n"
        "print(known_mitigations(), out['text'].tolist(), figures,"
        " alignment_weight('reverse', cfg.mitigation))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == ("('none', 'loss', 'mask', 'reverse', 'token') "
                                   "['abc', 'zyx'] {'n': 1.0} 0.0")
    # the control: the real tree does not know it
    from bias.config import known_mitigations
    assert "reverse" not in known_mitigations()


def test_metric_names_round_trip():
    """The parent run's names are written and read back by one module (bias/metric_names.py)."""
    from bias import metric_names as names
    for set_name in ("contextual-single-explicit", "control-skewed", "file-vendor_a"):
        mmd = names.distribution_metric(set_name, "mmd2")
        assert names.distribution_set_of(mmd, "mmd2") == set_name
        assert names.distribution_set_of(mmd, "p_value") is None
        kept = names.generation_metric(set_name, 3, "balance_p_value")
        assert names.generation_set_of(kept, "balance_p_value") == f"{set_name}.s3"
    assert names.distribution_set_of(f"{names.DISTRIBUTION}.seconds", "seconds") is None
    assert names.values_field_of(names.values_metric("js_distance_arabic"),
                                 "js_distance_") == "arabic"
    assert names.split_task_metric(names.task_metric("bbq", "accuracy")) == ("bbq", "accuracy")
    assert names.round_metric(2, 0, "seconds") == "round2.s0.seconds"
