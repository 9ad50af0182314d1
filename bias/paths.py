"""Where things live: the benchmark data dir and the local cache, from config or environment.

Order for the data dir: env BIAS_INHERIT_DATA_DIR, the config's `data.dir`, then `../shared/data`
beside the checkout (the layout of the development machines).
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class MissingDataError(FileNotFoundError):
    """A dataset the run needs is absent; the message says which and how to get it."""


def data_dir(configured: str | None = None) -> Path | None:
    for candidate in (os.environ.get("BIAS_INHERIT_DATA_DIR"), configured,
                      REPO_ROOT.parent / "shared" / "data"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return None


def require_dataset(relative: str, configured: str | None = None) -> Path:
    root = data_dir(configured)
    if root is None or not (root / relative).exists():
        raise MissingDataError(
            f"dataset {relative!r} not found (data dir: {root or 'none found'}). Set "
            f"BIAS_INHERIT_DATA_DIR or data.dir to the benchmark data folder (see "
            f"shared/data/MANIFEST.md), or load the task from the hub on a cluster.")
    return root / relative


def cache_dir() -> Path:
    """Converted models and other derived files; env BIAS_INHERIT_CACHE overrides."""
    root = Path(os.environ.get("BIAS_INHERIT_CACHE", Path.home() / ".cache" / "bias_inherit"))
    root.mkdir(parents=True, exist_ok=True)
    return root
