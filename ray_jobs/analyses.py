"""The three misalignment analyses of an experiment, run as Ray tasks and logged on the parent run.

  distribution  D_o vs each D_a in embedding space (MMD permutation test + PCA plot)
  group data    group counts of each generated set against balance (chi-square): logged with
                each set by run.log_generated (generation/balance.py), not repeated here
  values        the model's GlobalOpinionQA answers vs each culture's countries (JS distance)
Each analysis logs its run time (`analysis.<name>.seconds`); one that cannot run (no data, no
embedder) is skipped with its reason as a tag, never failing the experiment.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bias import metric_names as names
from bias.config import ExperimentConfig


def _distribution_task(original_texts: list[str], augmented: dict[str, list[str]], embedder: str,
                       permutations: int) -> dict:
    """Runs on any node: returns each test's figures and its plot as PNG bytes."""
    from evaluation.analyses.distribution import embed, mmd_test, projection_plot
    x = embed(original_texts, embedder)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, texts in augmented.items():
            if len(texts) < 2:
                results[name] = {"skipped": f"only {len(texts)} generated rows"}
                continue
            y = embed(texts, embedder)
            results[name] = mmd_test(x, y, permutations=permutations)
            plot = f"{tmp}/{name}.png"
            projection_plot(x, y, f"{name}: MMD² {results[name]['mmd2']:.4f}, "
                                  f"p = {results[name]['p_value']:.4f}", plot)
            results[name]["png"] = Path(plot).read_bytes()
    return results


def _values_task(cfg_dump: dict) -> dict:
    import torch

    from bias.models import load_causal_lm, load_tokenizer, pick_dtype
    from evaluation.analyses.values import js_distances, load_questions, model_distributions
    cfg = ExperimentConfig.model_validate(cfg_dump)
    rows = load_questions(cfg.analyses.values_source, cfg.analyses.values_limit)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_causal_lm(cfg.model.name, pick_dtype(cfg.model.dtype, device), device,
                           cfg.model.attention).eval()
    tokenizer = load_tokenizer(cfg.model.name)
    return js_distances(rows, model_distributions(model, tokenizer, rows))


def run_analyses(cfg: ExperimentConfig, generated: dict, mlflow, echo=print) -> dict[str, float]:
    """Run the enabled analyses on the cluster and log them to the active (parent) run."""
    import ray

    from bias.original_data import load_original
    metrics: dict[str, float] = {}
    a = cfg.analyses
    task_options = {"num_cpus": min(cfg.resources.cpus_per_worker, 1.0)}

    if a.distribution:
        started = time.perf_counter()
        seed = cfg.seeds[0]
        original = load_original(cfg.data.original, "train", cfg.data.dataset_size, seed)
        augmented = {t: gen.read()["text"].tolist()[:a.max_texts]
                     for (t, s), gen in generated.items() if s == seed}
        with tempfile.TemporaryDirectory() as out_dir:
            try:
                results = ray.get(ray.remote(_distribution_task).options(**task_options).remote(
                    original["text"].tolist()[:a.max_texts], augmented, a.embedder,
                    a.permutations))
            except Exception as e:   # an analysis never sinks the experiment
                mlflow.set_tag(names.skipped_tag("distribution"), str(e).splitlines()[0][:500])
                echo(f"distribution analysis skipped: {str(e).splitlines()[0]}")
                results = {}
            for name, r in results.items():
                if "skipped" in r:
                    mlflow.set_tag(names.skipped_tag("distribution", name), r["skipped"])
                    continue
                Path(out_dir, f"{name}.png").write_bytes(r.pop("png"))
                metrics[names.distribution_metric(name, "mmd2")] = r["mmd2"]
                metrics[names.distribution_metric(name, "p_value")] = r["p_value"]
                echo(f"distribution {name}: MMD² {r['mmd2']:.4f}, p = {r['p_value']:.4g}")
            mlflow.log_artifacts(out_dir, "analyses/distribution")
        metrics[f"{names.DISTRIBUTION}.seconds"] = time.perf_counter() - started

    if a.values_source != "none":
        started = time.perf_counter()
        gpu = {"num_gpus": 1} if cfg.resources.gpus_per_worker else {}
        try:
            values = ray.get(ray.remote(_values_task).options(**task_options, **gpu).remote(
                cfg.model_dump(mode="json")))
            # values/<field> (and values/country/<c>) -> analysis.values.<field>
            metrics.update({names.values_metric(k.partition("/")[2].replace("/", ".")): v
                            for k, v in values.items() if v == v})
        except Exception as e:
            mlflow.set_tag(names.skipped_tag("values"), str(e).splitlines()[0][:500])
            echo(f"values analysis skipped: {str(e).splitlines()[0]}")
        metrics[names.values_metric("seconds")] = time.perf_counter() - started

    metrics = {k.replace(" ", "_"): v for k, v in metrics.items()}
    if metrics:
        mlflow.log_metrics(metrics)
    return metrics
