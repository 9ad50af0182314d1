"""Control sets: augmented data with a planted, known group → occupation skew, and its null twin.

A researcher validating the service needs a set whose effect is known: `control-skewed` labels
each bio with an occupation typed for the person's gender (bias.vocabulary.
OCCUPATION_GENDER_TYPING) with probability `control.skew`, and uniformly otherwise; the texts
themselves carry gender cues but no occupation signal (generic details only), so the label can
be learnt only through the gender cue. `control-null` is its twin: the same texts with the same
labels shuffled across rows, so the labels keep their mix but no longer depend on gender. A
service that measures inheritance must detect the first and not the second.

No model runs: the sets are written straight into the generation cache, in the same layout as
generated sets (data.parquet + stats.json), so the grid, MLflow logging and the report treat
them as two more bias types.

    python -m generation.control 8          # print 8 rows of each set
"""
from __future__ import annotations

import json
import random
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs

from bias.bios import N_TRAIN_TEMPLATES, TEMPLATES, render_bio
from bias.config import CONTROL_NULL, CONTROL_SKEWED, ExperimentConfig
from bias.vocabulary import (GENDERS, GENERIC_DETAILS, OCCUPATION_GENDER_TYPING, OCCUPATIONS,
                             names_for)

CONTROL_VERSION = 1   # bump when the rows written for the same inputs change


def control_frames(n: int, seed: int, skew: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(skewed, null twin): n gender-balanced generic bios each, the same texts in both."""
    rng = random.Random(f"control-{seed}")
    rows = []
    for i in range(n):
        gender = GENDERS[i % len(GENDERS)]
        name = rng.choice(names_for("english", gender)[0::2])   # the training half of the names
        details = {slot: rng.choice(pool) for slot, pool in GENERIC_DETAILS.items()}
        template = TEMPLATES[rng.randrange(N_TRAIN_TEMPLATES)]
        typed = [o for o in OCCUPATIONS if OCCUPATION_GENDER_TYPING[o] == gender]
        occupation = rng.choice(typed) if rng.random() < skew else rng.choice(OCCUPATIONS)
        rows.append({"text": render_bio(template, name, gender, "", details),
                     "occupation": occupation, "gender": gender, "group": gender,
                     "culture": "english", "name": name, "prompt_index": i})
    skewed = pd.DataFrame(rows)
    labels = skewed["occupation"].tolist()
    rng.shuffle(labels)
    return skewed, skewed.assign(occupation=labels)


def control_key(cfg: ExperimentConfig, seed: int) -> dict:
    return {"source": "control", "version": CONTROL_VERSION, "social_bias": cfg.social_bias,
            "skew": cfg.control.skew, "n": cfg.generation.samples_per_type, "seed": seed}


def write_control_sets(cfg: ExperimentConfig, seed: int) -> dict:
    """{(name, seed): GeneratedSet} for both control sets; written once, then cache hits."""
    from generation.pipeline import (DATA_FILE, OUTPUT_COLUMNS, STATS_FILE, GeneratedSet,
                                     _fs, _group_counts, _write_atomically, cache_root, key_hash)
    inputs = control_key(cfg, seed)
    key = key_hash(inputs)
    out = {}
    frames = None
    for name in (CONTROL_SKEWED, CONTROL_NULL):
        uri = f"{cache_root(cfg).rstrip('/')}/{key}/{name}"
        fs, path = _fs(uri)
        stats_path = f"{path}/{STATS_FILE}"
        if fs.get_file_info(stats_path).type == pafs.FileType.File:
            with fs.open_input_stream(stats_path) as f:
                out[(name, seed)] = GeneratedSet(name, uri, key, json.loads(f.read()), True)
            continue
        if frames is None:
            frames = dict(zip((CONTROL_SKEWED, CONTROL_NULL),
                              control_frames(cfg.generation.samples_per_type, seed,
                                             cfg.control.skew)))
        frame = frames[name].assign(
            social_bias=cfg.social_bias, bias_type=name, generator="control", engine="none",
            seed=seed, generation_key=key, source="augmented", prompt_id=f"{name}-{seed}",
            prompt_version="control", strength=cfg.control.skew)
        frame = frame.reindex(columns=list(OUTPUT_COLUMNS))
        stats = {"requested": len(frame), "kept": len(frame), "dropped": {}, "engine": "none",
                 "group_counts": _group_counts(frame), "inputs": {**inputs, "set": name}}
        fs.create_dir(path, recursive=True)
        _write_atomically(fs, f"{path}/{DATA_FILE}", pa.Table.from_pandas(frame, preserve_index=False))
        with fs.open_output_stream(stats_path) as f:   # last: marks the entry complete
            f.write(json.dumps(stats, indent=1).encode())
        out[(name, seed)] = GeneratedSet(name, uri, key, stats, cache_hit=False)
    return out


if __name__ == "__main__":
    skewed, null = control_frames(int(sys.argv[1]) if len(sys.argv) > 1 else 8, 0, 0.9)
    for (_, a), (_, b) in zip(skewed.iterrows(), null.iterrows()):
        print(f"[{a['gender']}] skewed={a['occupation']:<18} null={b['occupation']:<18} {a['text']}")
