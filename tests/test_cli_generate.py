"""`bias-inherit generate`: user errors exit 2 with one `error:` line; a real generation is logged
to an MLflow run tagged as a generation run; a second call (and `run`'s generation step) is a
cache hit."""
from __future__ import annotations

import json

import pytest

from bias.config import load_config
from ray_jobs.cli import main
from tests.conftest import free_port, write_config


def _one_error_line(capsys) -> str:
    """One `error:` message, no traceback (a config error lists its fields on indented lines)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[0].startswith("error: "), err
    assert all(line.startswith("  - ") for line in err[1:]), err
    return "\n".join(err)


def test_generate_user_errors_exit_2_with_one_line(tmp_path, tiny_model, capsys):
    assert main(["generate", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read config" in _one_error_line(capsys)

    bad = write_config(tmp_path / "bad.yaml", generation={"model": tiny_model, "shard_size": 0})
    assert main(["generate", str(bad)]) == 2
    assert "shard_size" in _one_error_line(capsys)

    good = write_config(tmp_path / "good.yaml", generation={"model": tiny_model})
    assert main(["generate", str(good), "generation.prompt_version=v9"]) == 2
    assert "prompt_version" in _one_error_line(capsys)

    sqlite = f"sqlite:///{tmp_path / 'm.db'}"
    assert main(["generate", str(good), "generation.engine=vllm", "--tracking-uri", sqlite]) == 2
    assert "needs vLLM" in _one_error_line(capsys)         # refused before Ray starts

    assert main(["generate", str(good), "generation.model=/nonexistent/model",
                 "--tracking-uri", f"http://127.0.0.1:{free_port()}"]) == 2
    _one_error_line(capsys)                                 # tracking server unreachable

    with pytest.raises(SystemExit) as usage:
        main(["generate"])                                  # argparse: CONFIG is required
    assert usage.value.code == 2


def test_generate_logs_a_generation_run_and_reruns_are_cache_hits(
        tmp_path, tiny_model, ray_local, mlflow_server, capsys):
    from mlflow.tracking import MlflowClient

    from ray_jobs.experiment import generate_sets
    types = ["neutral"]
    path = write_config(tmp_path / "gen.yaml", name="cli-gen", bias_types=types, ratios=[0.0],
                        storage_path=str(tmp_path / "storage"),
                        generation={"model": tiny_model, "samples_per_type": 4, "shard_size": 2,
                                    "batch_size": 4, "max_new_tokens": 8, "cpus_per_actor": 1.0})
    assert main(["generate", str(path), "--tracking-uri", mlflow_server]) == 0
    out = capsys.readouterr().out
    assert out.count("2 shards generated, 0 reused") == len(types), out

    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("cli-gen")
    runs = client.search_runs([experiment.experiment_id], "tags.`bias_inherit.kind` = 'generation'")
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {f"augmented-{t}-s0" for t in types}
    dataset = inputs["augmented-neutral-s0"].dataset
    assert dataset.digest and "storage/generations/" in json.loads(dataset.source)["uri"]
    tags = {t.key: t.value for t in inputs["augmented-neutral-s0"].tags}
    assert len(tags["generation_key"]) == 16 and tags["cache_hit"] == "false"
    m = run.data.metrics
    for t in types:
        assert m[f"generation.{t}.s0.requested"] == 4
        assert f"generation.{t}.s0.balance_p_value" in m and f"generation.{t}.s0.dropped_empty" in m
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "generation")}
    for t in types:
        for suffix in ("stats.json", "group-balance.json", "sample.json"):
            assert f"generation/{t}-s0-{suffix}" in artifacts

    # Again: a cache hit, for `generate` and for the generation step of `run` alike.
    assert main(["generate", str(path), "--tracking-uri", mlflow_server]) == 0
    assert capsys.readouterr().out.count("(cache hit)") == len(types)
    cfg = load_config(path)
    sets = generate_sets(cfg, "hf", echo=lambda *_: None)
    assert all(s.cache_hit and s.work["rows_generated"] == 0 for s in sets.values())
