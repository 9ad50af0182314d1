"""House rules: stages never import ray_jobs; every module says what it does; configs say how to launch."""
from __future__ import annotations

import ast

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.unit   # no Ray, MLflow or model

STAGES = ("bias", "generation", "training", "evaluation")
MODULES = sorted(p for pkg in STAGES + ("ray_jobs",) for p in (REPO / pkg).rglob("*.py"))


@pytest.mark.parametrize("path", [p for p in MODULES if p.parts[-2] != "ray_jobs"
                                  and p.relative_to(REPO).parts[0] in STAGES],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_stage_packages_never_import_ray_jobs(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        assert not any(n == "ray_jobs" or n.startswith("ray_jobs.") for n in names), path


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_module_opens_with_a_docstring(path):
    if path.name == "__init__.py" and not path.read_text().strip():
        pytest.skip("empty package marker")
    assert ast.get_docstring(ast.parse(path.read_text())), f"{path} has no module docstring"
