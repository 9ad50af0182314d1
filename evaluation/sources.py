"""Where a benchmark task reads its rows: the data dir offline, the Hugging Face hub on a cluster.

A task reads `<data dir>/<its local files>` (the layout of the original releases), or the hub
with `datasets.load_dataset` under the real hub name (imported lazily, so offline runs never
touch it). It reads the hub when `data.original: hub`, or when its local files are absent but
`bias-inherit data fetch` has stored a copy of its hub rows in the data dir
(`<data dir>/hub/<hub name>/...jsonl`): a fetched copy is read before the network, so a fetched
data dir works with no hub in reach. A missing dataset or an unreachable hub is a
`MissingDataError` naming the dataset and how to get it.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from bias.paths import GET_DATA, MissingDataError, data_dir, require_dataset

HUB_COPIES = "hub"   # folder of fetched hub rows inside the data dir
_FETCHING: ContextVar[bool] = ContextVar("fetching", default=False)


@contextmanager
def fetching():
    """Inside: every `hub_rows` call loads from the hub (or mirror) and stores a copy."""
    token = _FETCHING.set(True)
    try:
        yield
    finally:
        _FETCHING.reset(token)


def fetched_copy(hub_name: str, configured: str | None = None) -> Path | None:
    """The folder of a hub dataset's fetched rows in the data dir, if there is one."""
    root = data_dir(configured)
    folder = root / HUB_COPIES / hub_name if root else None
    return folder if folder is not None and folder.is_dir() else None


def use_hub(cfg, local: str | tuple[str, ...] | None = None, hub: str | None = None) -> bool:
    """Read the hub rows: configured so, or a local file is absent and a copy was fetched."""
    if cfg.data.original == "hub":
        return True
    root = data_dir(cfg.data.dir)
    paths = (local,) if isinstance(local, str) else tuple(local or ())
    local_missing = bool(paths) and (root is None or not all((root / p).exists() for p in paths))
    return bool(local_missing and hub and fetched_copy(hub, cfg.data.dir))


def local_path(relative: str, cfg) -> Path:
    return require_dataset(relative, cfg.data.dir)


def _copy_file(hub_name: str, config: str | None, split: str, data_file: str | None,
               root: Path) -> Path:
    part = (data_file or config or "default").replace("/", "__")
    return root / HUB_COPIES / hub_name / part / f"{split}.jsonl"


def hub_rows(name: str, config: str | None = None, split: str = "test",
             data_file: str | None = None, cfg=None) -> list[dict]:
    """Rows of a hub dataset as plain dicts, ClassLabel ints turned into their names.

    `data_file`: read that JSON-lines file of the dataset repo instead of its configs (for sets
    published as raw files only). A copy fetched into the data dir is read first; inside
    `fetching()` the hub is read and a copy stored (`bias-inherit data fetch`). `BIAS_INHERIT_HUB_MIRROR` (a folder holding `<name>/`
    dataset folders) stands in for the hub, for mirrors and tests.
    """
    import os
    store = _FETCHING.get()
    root = data_dir(cfg.data.dir if cfg is not None else None)
    copy = _copy_file(name, config, split, data_file, root) if root else None
    if copy is not None and copy.exists() and not store:
        return [json.loads(line) for line in copy.read_text(encoding="utf-8").splitlines() if line]
    mirror = os.environ.get("BIAS_INHERIT_HUB_MIRROR")
    try:
        import datasets
        if mirror:
            base = Path(mirror) / name
            ds = (datasets.load_dataset("json", data_files=str(base / data_file), split="train")
                  if data_file else datasets.load_dataset(str(base), config, split=split))
        elif data_file:
            ds = datasets.load_dataset("json", data_files=f"hf://datasets/{name}/{data_file}",
                                       split="train")
        else:
            ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # network, auth (gated sets) and missing-config errors all land here
        part = config or data_file
        first = str(e).splitlines()[0] if str(e) else ""
        raise MissingDataError(
            f"cannot load {name}{f' ({part})' if part else ''} from the hub: {type(e).__name__}: "
            f"{first}. Use data.original: offline with a data dir, or {GET_DATA}") from None
    names = {col: feat.names for col, feat in ds.features.items() if hasattr(feat, "names")}
    rows = ds.to_list()
    for row in rows:
        for col, labels in names.items():
            if isinstance(row.get(col), int):
                row[col] = labels[row[col]]
    if store:
        if copy is None:
            raise MissingDataError(f"no data dir to fetch {name} into: set BIAS_INHERIT_DATA_DIR")
        copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = copy.with_suffix(".partial")
        tmp.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows), encoding="utf-8")
        tmp.rename(copy)
    return rows


def data_status(task, cfg) -> tuple[str, str]:
    """Where `task` would read its rows under `cfg`: (state, where), state one of
    self-contained, local, fetched, hub, missing. The hub is asked only when nothing local is."""
    from bias.paths import hub_reachable
    if not task.data:
        return "self-contained", "writes its own items"
    root = data_dir(cfg.data.dir)
    copy = fetched_copy(task.hub, cfg.data.dir) if task.hub else None
    if cfg.data.original != "hub" and root is not None and all((root / p).exists()
                                                               for p in task.data):
        return "local", str(root / task.data[0])
    if copy is not None:
        return "fetched", str(copy)
    if cfg.data.original == "hub" and task.hub and hub_reachable():
        return "hub", task.hub
    if cfg.data.original == "hub":
        return "missing", f"hub dataset {task.hub} not fetched and the hub did not answer"
    return "missing", (f"{', '.join(task.data)} not in data dir {root}" if root
                       else "no data dir set")
