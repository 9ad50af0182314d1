"""Generation pipeline: seed rows -> Ray Data (preprocess -> engine -> postprocess) -> parquet.

Output is content-addressed, on local disk or any pyarrow filesystem URI (S3, GCS, NFS):

  <cache>/<key>/shards/shard-<start>-<stop>.parquet   every parsed row of seed rows start..stop-1
  <cache>/<key>/dedup-v<version>-<threshold>/data.parquet   the kept rows, with provenance
  <cache>/<key>/dedup-v<version>-<threshold>/stats.json     written last: marks a finished set

<key> hashes every input that changes a generated row (social bias, bias type, generator,
prompt version, strength, n, seed, sampling params, parse rules). A request whose stats.json
exists is a cache hit: it reads one small file and does no Ray or model work.

Resume: seed rows are cut into shards of `generation.shard_size`. One streaming Ray Data
pipeline generates the rows of the missing shards only; the driver collects the rows as they
stream out and writes each shard as soon as its last row arrives (a temporary name, then a
rename), so a run killed midway keeps every finished shard and a rerun generates only the rest.
Finalising (exact and near-duplicate removal across all shards, data.parquet, stats.json) reads
the shards and does no model work; changing the dedup threshold reuses them.

    python -m generation.pipeline configs/smoke.yaml [key=value ...]   # every bias type of a config
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from functools import partial

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from bias.config import ExperimentConfig
from bias.models import adapter_digest, resolve_model
from bias.taxonomy import parse_bias_type
from generation.dedup import DEDUP_VERSION, mark_duplicates
from generation.engines import pick_engine
from generation.parse import PARSE_VERSION, drop_counts, postprocess
from generation.prompts import make_seed_rows, preprocess

DATA_FILE = "data.parquet"
STATS_FILE = "stats.json"
SHARDS_DIR = "shards"
# The kept rows: the text, who it is about, and where it came from (provenance).
OUTPUT_COLUMNS = ("text", "occupation", "group", "gender", "culture", "age", "name", "persona",
                  "task_format", "prompt_id", "prompt_index", "prompt", "social_bias",
                  "bias_type", "framing", "scope", "visibility", "strength", "prompt_version",
                  "generator", "engine", "seed", "sampling_seed", "temperature", "top_p",
                  "max_new_tokens", "generation_key", "source")
# A shard keeps every row, dropped ones too, with the raw output and its drop reason.
SHARD_COLUMNS = OUTPUT_COLUMNS + ("drop_reason", "generated_text", "num_generated_tokens")
_SHARD_NAME = re.compile(r"^shard-(\d{8})-(\d{8})\.parquet$")


@dataclass
class GeneratedSet:
    bias_type: str
    uri: str               # the set's directory (local path or filesystem URI)
    key: str               # content hash of the generation inputs
    stats: dict
    cache_hit: bool
    # What this call did: rows and shards that went through the engine, shards reused.
    work: dict = field(default_factory=dict)

    def read(self) -> pd.DataFrame:
        return read_generated(self.uri)


def _as_uri(path: str) -> str:
    return path if "://" in path else "file://" + os.path.abspath(path)


def _fs(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(_as_uri(uri))


def read_generated(uri: str) -> pd.DataFrame:
    """The kept rows of a generated set, from local disk or any pyarrow filesystem."""
    fs, path = _fs(uri)
    return pq.read_table(f"{path}/{DATA_FILE}", filesystem=fs).to_pandas()


def generation_key(cfg: ExperimentConfig, bias_type: str, seed: int) -> dict:
    """Every input that changes a generated row; its hash names the cache entry."""
    g = cfg.generation
    return {"social_bias": cfg.social_bias, "bias_type": bias_type, "generator": g.model,
            "prompt_version": g.prompt_version, "strength": g.strength,
            "n": g.samples_per_type, "seed": seed, "temperature": g.temperature,
            "top_p": g.top_p, "max_new_tokens": g.max_new_tokens, "parse_version": PARSE_VERSION,
            **({"adapter": adapter_digest(g.adapter)} if g.adapter else {})}


def key_hash(inputs: dict) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def cache_root(cfg: ExperimentConfig) -> str:
    return cfg.generation.cache_dir or f"{cfg.storage_path.rstrip('/')}/generations"


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]


def shard_name(start: int, stop: int) -> str:
    return f"shard-{start:08d}-{stop:08d}.parquet"


def finished_shards(fs: pafs.FileSystem, shards_path: str) -> set[tuple[int, int]]:
    """Index ranges of the shards written so far (temporary files are not shards)."""
    infos = fs.get_file_info(pafs.FileSelector(shards_path, allow_not_found=True))
    found = set()
    for info in infos:
        match = _SHARD_NAME.match(info.base_name)
        if match and info.type == pafs.FileType.File:
            found.add((int(match.group(1)), int(match.group(2))))
    return found


def _write_atomically(fs: pafs.FileSystem, path: str, table: pa.Table) -> None:
    """Write to a temporary name, then rename: readers never see half a file. (On object
    stores the upload only becomes visible once complete, and the rename is a copy.)"""
    tmp = f"{path.rsplit('/', 1)[0]}/_tmp-{uuid.uuid4().hex}.parquet"
    pq.write_table(table, tmp, filesystem=fs)
    fs.move(tmp, path)


def _run_engine(ds, cfg: ExperimentConfig, engine: str):
    import ray
    import ray.data
    g = cfg.generation
    if engine == "vllm":
        from generation.engines.vllm_engine import build_vllm_processor
        on_gpu = ray.cluster_resources().get("GPU", 0) > 0
        return build_vllm_processor(resolve_model(g.model), g, on_gpu, cfg.lora.r)(ds)
    from generation.engines.hf_engine import HFGenerator
    return ds.map_batches(
        HFGenerator, batch_size=g.batch_size, num_cpus=g.cpus_per_actor,
        num_gpus=g.gpus_per_actor or None,
        fn_constructor_kwargs={"model_name": g.model, "dtype": cfg.model.dtype,
                               "attention": cfg.model.attention,
                               "threads": max(1, round(g.cpus_per_actor)), "adapter": g.adapter,
                               "device": "cuda" if g.gpus_per_actor else "cpu"},
        compute=ray.data.ActorPoolStrategy(size=g.actors))


def _provenance(cfg: ExperimentConfig, bias_type: str, seed: int, engine: str, key: str) -> dict:
    """The columns every row of a set shares."""
    g = cfg.generation
    return {"social_bias": cfg.social_bias, "bias_type": bias_type,
            **parse_bias_type(bias_type).axes(), "strength": g.strength,
            "prompt_version": g.prompt_version, "generator": g.model, "engine": engine,
            "seed": seed, "temperature": g.temperature, "top_p": g.top_p,
            "max_new_tokens": g.max_new_tokens, "generation_key": key, "source": "augmented"}


def _shard_table(rows: list[dict], shared: dict) -> pa.Table:
    frame = pd.DataFrame([{**r, **shared} for r in sorted(rows, key=lambda r: r["prompt_index"])])
    frame["num_generated_tokens"] = frame.get("num_generated_tokens", 0)
    frame = frame.reindex(columns=list(SHARD_COLUMNS))
    for column in ("num_generated_tokens", "prompt_index", "sampling_seed", "seed"):
        frame[column] = frame[column].fillna(0).astype("int64")
    for column in SHARD_COLUMNS:
        if frame[column].dtype == object:
            frame[column] = frame[column].fillna("").astype(str)
    return pa.Table.from_pandas(frame, preserve_index=False)


def _generate_shards(cfg: ExperimentConfig, bias_type: str, seed: int, engine: str, key: str,
                     missing: list[tuple[int, int]], fs: pafs.FileSystem, shards_path: str,
                     on_shard=None) -> dict:
    """Run the engine on the seed rows of the `missing` shards; write each shard when complete."""
    import ray.data
    g = cfg.generation
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False           # one summary line per set, not a log every 10 s
    context.execution_options.verbose_progress = False
    all_seeds = make_seed_rows(cfg.social_bias, bias_type, g.samples_per_type, seed)
    seeds = [row for start, stop in missing for row in all_seeds[start:stop]]
    shard_of = {i: (start, stop) for start, stop in missing for i in range(start, stop)}
    pending: dict[tuple[int, int], list[dict]] = {r: [] for r in missing}
    shared = _provenance(cfg, bias_type, seed, engine, key)
    neutral = parse_bias_type(bias_type).is_neutral

    # Blocks of a whole engine batch: with one-row blocks the actor pool starts on whatever
    # trickles in and generates batches of 1, losing all the batching gains.
    ds = ray.data.from_items(seeds, override_num_blocks=max(1, -(-len(seeds) // g.batch_size)))
    # Pre/post-processing is string work: a quarter CPU each, so it never waits on the
    # engine actors for a whole core (on a 2-core machine that deadlocks the pipeline).
    ds = ds.map(partial(preprocess, social_bias=cfg.social_bias, bias_type=bias_type,
                        strength=g.strength, prompt_version=g.prompt_version,
                        temperature=g.temperature, top_p=g.top_p, max_new_tokens=g.max_new_tokens),
                num_cpus=0.25)
    ds = _run_engine(ds, cfg, engine)
    ds = ds.map(partial(postprocess, social_bias=cfg.social_bias, neutral=neutral), num_cpus=0.25)
    started, rows_done, tokens, written = time.perf_counter(), 0, 0, 0
    for row in ds.iter_rows():   # streaming: shards are written while the engine keeps going
        shard = shard_of[int(row["prompt_index"])]
        pending[shard].append(row)
        rows_done += 1
        tokens += int(row.get("num_generated_tokens") or 0)
        if len(pending[shard]) == shard[1] - shard[0]:
            _write_atomically(fs, f"{shards_path}/{shard_name(*shard)}",
                              _shard_table(pending.pop(shard), shared))
            written += 1
            if on_shard:
                on_shard(shard)
    if pending:
        raise RuntimeError(f"the engine returned no rows for shards {sorted(pending)}; rerun "
                           f"to generate them (finished shards are kept)")
    seconds = time.perf_counter() - started
    return {"rows_generated": rows_done, "shards_generated": written, "generated_tokens": tokens,
            "seconds": round(seconds, 2),
            "tokens_per_second": round(tokens / seconds, 1) if seconds else None}


def _finalize(cfg: ExperimentConfig, fs: pafs.FileSystem, shards_path: str,
              ranges: list[tuple[int, int]]) -> tuple[pd.DataFrame, dict]:
    """All shards -> (kept rows, counts): drop reasons, exact and near duplicates across shards."""
    tables = [pq.read_table(f"{shards_path}/{shard_name(*r)}", filesystem=fs) for r in ranges]
    frame = pa.concat_tables(tables).to_pandas().sort_values("prompt_index", kind="stable")
    if frame["prompt_index"].duplicated().any() or len(frame) != cfg.generation.samples_per_type:
        raise RuntimeError(f"shards under {shards_path} do not cover the seed rows exactly once")
    rows = frame.to_dict("records")
    duplicates = mark_duplicates(rows, cfg.generation.near_duplicate_threshold)
    kept = pd.DataFrame([r for r in rows if not r["drop_reason"]], columns=list(SHARD_COLUMNS))
    kept = kept.reindex(columns=list(OUTPUT_COLUMNS)).reset_index(drop=True)
    counts = {"requested": len(rows), "kept": len(kept), "dropped": drop_counts(rows),
              "duplicates": duplicates,
              "generated_tokens": int(frame["num_generated_tokens"].sum())}
    return kept, counts


def generate(cfg: ExperimentConfig, bias_type: str, seed: int, engine: str = "hf",
             on_shard=None) -> GeneratedSet:
    """Generate (or fetch from cache, or finish) the augmented set for one bias type and seed.

    `on_shard((start, stop))` is called after each shard is written (progress reporting)."""
    inputs = generation_key(cfg, bias_type, seed)
    key = key_hash(inputs)
    g = cfg.generation
    base = f"{cache_root(cfg).rstrip('/')}/{key}"
    uri = f"{base}/dedup-v{DEDUP_VERSION}-{g.near_duplicate_threshold:g}"
    fs, path = _fs(uri)
    if fs.get_file_info(f"{path}/{STATS_FILE}").type == pafs.FileType.File:
        with fs.open_input_stream(f"{path}/{STATS_FILE}") as f:
            return GeneratedSet(bias_type, uri, key, json.loads(f.read()), cache_hit=True,
                                work={"rows_generated": 0, "shards_generated": 0,
                                      "shards_reused": 0})

    shards_path = _fs(f"{base}/{SHARDS_DIR}")[1]
    fs.create_dir(shards_path, recursive=True)
    ranges = shard_ranges(g.samples_per_type, g.shard_size)
    done = finished_shards(fs, shards_path)
    missing = [r for r in ranges if r not in done]
    work = {"rows_generated": 0, "shards_generated": 0, "shards_reused": len(ranges) - len(missing)}
    if missing:
        work.update(_generate_shards(cfg, bias_type, seed, engine, key, missing, fs, shards_path,
                                     on_shard))
    frame, counts = _finalize(cfg, fs, shards_path, ranges)
    stats = {**counts, "engine": engine, "shards": len(ranges), "shard_size": g.shard_size,
             "near_duplicate_threshold": g.near_duplicate_threshold,
             "group_counts": _group_counts(frame), "inputs": inputs,
             "last_run": work}
    if work.get("tokens_per_second"):
        stats["tokens_per_second"] = work["tokens_per_second"]
    fs.create_dir(path, recursive=True)
    _write_atomically(fs, f"{path}/{DATA_FILE}", pa.Table.from_pandas(frame, preserve_index=False))
    # stats.json is written last: its presence marks a complete entry.
    with fs.open_output_stream(f"{path}/{STATS_FILE}") as f:
        f.write(json.dumps(stats, indent=1).encode())
    return GeneratedSet(bias_type, uri, key, stats, cache_hit=False, work=work)


def _group_counts(frame: pd.DataFrame) -> dict:
    if frame.empty:
        return {}
    counts = frame.groupby(["occupation", "group"]).size()
    return {f"{occ}|{group or 'unknown'}": int(n) for (occ, group), n in counts.items()}


if __name__ == "__main__":
    import ray
    from bias.config import load_config
    from bias.local_ray import start_local_ray
    config = load_config(sys.argv[1], sys.argv[2:])
    start_local_ray()
    for t in config.bias_types:
        result = generate(config, t, config.seeds[0],
                          pick_engine(config.generation.engine, ray.cluster_resources().get("GPU", 0)))
        print(t, result.uri, "cache hit" if result.cache_hit else "generated", result.stats["kept"],
              result.stats["dropped"])
