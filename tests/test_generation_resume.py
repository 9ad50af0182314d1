"""Resume after a killed run: a real `bias-inherit generate` driver process is SIGKILLed once its
first shard is on disk; the rerun must keep every finished shard untouched, generate only the
missing ones, and end with each seed row exactly once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from bias.config import load_config
from generation.pipeline import cache_root, finished_shards, generate, generation_key, key_hash
from tests.conftest import REPO, write_config

pytestmark = pytest.mark.timeout(1200)   # a hang guard, generous for a loaded machine
BIAS_TYPE = "contextual-single-implicit"


def _shard_files(shards: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(shards.glob("shard-*"))}


def test_killed_driver_keeps_finished_shards_and_rerun_generates_only_the_rest(
        tmp_path, tiny_model, ray_local, mlflow_server):
    # 6 shards of 2 rows, one row per engine batch: slow enough to kill in the middle.
    path = write_config(
        tmp_path / "resume.yaml", name="resume", bias_types=[BIAS_TYPE], ratios=[0.0],
        storage_path=str(tmp_path / "storage"),
        generation={"model": tiny_model, "samples_per_type": 12, "shard_size": 2,
                    "batch_size": 1, "max_new_tokens": 24, "cpus_per_actor": 1.0})
    cfg = load_config(path)
    key = key_hash(generation_key(cfg, BIAS_TYPE, 0))
    shards = Path(cache_root(cfg)) / key / "shards"
    total = 6

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen(
        [sys.executable, "-m", "ray_jobs.cli", "generate", str(path),
         "--address", ray_local.get_runtime_context().gcs_address,
         "--tracking-uri", mlflow_server],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None and not list(shards.glob("shard-*")):
        time.sleep(0.02)
    os.killpg(driver.pid, signal.SIGKILL)      # the driver and anything it started
    output = driver.communicate()[0].decode(errors="replace")
    assert driver.returncode == -signal.SIGKILL, output[-3000:]

    before = _shard_files(shards)
    assert 1 <= len(before) < total, (len(before), output[-3000:])
    assert not (shards.parent / "dedup-v2-0.8" / "stats.json").exists()     # not marked finished
    n_before = sum(pq.read_table(shards / name).num_rows for name in before)

    resumed = generate(cfg, BIAS_TYPE, seed=0, engine="hf")
    assert not resumed.cache_hit
    assert resumed.work["shards_reused"] == len(before)
    assert resumed.work["shards_generated"] == total - len(before)
    assert resumed.work["rows_generated"] == 12 - n_before          # no row generated twice

    after = _shard_files(shards)
    assert len(after) == total
    for name, (mtime, content) in before.items():                   # finished shards untouched
        assert after[name] == (mtime, content), name
    assert not [p for p in shards.iterdir() if not p.name.startswith("shard-")]  # no temp files
    indices = pq.read_table(shards, columns=["prompt_index"]).column(0).to_pylist()
    assert sorted(indices) == list(range(12))                        # each row exactly once
    assert resumed.stats["requested"] == 12
    assert len(resumed.read()) == resumed.stats["kept"]
    assert finished_shards(*_local_fs(shards)) == {(i, i + 2) for i in range(0, 12, 2)}

    again = generate(cfg, BIAS_TYPE, seed=0, engine="hf")
    assert again.cache_hit and again.work["rows_generated"] == 0


def _local_fs(path: Path):
    import pyarrow.fs as pafs
    return pafs.LocalFileSystem(), str(path)
