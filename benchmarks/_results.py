"""Where a benchmark's figures go besides the console: one JSON file per run.

    from _results import add_json_option, write_results
    add_json_option(parser, "train_throughput")       # --json PATH, default benchmarks/results/<name>.json
    ...
    write_results(args.json, "train_throughput", figures, argv)

The file holds the figures the benchmark returns or prints, with what is needed to log them in
docs/performance.md: the date (UTC), the command line, and the host (CPU model, CPU count,
GPU name when there is one). `--json ''` writes nothing. A later run overwrites the file.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import sys
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def add_json_option(parser, name: str) -> None:
    parser.add_argument("--json", metavar="PATH", default=str(RESULTS_DIR / f"{name}.json"),
                        help="also write the figures here as JSON (default: %(default)s; "
                             "'' writes none)")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host() -> dict:
    info = {"cpu": cpu_model(), "cpus": os.cpu_count(), "platform": platform.platform()}
    torch = sys.modules.get("torch")   # only where the benchmark imported it already
    if torch is not None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _plain(value):
    item = getattr(value, "item", None)   # numpy and torch scalars
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError, RuntimeError):
            pass
    return str(value)


def write_results(path: str | os.PathLike | None, name: str, figures: dict,
                  argv: list[str] | None = None) -> Path | None:
    """Write `figures` (anything JSON can hold; numpy/torch scalars as numbers, other values as
    their str) with the run's date, command and host to `path`; returns the path, or None when
    `path` is empty."""
    if not path:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    args = sys.argv[1:] if argv is None else list(argv)
    record = {"benchmark": name,
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["python", f"benchmarks/{name}.py", *args]),
              "host": host(), "figures": figures}
    path.write_text(json.dumps(record, indent=1, default=_plain) + "\n")
    print(f"figures written to {path}")
    return path
