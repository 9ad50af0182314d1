"""Shared fixtures: the tiny random Llama, a local Ray cluster, a real MLflow server on 127.0.0.1.

Nothing here is mocked: Ray, MLflow, transformers and peft all run for real, only small.
"""
from __future__ import annotations

import importlib.abc
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bias.paths import data_dir  # noqa: E402 - needs nothing of the fixtures below

# Tests that read the benchmark data skip, with the reason, where no data folder is found.
needs_data = pytest.mark.skipif(
    data_dir() is None, reason="benchmark data dir not set: point BIAS_INHERIT_DATA_DIR at it "
                               "(.ci/run does; see docs/data.md)")


# The unit tier (`pytest -m unit`) runs with no Ray, MLflow, torch or model: importing one of
# these there fails the test, so a test marked `unit` that needs one cannot pass unnoticed.
HEAVY_PACKAGES = ("ray", "mlflow", "torch", "transformers", "peft", "vllm", "datasets")


class UnitTierImportBlocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HEAVY_PACKAGES:
            raise ImportError(f"{name} imported in the unit tier, which runs without "
                              f"{', '.join(HEAVY_PACKAGES)}: mark the test integration instead")
        return None


def _unit_tier(config) -> bool:
    return config.getoption("markexpr", "") == "unit" or bool(os.environ.get("BIAS_INHERIT_UNIT_TIER"))


def pytest_configure(config):
    if _unit_tier(config):
        sys.meta_path.insert(0, UnitTierImportBlocker())


def pytest_ignore_collect(collection_path, config):
    """In the unit tier a test module without unit tests is not even imported (its top-level
    imports may need torch); one with unit tests must import without the heavy packages."""
    if _unit_tier(config) and collection_path.suffix == ".py" \
            and collection_path.name.startswith("test_"):
        return "pytest.mark.unit" not in collection_path.read_text()
    return None


@pytest.fixture(scope="session")
def tiny_model() -> str:
    from bias.models import TINY, resolve_model
    resolve_model(TINY)
    return TINY


@pytest.fixture(scope="session")
def ray_local():
    import ray
    if not ray.is_initialized():
        # Keep the dashboard: it serves the State API that Ray Train's placement-group cleaner
        # polls; without it the cleaner can remove a live trial's placement group.
        from bias.local_ray import start_local_ray
        start_local_ray(num_cpus=2, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True, scope="module")
def no_placement_group_outlives_its_module():
    """Modules share one Ray cluster (ray_local); a placement group left by one module (a killed
    driver's trial, seen once: 0.9 of the 2 CPUs held, so the next module's Ray Data tasks never
    started and the module hung) would starve the next. After each module nothing should hold
    one: any left is removed, with a warning naming the module, so a leak shows without hanging."""
    yield
    if "ray" not in sys.modules:   # this module never used Ray (the unit tier cannot import it)
        return
    import ray
    if not ray.is_initialized():
        return
    from ray.util.placement_group import (PlacementGroup, placement_group_table,
                                          remove_placement_group)
    left = [pg for pg in placement_group_table().values() if pg["state"] != "REMOVED"]
    for pg in left:
        remove_placement_group(PlacementGroup(ray.PlacementGroupID(
            bytes.fromhex(pg["placement_group_id"]))))
    if left:
        import warnings
        warnings.warn(f"{len(left)} placement group(s) outlived the module, removed: "
                      + ", ".join(f"{pg['name'] or pg['placement_group_id'][:12]} "
                                  f"{pg['state']} {pg['bundles']}" for pg in left), stacklevel=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(root: Path, port: int) -> tuple[subprocess.Popen, str]:
    """`mlflow server` on 127.0.0.1:port with the SQLite store and artifacts under `root`; returns
    once /health answers. Its own session, so `stop_process_group` ends its workers too."""
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [str(mlflow_bin), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        stdout=open(root / "server.log", "a"), stderr=subprocess.STDOUT, start_new_session=True,
        # No job runner (8 huey processes the tests never use): faster start on 2 busy cores.
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if requests.get(f"{uri}/health", timeout=1).status_code == 200:
                return proc, uri
        except requests.RequestException:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    stop_process_group(proc)
    raise RuntimeError("mlflow server did not become healthy in 180 s")


def stop_process_group(proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 10) -> None:
    """End a process started with start_new_session=True and everything left in its group."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # stragglers: workers that ignored the first signal
    except ProcessLookupError:
        pass
    proc.wait(timeout=timeout)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory):
    """`mlflow server` on 127.0.0.1 with its own SQLite store and artifact root."""
    proc, uri = start_mlflow_server(tmp_path_factory.mktemp("mlflow"), free_port())
    yield uri
    stop_process_group(proc)


def write_config(path: Path, **overrides) -> Path:
    """A small valid experiment config (tiny model) with `overrides` merged in, as YAML."""
    import yaml
    base = {
        "name": "unit", "social_bias": "gender",
        "bias_types": ["contextual-single-explicit"], "ratios": [0.0, 0.25],
        "mitigations": ["none"], "seeds": [0],
        "data": {"dataset_size": 16, "test_size": 12},
        "generation": {"model": "offline:smollm2-135m-instruct", "samples_per_type": 12},
        "model": {"name": "tiny-random-llama"},
        "evaluation": {"limit": 12},
    }
    for key, value in overrides.items():
        node = base
        parts = key.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    path.write_text(yaml.safe_dump(base, sort_keys=False))
    return path
