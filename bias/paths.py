"""Where things live: the benchmark data dir and the local cache, from config or environment.

The data dir is env BIAS_INHERIT_DATA_DIR, else the config's `data.dir`; nothing else is looked
for. `bias-inherit data list` shows what each task finds there, `docs/data.md` where to get it.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from bias.errors import MissingDataError  # noqa: F401  (re-exported: its old home)

REPO_ROOT = Path(__file__).resolve().parent.parent
GET_DATA = "see `bias-inherit data list` and docs/data.md"


def data_dir(configured: str | None = None) -> Path | None:
    for candidate in (os.environ.get("BIAS_INHERIT_DATA_DIR"), configured):
        if candidate and Path(candidate).expanduser().is_dir():
            return Path(candidate).expanduser().resolve()
    return None


@contextmanager
def explicit_data_dir(path: str | None):
    """An explicit --data-dir beats BIAS_INHERIT_DATA_DIR (which beats data.dir in configs)."""
    old = os.environ.get("BIAS_INHERIT_DATA_DIR")
    if path:
        os.environ["BIAS_INHERIT_DATA_DIR"] = str(Path(path).expanduser().resolve())
    try:
        yield
    finally:
        if path and old is None:
            os.environ.pop("BIAS_INHERIT_DATA_DIR", None)
        elif path:
            os.environ["BIAS_INHERIT_DATA_DIR"] = old


def require_dataset(relative: str, configured: str | None = None) -> Path:
    root = data_dir(configured)
    if root is None or not (root / relative).exists():
        where = f"data dir {root}" if root else "no data dir set"
        raise MissingDataError(
            f"dataset {relative!r} not found ({where}). Set BIAS_INHERIT_DATA_DIR or data.dir to "
            f"the benchmark data folder, or fetch it: {GET_DATA}")
    return root / relative


@lru_cache(maxsize=None)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers within `timeout` seconds (HF_HUB_OFFLINE: never)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    import requests
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    try:
        requests.head(endpoint, timeout=timeout)
    except requests.RequestException:
        return False
    return True


def cache_dir() -> Path:
    """Converted models and other derived files; env BIAS_INHERIT_CACHE overrides."""
    root = Path(os.environ.get("BIAS_INHERIT_CACHE", Path.home() / ".cache" / "bias_inherit"))
    root.mkdir(parents=True, exist_ok=True)
    return root
