"""Augmented data from a file or a hub dataset, measured like a generated set.

Researchers often hold synthetic data made elsewhere (a proprietary model, an earlier pipeline).
`augmented_files` in a config names such files; each is read once, checked (a text and an
occupation column, occupations among the study's six), and copied into the generation cache in
the generated sets' layout (data.parquet + stats.json, keyed by the file's content digest), so
the grid, MLflow logging and the report treat it as the bias type `file-<name>`. Rows whose
occupation is not one of the six are dropped and counted, never fatal.

    python -m generation.file_source PATH      # check a file and print what would be kept
"""
from __future__ import annotations

import hashlib
import json
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.json as pajson
import pyarrow.parquet as pq

from bias.config import FileSourceConfig
from bias.paths import MissingDataError
from bias.vocabulary import OCCUPATIONS


def read_source(source: FileSourceConfig) -> pd.DataFrame:
    """The file's rows as a frame; a readable error when it is missing or unreadable."""
    path = source.path
    if path.startswith("hub:"):
        import datasets
        name, _, split = path.removeprefix("hub:").partition(":")
        try:
            return datasets.load_dataset(name, split=split or "train").to_pandas()
        except Exception as e:   # noqa: BLE001 - any hub failure is the user's to fix
            raise MissingDataError(f"augmented_files {source.name!r}: cannot load hub dataset "
                                   f"{name!r}: {str(e).splitlines()[0]}") from None
    uri = path if "://" in path else "file://" + str(__import__("os").path.abspath(path))
    try:
        fs, local = pafs.FileSystem.from_uri(uri)
        with fs.open_input_file(local) as f:
            if path.endswith(".parquet"):
                return pq.read_table(f).to_pandas()
            if path.endswith((".jsonl", ".json")):
                return pajson.read_json(f).to_pandas()
            if path.endswith(".csv"):
                return pacsv.read_csv(f).to_pandas()
    except (OSError, pa.ArrowInvalid) as e:
        raise MissingDataError(f"augmented_files {source.name!r}: cannot read {path}: "
                               f"{str(e).splitlines()[0]}") from None
    raise MissingDataError(f"augmented_files {source.name!r}: {path} is not .parquet, .jsonl or "
                           f".csv (or hub:<dataset>[:<split>])")


def normalise(frame: pd.DataFrame, source: FileSourceConfig) -> tuple[pd.DataFrame, int]:
    """(rows with text, occupation, group, gender, source columns; rows dropped for an unknown
    occupation or an empty text)."""
    missing = [c for c in (source.text_column, source.occupation_column,
                           source.group_column) if c and c not in frame.columns]
    if missing:
        raise MissingDataError(f"augmented_files {source.name!r}: column(s) {missing} not in "
                               f"{source.path} (it has {sorted(frame.columns)[:12]}); set "
                               f"text_column / occupation_column / group_column")
    out = pd.DataFrame({
        "text": frame[source.text_column].astype(str).str.strip(),
        "occupation": frame[source.occupation_column].astype(str).str.strip().str.lower()
        .str.replace("_", " "),
        "group": (frame[source.group_column].astype(str).str.lower() if source.group_column
                  else ""),
    })
    out["gender"] = out["group"]
    keep = out["occupation"].isin(OCCUPATIONS) & (out["text"] != "")
    return out[keep].reset_index(drop=True), int((~keep).sum())


def write_file_set(cfg, set_name: str, seed: int):
    """{(set_name, seed): GeneratedSet} for a configured file; cached by content digest."""
    from generation.pipeline import (DATA_FILE, OUTPUT_COLUMNS, STATS_FILE, GeneratedSet,
                                     _fs, _group_counts, _write_atomically, cache_root, key_hash)
    source = cfg.file_source(set_name)
    frame, dropped = normalise(read_source(source), source)
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes()).hexdigest()[:16]
    inputs = {"source": "file", "path": source.path, "digest": digest}
    key = key_hash(inputs)
    uri = f"{cache_root(cfg).rstrip('/')}/{key}/file"
    fs, path = _fs(uri)
    stats_path = f"{path}/{STATS_FILE}"
    if fs.get_file_info(stats_path).type == pafs.FileType.File:
        with fs.open_input_stream(stats_path) as f:
            return {(set_name, seed): GeneratedSet(set_name, uri, key, json.loads(f.read()), True)}
    frame = frame.assign(social_bias=cfg.social_bias, bias_type=set_name, generator=source.path,
                         engine="file", seed=seed, generation_key=key, source="augmented",
                         prompt_index=range(len(frame)))
    frame = frame.reindex(columns=list(OUTPUT_COLUMNS))
    stats = {"requested": len(frame) + dropped, "kept": len(frame),
             "dropped": {"unknown_occupation_or_empty": dropped} if dropped else {},
             "engine": "file", "group_counts": _group_counts(frame), "inputs": inputs}
    fs.create_dir(path, recursive=True)
    _write_atomically(fs, f"{path}/{DATA_FILE}", pa.Table.from_pandas(frame, preserve_index=False))
    with fs.open_output_stream(stats_path) as f:   # last: marks the entry complete
        f.write(json.dumps(stats, indent=1).encode())
    return {(set_name, seed): GeneratedSet(set_name, uri, key, stats, cache_hit=False)}


if __name__ == "__main__":
    src = FileSourceConfig(name="check", path=sys.argv[1])
    rows, n_dropped = normalise(read_source(src), src)
    print(f"{len(rows)} rows kept, {n_dropped} dropped")
    print(rows.head(8).to_string())
