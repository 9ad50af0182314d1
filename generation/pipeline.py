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


@dataclass
class _SetWork:
    """One set's part of an engine pass: its missing shards and the rows already back."""
    bias_type: str
    seed: int
    key: str
    inputs: dict
    uri: str
    base: str
    fs: pafs.FileSystem
    shards_path: str
    ranges: list[tuple[int, int]]
    missing: list[tuple[int, int]]
    shared: dict
    pending: dict = field(default_factory=dict)
    shard_of: dict = field(default_factory=dict)
    rows_done: int = 0
    tokens: int = 0
    written: int = 0
    engine_run: dict = field(default_factory=dict)   # the figures of the pass it went through


def _engine_pass(cfg: ExperimentConfig, works: list[_SetWork], engine: str, on_shard=None) -> dict:
    """Run one engine pass over the seed rows of every set's missing shards; write each shard
    when complete. Rows carry their set's index through the engine (both engines pass extra
    columns through), so one pool of replicas serves every set."""
    import ray.data
    g = cfg.generation
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False           # one summary line per set, not a log every 10 s
    context.execution_options.verbose_progress = False
    seeds = []
    for index, work in enumerate(works):
        all_seeds = make_seed_rows(cfg.social_bias, work.bias_type, g.samples_per_type, work.seed)
        seeds += [{**row, "set_index": index}
                  for start, stop in work.missing for row in all_seeds[start:stop]]
        work.shard_of = {i: (start, stop) for start, stop in work.missing
                         for i in range(start, stop)}
        work.pending = {r: [] for r in work.missing}
    bias_types = [w.bias_type for w in works]

    def prepare(row: dict) -> dict:
        return preprocess(row, social_bias=cfg.social_bias, bias_type=bias_types[row["set_index"]],
                          strength=g.strength, prompt_version=g.prompt_version,
                          temperature=g.temperature, top_p=g.top_p, max_new_tokens=g.max_new_tokens)

    def parse(row: dict) -> dict:
        neutral = parse_bias_type(bias_types[int(row["set_index"])]).is_neutral
        return postprocess(row, social_bias=cfg.social_bias, neutral=neutral)

    # Blocks of a whole engine batch: with one-row blocks the actor pool starts on whatever
    # trickles in and generates batches of 1, losing all the batching gains.
    ds = ray.data.from_items(seeds, override_num_blocks=max(1, -(-len(seeds) // g.batch_size)))
    # Pre/post-processing is string work: a quarter CPU each, so it never waits on the
    # engine actors for a whole core (on a 2-core machine that deadlocks the pipeline).
    ds = _run_engine(ds.map(prepare, num_cpus=0.25), cfg, engine).map(parse, num_cpus=0.25)
    started = time.perf_counter()
    for row in ds.iter_rows():   # streaming: shards are written while the engine keeps going
        work = works[int(row["set_index"])]
        shard = work.shard_of[int(row["prompt_index"])]
        work.pending[shard].append(row)
        work.rows_done += 1
        work.tokens += int(row.get("num_generated_tokens") or 0)
        if len(work.pending[shard]) == shard[1] - shard[0]:
            _write_atomically(work.fs, f"{work.shards_path}/{shard_name(*shard)}",
                              _shard_table(work.pending.pop(shard), work.shared))
            work.written += 1
            if on_shard:
                on_shard(work.bias_type, work.seed, shard)
    unfinished = {f"{w.bias_type} seed {w.seed}": sorted(w.pending) for w in works if w.pending}
    if unfinished:
        raise RuntimeError(f"the engine returned no rows for shards {unfinished}; rerun to "
                           f"generate them (finished shards are kept)")
    seconds = time.perf_counter() - started
    tokens = sum(w.tokens for w in works)
    return {"seconds": round(seconds, 2), "sets_in_pass": len(works),
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


def _plan_set(cfg: ExperimentConfig, bias_type: str, seed: int, engine: str
              ) -> GeneratedSet | _SetWork:
    """A cached set as it is, or the work that makes it (its shards so far kept)."""
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
    return _SetWork(bias_type, seed, key, inputs, uri, base, fs, shards_path, ranges,
                    [r for r in ranges if r not in done],
                    _provenance(cfg, bias_type, seed, engine, key))


def _finish_set(cfg: ExperimentConfig, work: _SetWork, engine: str) -> GeneratedSet:
    g = cfg.generation
    done = {"rows_generated": work.rows_done, "shards_generated": work.written,
            "shards_reused": len(work.ranges) - len(work.missing)}
    if work.missing:
        done.update(generated_tokens=work.tokens, **work.engine_run)
    frame, counts = _finalize(cfg, work.fs, work.shards_path, work.ranges)
    stats = {**counts, "engine": engine, "shards": len(work.ranges), "shard_size": g.shard_size,
             "near_duplicate_threshold": g.near_duplicate_threshold,
             "group_counts": _group_counts(frame), "inputs": work.inputs,
             "last_run": done}
    if done.get("tokens_per_second"):
        stats["tokens_per_second"] = done["tokens_per_second"]
    path = _fs(work.uri)[1]
    work.fs.create_dir(path, recursive=True)
    _write_atomically(work.fs, f"{path}/{DATA_FILE}", pa.Table.from_pandas(frame, preserve_index=False))
    # stats.json is written last: its presence marks a complete entry.
    with work.fs.open_output_stream(f"{path}/{STATS_FILE}") as f:
        f.write(json.dumps(stats, indent=1).encode())
    return GeneratedSet(work.bias_type, work.uri, work.key, stats, cache_hit=False, work=done)


def generate_many(cfg: ExperimentConfig, jobs: list[tuple[str, int]], engine: str = "hf",
                  on_shard=None) -> dict[tuple[str, int], GeneratedSet]:
    """Generate (or fetch from cache, or finish) the augmented set of each (bias type, seed).

    vLLM: every set's missing rows go through one pass, so one pool of replicas starts once for
    the experiment (its rows are seeded one by one, so a set's text does not depend on which sets
    shared its batches). HF: one pass per set, as its sampling is seeded per batch and its actors
    start in seconds. `on_shard(bias_type, seed, (start, stop))` follows each shard written."""
    planned = {job: _plan_set(cfg, *job, engine) for job in dict.fromkeys(jobs)}
    works = [w for w in planned.values() if isinstance(w, _SetWork) and w.missing]
    passes = [works] if engine == "vllm" else [[w] for w in works]
    for group in (p for p in passes if p):
        run = _engine_pass(cfg, group, engine, on_shard)
        for work in group:
            work.engine_run = run
    return {job: p if isinstance(p, GeneratedSet) else _finish_set(cfg, p, engine)
            for job, p in planned.items()}


def generate(cfg: ExperimentConfig, bias_type: str, seed: int, engine: str = "hf",
             on_shard=None) -> GeneratedSet:
    """One set (`generate_many` for several); `on_shard((start, stop))` after each shard."""
    forward = (lambda _type, _seed, shard: on_shard(shard)) if on_shard else None
    return generate_many(cfg, [(bias_type, seed)], engine, forward)[(bias_type, seed)]


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
