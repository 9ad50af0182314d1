"""Pre-flight: bad inputs end in one readable paragraph, exit 2, no traceback, before Ray starts.

Each case runs the real CLI in a subprocess, with an empty data dir unless it says otherwise, and
the hub unreachable (HF_HUB_OFFLINE=1, set in conftest and inherited).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, write_config


def _cli(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ray_jobs.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    return proc, time.perf_counter() - started


def _assert_one_paragraph(proc, *fragments: str) -> None:
    out = proc.stderr + proc.stdout
    assert proc.returncode == 2, out
    assert proc.stderr.startswith("error: "), out
    assert "Traceback" not in out and "Started a local Ray instance" not in out, out
    for fragment in fragments:
        assert fragment in proc.stderr, (fragment, proc.stderr)


@pytest.fixture
def empty_data(tmp_path):
    folder = tmp_path / "no-data"
    folder.mkdir()
    return {"BIAS_INHERIT_DATA_DIR": str(folder)}


@pytest.mark.parametrize("overrides, fragment", [
    ({"model": {"name": "offline:nope"}}, "unknown offline model 'offline:nope'"),
    ({"model": {"name": "/nonexistent/model-dir"}}, "model path /nonexistent/model-dir does not exist"),
    ({"model": {"name": "random:tiny-llama"}}, "random-weight model for speed benchmarks"),
    ({"model": {"name": "some-org/some-model"}},
     "'some-org/some-model' is not in the local Hugging Face cache and the hub did not answer"),
    ({"storage_path": "/proc/no-such/results"}, "storage_path /proc/no-such/results: not writable"),
    ({"evaluation": {"tasks": ["occupation_classification", "crows_pairs"], "limit": 12}},
     "crows_pairs: no data dir set"),
    ({"analyses": {"values_source": "/nonexistent/opinions.jsonl"}},
     "values_source: file /nonexistent/opinions.jsonl does not exist"),
], ids=["offline-name", "path", "random", "hub-name", "storage", "data", "values-file"])
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_input_fails_in_preflight(tmp_path, overrides, fragment, command, monkeypatch):
    monkeypatch.delenv("BIAS_INHERIT_DATA_DIR", raising=False)
    path = write_config(tmp_path / "c.yaml", **{"storage_path": str(tmp_path / "results"),
                                                **overrides})
    proc, seconds = _cli(command, str(path), "--tracking-uri", f"sqlite:///{tmp_path}/m.db")
    _assert_one_paragraph(proc, fragment)
    assert seconds < 30    # pre-flight itself targets ~10 s; the rest is interpreter start-up


def test_every_problem_is_listed_at_once(tmp_path, empty_data):
    path = write_config(tmp_path / "c.yaml", model={"name": "offline:nope"},
                        evaluation={"tasks": ["occupation_classification", "bbq"], "limit": 12},
                        storage_path="/proc/no-such/results")
    proc, _ = _cli("run", str(path), "--tracking-uri", "http://127.0.0.1:9", env=empty_data)
    _assert_one_paragraph(proc, "pre-flight found 4 problems", "offline:nope", "bbq:",
                          "storage_path", "http://127.0.0.1:9 is unreachable")
    assert "../shared" not in proc.stderr       # names project commands, not outside paths
    assert "bias-inherit data fetch" in proc.stderr


@pytest.mark.parametrize("content", [bytes(range(256)) * 4, "name: caf\xe9\n".encode("latin-1")],
                         ids=["binary", "latin-1"])
def test_config_that_is_not_text(tmp_path, content):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    for command in ("validate", "run", "generate"):
        proc, _ = _cli(command, str(path))
        _assert_one_paragraph(proc, "is not a text file")


def test_missing_data_skip_is_decided_in_preflight(tmp_path, empty_data):
    path = write_config(tmp_path / "c.yaml", evaluation={
        "tasks": ["occupation_classification", "bbq", "winobias"], "limit": 12,
        "missing_data": "skip"}, storage_path=str(tmp_path / "results"))
    proc, _ = _cli("validate", str(path), "--tracking-uri", f"sqlite:///{tmp_path}/m.db",
                   env=empty_data)
    assert proc.returncode == 0, proc.stderr
    skips = [line for line in proc.stdout.splitlines() if line.startswith("skip ")]
    assert [s.split(":")[0] for s in skips] == ["skip bbq", "skip winobias"]
    assert all("bias-inherit data fetch" in s for s in skips)
