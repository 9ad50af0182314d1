"""Where a benchmark task reads its rows: the shared data dir offline, the Hugging Face hub on a cluster.

`data.original: offline` (the default) reads `<data dir>/<relative>` and fails with a
`MissingDataError` naming the dataset and the BIAS_INHERIT_DATA_DIR / `data.dir` setting;
`data.original: hub` calls `datasets.load_dataset` with the real hub name (imported lazily, so
offline runs never touch it). A hub failure is reported the same way, naming the hub dataset.
"""
from __future__ import annotations

from pathlib import Path

from bias.paths import MissingDataError, require_dataset


def use_hub(cfg) -> bool:
    return cfg.data.original == "hub"


def local_path(relative: str, cfg) -> Path:
    return require_dataset(relative, cfg.data.dir)


def hub_rows(name: str, config: str | None = None, split: str = "test",
             data_file: str | None = None) -> list[dict]:
    """Rows of a hub dataset as plain dicts, ClassLabel ints turned into their names.

    `data_file`: read that JSON-lines file of the dataset repo instead of its configs (for sets
    published as raw files only)."""
    try:
        import datasets
        if data_file:
            ds = datasets.load_dataset("json", data_files=f"hf://datasets/{name}/{data_file}",
                                       split="train")
        else:
            ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # network, auth (gated sets) and missing-config errors all land here
        part = config or data_file
        raise MissingDataError(
            f"cannot load {name}{f' ({part})' if part else ''} from the hub: {type(e).__name__}: "
            f"{e}. Set data.original: offline to read the shared data dir instead") from None
    names = {col: feat.names for col, feat in ds.features.items() if hasattr(feat, "names")}
    rows = ds.to_list()
    for row in rows:
        for col, labels in names.items():
            if isinstance(row.get(col), int):
                row[col] = labels[row[col]]
    return rows
