"""Generation pipeline: seed rows -> Ray Data (preprocess -> engine -> postprocess) -> parquet.

Output is content-addressed: the directory name is a hash of every input that changes the text
(social bias, bias type, generator, prompt version, strength, n, seed, sampling params), on local
disk or any pyarrow filesystem URI. A second request with the same inputs is a cache hit and does
no model work.

    python -m generation.pipeline configs/smoke.yaml      # generate every bias type of a config
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from functools import partial

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bias.config import ExperimentConfig
from bias.models import adapter_digest, resolve_model
from bias.taxonomy import parse_bias_type
from generation.engines import pick_engine
from generation.parse import drop_counts, mark_duplicates, postprocess
from generation.prompts import make_seed_rows, preprocess

DATA_FILE = "data.parquet"
OUTPUT_COLUMNS = ("text", "occupation", "gender", "culture", "age", "name", "prompt_id",
                  "social_bias", "bias_type", "framing", "scope", "visibility", "prompt_version",
                  "generator", "seed", "temperature", "top_p", "max_new_tokens", "source")
STATS_FILE = "stats.json"


@dataclass
class GeneratedSet:
    bias_type: str
    uri: str               # directory (local path or filesystem URI)
    key: str               # content hash of the inputs
    stats: dict
    cache_hit: bool

    def read(self) -> pd.DataFrame:
        return read_generated(self.uri)


def read_generated(uri: str) -> pd.DataFrame:
    """The kept rows of a generated set, from local disk or any pyarrow filesystem."""
    fs, path = pafs.FileSystem.from_uri(_as_uri(uri))
    return pq.read_table(f"{path}/{DATA_FILE}", filesystem=fs).to_pandas()


def _as_uri(path: str) -> str:
    if "://" in path:
        return path
    import os
    return "file://" + os.path.abspath(path)


def generation_key(cfg: ExperimentConfig, bias_type: str, seed: int) -> dict:
    g = cfg.generation
    return {"social_bias": cfg.social_bias, "bias_type": bias_type, "generator": g.model,
            "prompt_version": g.prompt_version, "strength": g.strength,
            "n": g.samples_per_type, "seed": seed, "temperature": g.temperature,
            "top_p": g.top_p, "max_new_tokens": g.max_new_tokens,
            **({"adapter": adapter_digest(g.adapter)} if g.adapter else {})}


def key_hash(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def cache_root(cfg: ExperimentConfig) -> str:
    return cfg.generation.cache_dir or f"{cfg.storage_path.rstrip('/')}/generations"


def _run_engine(ds, cfg: ExperimentConfig, engine: str):
    import ray.data
    g = cfg.generation
    if engine == "vllm":
        if g.adapter:
            raise ValueError("generation.adapter (multi-round) runs on the HF engine; set "
                             "generation.engine=hf for multi-round experiments")
        from generation.engines.vllm_engine import build_vllm_processor
        return build_vllm_processor(resolve_model(g.model), g)(ds)
    from generation.engines.hf_engine import HFGenerator
    return ds.map_batches(
        HFGenerator, batch_size=g.batch_size, num_cpus=g.cpus_per_actor,
        fn_constructor_kwargs={"model_name": g.model, "dtype": cfg.model.dtype,
                               "threads": max(1, round(g.cpus_per_actor)), "adapter": g.adapter},
        compute=ray.data.ActorPoolStrategy(size=g.actors))


def generate(cfg: ExperimentConfig, bias_type: str, seed: int, engine: str = "hf") -> GeneratedSet:
    """Generate (or fetch from cache) the augmented set for one bias type and seed."""
    import ray.data
    inputs = generation_key(cfg, bias_type, seed)
    key = key_hash(inputs)
    uri = f"{cache_root(cfg).rstrip('/')}/{key}"
    fs, path = pafs.FileSystem.from_uri(_as_uri(uri))
    if fs.get_file_info(f"{path}/{STATS_FILE}").type == pafs.FileType.File:
        with fs.open_input_stream(f"{path}/{STATS_FILE}") as f:
            return GeneratedSet(bias_type, uri, key, json.loads(f.read()), cache_hit=True)

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False           # one summary line per set, not a log every 10 s
    context.execution_options.verbose_progress = False
    neutral = parse_bias_type(bias_type).is_neutral
    g = cfg.generation
    started = time.perf_counter()
    seeds = make_seed_rows(cfg.social_bias, bias_type, g.samples_per_type, seed)
    # Blocks of a whole engine batch: with one-row blocks the actor pool starts on whatever
    # trickles in and generates batches of 1 (measured: 22 vs ~150 tokens/s here).
    ds = ray.data.from_items(seeds, override_num_blocks=max(1, -(-len(seeds) // g.batch_size)))
    # Pre/post-processing is string work: a quarter CPU each, so it never waits on the
    # engine actors for a whole core (on a 2-core machine that deadlocks the pipeline).
    ds = ds.map(partial(preprocess, social_bias=cfg.social_bias, bias_type=bias_type,
                        strength=g.strength, prompt_version=g.prompt_version,
                        temperature=g.temperature, top_p=g.top_p, max_new_tokens=g.max_new_tokens),
                num_cpus=0.25)
    ds = _run_engine(ds, cfg, engine)
    ds = ds.map(partial(postprocess, social_bias=cfg.social_bias, neutral=neutral), num_cpus=0.25)
    rows = sorted(ds.take_all(), key=lambda r: int(r["prompt_id"].rsplit("-", 1)[1]))
    mark_duplicates(rows)
    elapsed = time.perf_counter() - started

    btype = parse_bias_type(bias_type)
    kept = [r for r in rows if not r["drop_reason"]]
    records = [{
        "text": r["text"], "occupation": r["occupation"], "gender": r["gender"] or "",
        "culture": r["culture"], "age": r["age"], "name": r["name"], "prompt_id": r["prompt_id"],
        "social_bias": cfg.social_bias, "bias_type": bias_type, **btype.axes(),
        "prompt_version": g.prompt_version, "generator": g.model, "seed": seed,
        "temperature": g.temperature, "top_p": g.top_p, "max_new_tokens": g.max_new_tokens,
        "source": "augmented"} for r in kept]
    frame = pd.DataFrame(records, columns=list(OUTPUT_COLUMNS))  # columns even when nothing was kept
    n_tokens = int(sum(int(r.get("num_generated_tokens", 0) or 0) for r in rows))
    stats = {"requested": len(rows), "kept": len(kept), "dropped": drop_counts(rows),
             "engine": engine, "generated_tokens": n_tokens, "seconds": round(elapsed, 2),
             "tokens_per_second": round(n_tokens / elapsed, 1) if elapsed else None,
             "group_counts": _group_counts(frame), "inputs": inputs}
    fs.create_dir(path, recursive=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), f"{path}/{DATA_FILE}",
                   filesystem=fs)
    # stats.json is written last: its presence marks a complete entry.
    with fs.open_output_stream(f"{path}/{STATS_FILE}") as f:
        f.write(json.dumps(stats, indent=1).encode())
    return GeneratedSet(bias_type, uri, key, stats, cache_hit=False)


def _group_counts(frame: pd.DataFrame) -> dict:
    if frame.empty:
        return {}
    counts = frame.groupby(["occupation", "gender"]).size()
    return {f"{occ}|{gender or 'unknown'}": int(n) for (occ, gender), n in counts.items()}


if __name__ == "__main__":
    import ray
    from bias.config import load_config
    config = load_config(sys.argv[1], sys.argv[2:])
    ray.init()
    for t in config.bias_types:
        result = generate(config, t, config.seeds[0], pick_engine(config.generation.engine, 0))
        print(t, result.uri, "cache hit" if result.cache_hit else "generated", result.stats["kept"],
              result.stats["dropped"])
