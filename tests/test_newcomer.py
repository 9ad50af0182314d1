"""The newcomer path: a smoke-sized run with an empty data dir, and a cell that fails on a user
error, both through the real CLI entry (`ray_jobs.cli.main`), local Ray and a real MLflow server.

CI always has the benchmark data beside it; these tests point the data dir at an empty folder
(or at a broken copy) so the path a new user takes is tested too.
"""
from __future__ import annotations

import json

import pytest

from ray_jobs.cli import main
from tests.conftest import write_config

pytestmark = pytest.mark.timeout(1200)

SELF_CONTAINED = ["occupation_classification", "salary_recommendation", "recruitment",
                  "story_generation"]
NEEDS_DATA = ["hate_speech", "toxigen", "bbq", "crows_pairs", "stereoset", "winobias"]


def _children(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    parent = client.search_runs([exp.experiment_id], "tags.`bias_inherit.kind` = 'parent'")[0]
    children = client.search_runs([exp.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return parent, {c.data.tags["bias_inherit.cell_id"]: c for c in children}


def test_smoke_sized_run_with_no_data_skips_benchmarks_and_measures_the_rest(
        tmp_path, monkeypatch, ray_local, mlflow_server, tiny_model, capsys):
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("BIAS_INHERIT_DATA_DIR", str(empty))
    path = write_config(
        tmp_path / "newcomer.yaml", name="newcomer", ratios=[0.0], mitigations=["none"],
        evaluate_base_model=False,
        evaluation={"tasks": SELF_CONTAINED + NEEDS_DATA, "limit": 8, "missing_data": "skip",
                    "max_new_tokens": 4, "story_max_new_tokens": 8},
        optim={"epochs": 1, "batch_size": 4}, resources={"cpus_per_worker": 1.0},
        storage_path=str(tmp_path / "storage"))
    assert main(["run", str(path), "--tracking-uri", mlflow_server]) == 0
    out = capsys.readouterr().out
    skips = [line for line in out.splitlines() if line.startswith("skip ")]
    assert [s.split(":")[0].removeprefix("skip ") for s in skips] == NEEDS_DATA
    assert all("bias-inherit data fetch" in s for s in skips)
    assert "not measured (no data): " + ", ".join(NEEDS_DATA) in out

    parent, cells = _children(mlflow_server, "newcomer")
    assert json.loads(parent.data.tags["bias_inherit.skipped_tasks"]).keys() == set(NEEDS_DATA)
    (cell,) = cells.values()
    assert cell.info.status == "FINISHED"
    measured = {m.partition("/")[0] for m in cell.data.metrics if "/" in m}
    assert set(SELF_CONTAINED) <= measured and not measured & set(NEEDS_DATA)

    assert main(["report", "newcomer", "--tracking-uri", mlflow_server,
                 "--out", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "report.html").read_text()
    assert all(f"<td>{task}</td><td>not measured: no data" in page for task in NEEDS_DATA)


def test_a_user_error_in_a_cell_fails_once_with_one_line(
        tmp_path, monkeypatch, ray_local, mlflow_server, tiny_model, capsys):
    """A dataset that is there (pre-flight passes) but unreadable: the cell fails on its first
    start, is not retried by Train or Tune, and says why in one line and on its MLflow run."""
    data = tmp_path / "broken-data"
    (data / "crows_pairs").mkdir(parents=True)
    (data / "crows_pairs" / "crows_pairs_anonymized.csv").write_text("wrong,header\n1,2\n")
    monkeypatch.setenv("BIAS_INHERIT_DATA_DIR", str(data))
    path = write_config(
        tmp_path / "broken.yaml", name="broken", ratios=[0.0], mitigations=["none"],
        evaluate_base_model=False,
        evaluation={"tasks": ["occupation_classification", "crows_pairs"], "limit": 8},
        optim={"epochs": 1, "batch_size": 4}, resources={"cpus_per_worker": 1.0, "max_failures": 2},
        storage_path=str(tmp_path / "storage"))
    assert main(["run", str(path), "--tracking-uri", mlflow_server]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 1 of 1 cells failed") and "Traceback" not in err
    assert "r0.00-original-only-none-s0: MissingDataError: task crows_pairs" in err
    _, cells = _children(mlflow_server, "broken")
    (cell,) = cells.values()
    assert cell.info.status == "FAILED"
    assert cell.data.tags["bias_inherit.trial_starts"] == "1"          # Tune did not retry
    assert "crows_pairs" in cell.data.tags["bias_inherit.error"]
    assert "train_loss" not in cell.data.metrics      # the data is read before any training
