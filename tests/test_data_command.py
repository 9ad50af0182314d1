"""`bias-inherit data list | fetch | verify`, with a local folder standing in for the hub
(BIAS_INHERIT_HUB_MIRROR): these machines cannot reach it, and a test must not need it."""
from __future__ import annotations

import csv
import json

import pytest

from ray_jobs.cli import main
from tests.conftest import needs_data

ROWS = [
    {"sent_more": "Women can't drive.", "sent_less": "Men can't drive.",
     "stereo_antistereo": "stereo", "bias_type": "gender"},
    {"sent_more": "He was a poor immigrant.", "sent_less": "He was a rich immigrant.",
     "stereo_antistereo": "stereo", "bias_type": "socioeconomic"},
    {"sent_more": "The old man forgot the name.", "sent_less": "The young man forgot the name.",
     "stereo_antistereo": "antistereo", "bias_type": "age"},
]


def _write_csv(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A hub stand-in: `<mirror>/nyu-mll/crows_pairs/test.csv`, read by `datasets`."""
    folder = tmp_path / "mirror"
    _write_csv(folder / "nyu-mll" / "crows_pairs" / "test.csv", ROWS)
    monkeypatch.setenv("BIAS_INHERIT_HUB_MIRROR", str(folder))
    return folder


def _cfg(data):
    from bias.config import ExperimentConfig
    return ExperimentConfig(name="t", ratios=[0.0], bias_types=["contextual-single-explicit"],
                            data={"dir": str(data)}, evaluation={"tasks": ["crows_pairs"]})


def test_fetch_writes_local_files_that_the_task_then_reads(tmp_path, mirror, monkeypatch, capsys):
    from evaluation.tasks import crows_pairs
    data = tmp_path / "data"
    monkeypatch.delenv("BIAS_INHERIT_DATA_DIR", raising=False)
    assert main(["data", "fetch", "crows_pairs", "--data-dir", str(data)]) == 0
    assert "crows_pairs: 3 items from nyu-mll/crows_pairs" in capsys.readouterr().out
    copy = data / "hub" / "nyu-mll" / "crows_pairs" / "default" / "test.jsonl"
    assert [json.loads(line)["sent_more"] for line in copy.read_text().splitlines()] == \
        [r["sent_more"] for r in ROWS]

    # With the mirror gone, the task reads the fetched copy (no hub, no release files) ...
    monkeypatch.delenv("BIAS_INHERIT_HUB_MIRROR")
    fetched = crows_pairs.load(_cfg(data))
    # ... the same items the release layout gives.
    release = tmp_path / "release"
    _write_csv(release / "crows_pairs" / "crows_pairs_anonymized.csv", ROWS)
    assert fetched == crows_pairs.load(_cfg(release))

    assert main(["data", "list", "--data-dir", str(data)]) == 0
    listed = capsys.readouterr().out
    assert any(line.startswith("crows_pairs") and " fetched " in line for line in listed.splitlines())
    assert any(line.startswith("bbq") and " missing " in line for line in listed.splitlines())

    assert main(["data", "verify", "--data-dir", str(data)]) == 0
    copy.write_text(copy.read_text().replace("drive", "cook"))
    assert main(["data", "verify", "--data-dir", str(data)]) == 1
    assert "FAIL hub/nyu-mll/crows_pairs/default/test.jsonl" in capsys.readouterr().out


def test_fetch_without_hub_or_mirror_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("BIAS_INHERIT_HUB_MIRROR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["data", "fetch", "crows_pairs", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the Hugging Face hub did not answer")
    assert main(["data", "fetch", "occupation_classification", "--data-dir", str(tmp_path)]) == 2


@needs_data
def test_verify_passes_the_tested_release_and_catches_a_changed_file(tmp_path, capsys):
    import shutil

    from bias.paths import data_dir
    assert main(["data", "verify", "--data-dir", str(data_dir())]) == 0
    copy = tmp_path / "data"
    shutil.copytree(data_dir() / "crows_pairs", copy / "crows_pairs")
    assert main(["data", "verify", "--data-dir", str(copy)]) == 0
    capsys.readouterr()
    target = copy / "crows_pairs" / "crows_pairs_anonymized.csv"
    target.write_text(target.read_text(encoding="utf-8")[:-200], encoding="utf-8")
    assert main(["data", "verify", "--data-dir", str(copy)]) == 1
    assert "crows_pairs/crows_pairs_anonymized.csv: checksum differs" in capsys.readouterr().out
