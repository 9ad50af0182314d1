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
