"""`bias-inherit data`: where each task's data comes from, fetching it, and checking it.

    bias-inherit data list   [--config C] [--data-dir D]     # per task: found? where? which hub set?
    bias-inherit data fetch  TASK|all [--data-dir D]          # hub -> <data dir>/hub/<name>/ (jsonl)
    bias-inherit data verify [--data-dir D]                   # checksums of local and fetched files

A task reads the files of the original release under the data dir (checksums of the versions
this project was tested with: `data/checksums.json`), or rows fetched from its hub dataset with
`datasets` (`fetch` writes them, with their own checksums, and tasks read them before the
network). `BIAS_INHERIT_HUB_MIRROR` points `fetch` at a folder of dataset folders instead of the
hub. Sources and licences: docs/data.md.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bias.paths import REPO_ROOT, MissingDataError, data_dir, explicit_data_dir

CHECKSUMS = REPO_ROOT / "data" / "checksums.json"
FETCHED_CHECKSUMS = "checksums.json"   # inside each fetched dataset's folder


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def task_files(root: Path, relative: str) -> list[Path]:
    """The files of one declared data path (a file, or every file under a folder)."""
    path = root / relative
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def _config(args):
    from bias.config import ExperimentConfig, load_config
    cfg = load_config(args.config) if getattr(args, "config", None) else ExperimentConfig(
        name="data", ratios=[0.0], bias_types=["contextual-single-explicit"])
    return cfg


def _root(args) -> Path:
    root = data_dir()
    if root is None:
        raise MissingDataError("no data dir: set BIAS_INHERIT_DATA_DIR or pass --data-dir")
    return root


def list_command(args) -> int:
    from evaluation.sources import data_status
    from evaluation.tasks import TASKS
    cfg = _config(args)
    names = cfg.evaluation.tasks if args.config else list(TASKS)
    root = data_dir(cfg.data.dir)
    print(f"data dir: {root or 'none set (BIAS_INHERIT_DATA_DIR or --data-dir)'}")
    for name in names:
        task = TASKS[name]
        state, where = data_status(task, cfg)
        hub = f"  hub: {task.hub}" if task.hub else ""
        print(f"{name:26} {state:15} {where}{hub}")
    missing = [n for n in names if data_status(TASKS[n], cfg)[0] == "missing"]
    if missing:
        print(f"{len(missing)} task(s) without data; `bias-inherit data fetch TASK` gets one from "
              f"the hub, docs/data.md lists every source")
    return 0


def fetch_command(args) -> int:
    from evaluation.sources import HUB_COPIES, fetching
    from evaluation.tasks import TASKS
    root = _root(args)
    names = [t for t, task in TASKS.items() if task.hub] if args.task == "all" else [args.task]
    unknown = [n for n in names if n not in TASKS or not TASKS[n].hub]
    if unknown:
        raise MissingDataError(f"no hub dataset for {unknown}; tasks with one: "
                               f"{sorted(t for t, task in TASKS.items() if task.hub)}")
    import os

    from bias.paths import hub_reachable
    if not os.environ.get("BIAS_INHERIT_HUB_MIRROR") and not hub_reachable():
        raise MissingDataError("the Hugging Face hub did not answer: fetch where it is reachable "
                               "and copy the data dir over, or point BIAS_INHERIT_HUB_MIRROR at "
                               "a folder of dataset folders (docs/data.md)")
    cfg = _config(args)
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"dir": str(root),
                                                                     "original": "hub"}),
                                 "evaluation": cfg.evaluation.model_copy(update={"limit": None})})
    for name in names:
        task = TASKS[name]
        with fetching():
            items = task.load(cfg)
        folder = root / HUB_COPIES / task.hub
        sums = {str(p.relative_to(folder)): sha256(p) for p in sorted(folder.rglob("*.jsonl"))}
        (folder / FETCHED_CHECKSUMS).write_text(json.dumps(sums, indent=1) + "\n")
        print(f"{name}: {len(items)} items from {task.hub} -> {folder}")
    return 0


def verify_command(args) -> int:
    """Local release files against data/checksums.json; fetched copies against the checksums
    written when they were fetched. Exit 1 when a file differs."""
    from evaluation.sources import HUB_COPIES
    from evaluation.tasks import TASKS
    root = _root(args)
    expected = json.loads(CHECKSUMS.read_text())
    bad, checked = [], 0
    for name, task in TASKS.items():
        for relative in task.data:
            if not (root / relative).exists():
                continue
            for path in task_files(root, relative):
                key = str(path.relative_to(root))
                want = expected.get(key)
                checked += 1
                if want is None:
                    bad.append(f"{key}: not a file of the tested release")
                elif sha256(path) != want:
                    bad.append(f"{key}: checksum differs from the tested release")
        folder = root / HUB_COPIES / task.hub if task.hub else None
        if folder is not None and (folder / FETCHED_CHECKSUMS).exists():
            for key, want in json.loads((folder / FETCHED_CHECKSUMS).read_text()).items():
                checked += 1
                path = folder / key
                if not path.exists() or sha256(path) != want:
                    bad.append(f"hub/{task.hub}/{key}: changed or missing since it was fetched")
    for line in bad:
        print(f"FAIL {line}")
    print(f"{checked - len(bad)} of {checked} files verified in {root}")
    return 1 if bad else 0


def write_checksums(root: Path) -> dict[str, str]:
    """data/checksums.json from a data dir (maintainers, after testing a new release)."""
    from evaluation.tasks import TASKS
    sums = {str(p.relative_to(root)): sha256(p) for task in TASKS.values()
            for relative in task.data if (root / relative).exists()
            for p in task_files(root, relative)}
    CHECKSUMS.parent.mkdir(exist_ok=True)
    CHECKSUMS.write_text(json.dumps(dict(sorted(sums.items())), indent=1) + "\n")
    return sums


def add_commands(sub) -> None:
    p = sub.add_parser("data", help="list, fetch or verify the benchmark data of the tasks")
    actions = p.add_subparsers(dest="data_command", required=True)
    p_list = actions.add_parser("list", help="per task: found or not, where, its hub dataset")
    p_list.add_argument("--config", help="only the tasks of this experiment config")
    p_fetch = actions.add_parser("fetch", help="download a task's hub dataset into the data dir")
    p_fetch.add_argument("task", help="a task name, or all")
    p_verify = actions.add_parser("verify", help="check the data dir's files by checksum")
    p_verify.add_argument("--write", action="store_true", help=argparse_suppress())
    for q in (p_list, p_fetch, p_verify):
        q.add_argument("--data-dir", help="default: BIAS_INHERIT_DATA_DIR")

    def on_data(args) -> int:
        if args.data_command == "verify" and args.write:
            with explicit_data_dir(args.data_dir):
                sums = write_checksums(_root(args))
            print(f"{CHECKSUMS}: {len(sums)} files")
            return 0
        if args.data_dir and args.data_command == "fetch":
            Path(args.data_dir).expanduser().mkdir(parents=True, exist_ok=True)
        elif args.data_dir and not Path(args.data_dir).expanduser().is_dir():
            raise MissingDataError(f"--data-dir {args.data_dir} is not a directory")
        with explicit_data_dir(args.data_dir):
            return {"list": list_command, "fetch": fetch_command,
                    "verify": verify_command}[args.data_command](args)
    p.set_defaults(handler=on_data)


def argparse_suppress():
    import argparse
    return argparse.SUPPRESS
