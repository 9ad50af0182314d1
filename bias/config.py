"""Typed experiment config: one YAML file -> one validated `ExperimentConfig`, checked up front.

Unknown keys, bad ranges and unknown tasks / bias types / mitigations are rejected before any
Ray or model work starts. `key=value` overrides use dotted paths and YAML values:

    python -m bias.config configs/smoke.yaml generation.samples_per_type=8
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bias.errors import ConfigError  # noqa: F401  (re-exported: its old home)
from bias.taxonomy import parse_bias_type

# The planted-effect control sets (generation/control.py), run as two more bias types.
CONTROL_SKEWED = "control-skewed"
CONTROL_NULL = "control-null"
FILE_PREFIX = "file-"   # augmented_files run as bias types named file-<name>


def known_mitigations() -> tuple[str, ...]:
    """The mitigation modules in training/mitigations/, "none" first. Found by file name without
    importing them (nor training, beyond its package marker): a new mitigation is one module."""
    from bias import plugins
    spec = importlib.util.find_spec("training.mitigations")
    return plugins.module_names(spec.submodule_search_locations or [], first="none")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Strict):
    dir: str | None = Field(None, description="benchmark data dir; env BIAS_INHERIT_DATA_DIR wins")
    # offline: project-written bios (no network); hub: LabHC/bias_in_bios via datasets.
    original: Literal["offline", "hub"] = "offline"
    dataset_size: int = Field(64, ge=4, description="|D|, held fixed across ratios")
    test_size: int = Field(48, ge=6)


class GenerationConfig(Strict):
    model: str = "offline:smollm2-135m-instruct"
    engine: Literal["auto", "hf", "vllm"] = "auto"
    samples_per_type: int = Field(48, ge=1)
    # Strength of the bias instruction: 0 = a hint, 1 = a blunt instruction.
    strength: float = Field(1.0, ge=0.0, le=1.0)
    # v1: seed row -> bio prompt; v2 adds the row's persona and task format (generation/prompts.py).
    prompt_version: Literal["v1", "v2"] = "v2"
    max_new_tokens: int = Field(96, ge=8, le=4096)
    temperature: float = Field(0.8, ge=0.0, le=2.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    batch_size: int = Field(8, ge=1)
    # CPU engine: HF actors in the pool; each takes cpus_per_actor.
    actors: int = Field(1, ge=1)
    cpus_per_actor: float = Field(2.0, gt=0)
    # HF engine on GPU nodes: a GPU share per actor (0 = CPU actors).
    gpus_per_actor: float = Field(0.0, ge=0)
    # GPU engine (vLLM via ray.data.llm): up to `actors` replicas, each on tensor_parallel_size
    # GPUs, in a pool that grows as GPU nodes join (autoscaling clusters start with none);
    # engine_kwargs are passed to vLLM as they are.
    tensor_parallel_size: int = Field(1, ge=1)
    max_model_len: int = Field(4096, ge=256)
    continue_on_error: bool = Field(True, description="failed rows -> __inference_error__, dropped")
    engine_kwargs: dict[str, Any] = {}
    # Seed rows are generated and written in shards of this many rows: a killed run keeps its
    # finished shards and a rerun generates only the missing ones (keep shard_size unchanged
    # between the two: shards are matched by their row range). Not part of the cache key.
    shard_size: int = Field(256, ge=1)
    # Near-duplicates: kept rows whose estimated word-shingle Jaccard similarity to an earlier
    # kept row reaches this are dropped as `duplicate` (1.0 = exact duplicates only).
    near_duplicate_threshold: float = Field(0.8, gt=0.0, le=1.0)
    cache_dir: str | None = Field(None, description="defaults to <storage>/generations")
    # A LoRA adapter on top of `model` (multi-round: the previous round's fine-tuned model).
    adapter: str | None = None


class ModelConfig(Strict):
    name: str = "offline:smollm2-135m-instruct"
    # auto: bf16 where the device supports it (checked at start-up), else fp32.
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    # auto: eager on CPU (torch's CPU flash-SDPA is slower at our row lengths, for training and
    # scoring, and its backward is slower still inside Ray workers), SDPA on GPUs;
    # flash_attention_2 needs the flash-attn package. Figures: docs/performance.md.
    attention: Literal["auto", "eager", "sdpa", "flash_attention_2"] = "auto"
    # GPUs only. Off: SDPA skips cuDNN's kernels, which build a graph on the CPU for every new
    # sequence length, so length-bucketed training leaves the GPU waiting on the CPU.
    cudnn_attention: bool = False
    # GPUs only: training runs torch's fused rms_norm kernel in place of HF's eight-op RMSNorm
    # (one kernel instead of eight elementwise ops with an fp32 copy between them; one rounding
    # instead of two, closer to fp64).
    fused_rms_norm: bool = True

    @model_validator(mode="before")
    @classmethod
    def _drop_retired_keys(cls, data):
        # `packed_linears` (private oneDNN ops) was retired: it did not pay on the default bf16
        # path (docs/performance.md). Configs logged with it still load; the key does nothing.
        if isinstance(data, dict) and "packed_linears" in data:
            data = {k: v for k, v in data.items() if k != "packed_linears"}
        return data


class LoraConfigModel(Strict):
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    # 0 (torchtune's LoRA default): on CPU the dropout mask is a visible share of a step (torch's
    # CPU RNG is serial, one element at a time); on GPUs it is cheap, so paper configs keep 0.05.
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: list[str] = ["q_proj", "v_proj"]


class OptimConfig(Strict):
    lr: float = Field(2e-4, gt=0, le=1.0)
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(128, ge=16)
    weight_decay: float = Field(0.0, ge=0)
    # all: the LM loss covers the bio text too, so biased wording can be inherited by generation
    # tasks; completion: only the label tokens (classic SFT, weaker inheritance).
    train_on: Literal["all", "completion"] = "all"
    # Group rows of similar length into batches (sorted within windows of 50 batches, batch order
    # still shuffled): same per-example losses, far less padding (wider windows pad less); the
    # price is batches a little less random.
    length_bucketing: bool = True
    # torch.compile the decoder stack while training: faster per step once compiled, but
    # compiling takes minutes on a small CPU node, so it pays only after far more steps than a
    # smoke cell trains. Falls back to eager where the inductor toolchain (a C++ compiler) is
    # missing. Off on GPUs too: there the compiled 8B decoder trained slower than eager.
    compile: bool = False


class MitigationConfig(Strict):
    token_text: str = ("Note: the following text was generated by a language model and may "
                       "contain social biases or stereotypes.")
    # mask: "token" replaces cues by mask_token (no new signal); "neutral" by neutral words
    # (they, person, Alex), which keeps sentences fluent but can add its own associations.
    mask_mode: Literal["token", "neutral"] = "token"
    mask_token: str = "[MASK]"
    # loss: weight of the alignment term; too high and the LM loss stops falling.
    loss_lambda: float = Field(0.1, ge=0.0)


class EvaluationConfig(Strict):
    tasks: list[str] = ["occupation_classification", "salary_recommendation"]
    limit: int | None = Field(None, ge=2, description="items per task, stratified by group")
    # Per-task overrides of `limit`: a smoke grid can keep its headline tasks large and the rest small.
    task_limits: dict[str, int] = Field(default_factory=dict)
    batch_size: int = Field(16, ge=1)
    max_new_tokens: int = Field(12, ge=1)
    story_max_new_tokens: int = Field(64, ge=8, description="length of story_generation's stories")
    # Label-scored tasks that predict with contextual calibration (content-free inputs): an
    # uncalibrated small model can answer one label for everything, and the F1 gaps then show
    # the gold class mix. Leave a task out to score it raw.
    calibrate: list[str] = ["hate_speech", "toxigen"]
    # Who writes the continuations of the generation tasks (salary, story): hf scores them in the
    # trial, on the trial's worker; vllm scores every cell's adapter after the grid in one pass of
    # vLLM replicas (per-row LoRA), far faster on GPUs, at the price of an engine start-up.
    engine: Literal["hf", "vllm"] = "hf"
    # A task whose data is not found: `error` stops in pre-flight; `skip` leaves the task out
    # (named once on the console and tagged on the parent run) and runs the rest.
    missing_data: Literal["error", "skip"] = "error"

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, tasks: list[str]) -> list[str]:
        from evaluation.tasks import TASKS  # late: the registry imports task modules
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; known: {sorted(TASKS)}")
        if not tasks:
            raise ValueError("at least one task is needed")
        return tasks

    @model_validator(mode="after")
    def _limits_name_configured_tasks(self):
        stray = sorted(set(self.task_limits) - set(self.tasks))
        if stray:
            raise ValueError(f"task_limits names task(s) not in tasks: {stray}")
        small = {t: n for t, n in self.task_limits.items() if n < 2}
        if small:
            raise ValueError(f"task_limits must be >= 2 items: {small}")
        return self

    def calibrated(self, task: str) -> bool:
        return task in self.calibrate

    def limit_for(self, task: str) -> int | None:
        """Items to score for `task`: its own limit if set, else the shared one (None: all)."""
        return self.task_limits.get(task, self.limit)


class AnalysesConfig(Strict):
    # Distribution misalignment: embeddings of D_o vs each D_a, MMD permutation test, PCA plot.
    distribution: bool = True
    embedder: str = "offline:all-minilm-l6-v2"    # any HF encoder name on a cluster
    permutations: int = Field(500, ge=10)         # p-value resolution is 1/(permutations+1)
    max_texts: int = Field(1000, ge=10)           # per set; the kernel matrix is O(n²) memory
    # Value misalignment on GlobalOpinionQA: "hub", a local file in its schema, or "none".
    values_source: str = "none"
    values_limit: int | None = Field(200, ge=1)


class ResourcesConfig(Strict):
    workers_per_trial: int = Field(1, ge=1)
    cpus_per_worker: float = Field(1.0, gt=0)
    gpus_per_worker: float = Field(0.0, ge=0)
    # The Tune trial driver only builds a TorchTrainer and waits; a fraction of a CPU suffices
    # (Tune rejects 0).
    driver_cpus: float = Field(0.1, gt=0)
    # Custom resources for the trial driver, e.g. {trial_driver: 1} to pin drivers to CPU nodes
    # that advertise it (cluster/ files do), keeping them off GPU nodes.
    driver_resources: dict[str, float] = {}
    # Custom resources per Train worker, e.g. {accelerator_type:H100: 0.001}, or simulated GPUs.
    worker_resources: dict[str, float] = {}
    max_concurrent_trials: int | None = Field(None, ge=1,
                                              description="default: derived from the cluster")
    # Retries of a failed Train worker group and, separately, of a failed Tune trial.
    max_failures: int = Field(1, ge=0)
    # Adapter + optimizer state to storage after every epoch; a retried trial resumes from it.
    checkpoint_every_epoch: bool = True
    # Train workers' malloc: jemalloc (Ray's bundled copy, freed pages kept for reuse) spares each
    # step the fresh page faults glibc's mmap of every large buffer costs; the price is a worker
    # holding its peak heap. system: glibc's. See training/worker_env.py.
    worker_allocator: Literal["jemalloc", "system"] = "jemalloc"


class ThroughputConfig(Strict):
    """Figures `bias-inherit plan` turns into GPU-hours and wall time; measure them on your hardware."""
    # Generated tokens per second per GPU (vLLM) or per CPU actor (HF). The default is a
    # SmolLM2 bf16 CPU estimate (how it was measured: docs/performance.md); set your own.
    generation_tokens_per_second: float = Field(230.0, gt=0)
    # Trained tokens per second per Train worker. The default is a SmolLM2 LoRA bf16 estimate
    # for one small CPU Train worker with the default settings ((b) of
    # benchmarks/train_throughput.py; docs/performance.md); set your own.
    train_tokens_per_second: float = Field(400.0, gt=0)
    # Scoring the task suite once, per cell.
    eval_seconds_per_cell: float = Field(30.0, ge=0)
    # Per-trial start-up: process spawn, imports, model load, checkpoint upload.
    trial_overhead_seconds: float = Field(15.0, ge=0)
    # Per generation set: its engine replicas start (vLLM: weights, CUDA graphs, KV cache; HF:
    # model load). Sets run one after another, each starting its own replicas.
    engine_startup_seconds: float = Field(60.0, ge=0)
    # Once per experiment: the generator's weights reach the nodes (0: cached or offline).
    model_download_seconds: float = Field(0.0, ge=0)
    # Mean generated tokens per sample (default: generation.max_new_tokens, an upper bound).
    generated_tokens_per_sample: float | None = Field(None, gt=0)
    # Mean tokens per training example (default: optim.max_length, an upper bound).
    tokens_per_example: float | None = Field(None, gt=0)


class ControlConfig(Strict):
    """Control sets beside the generated ones: one with a planted gender → occupation skew, and
    its null twin (same texts, labels independent of gender). No model generates them."""
    enabled: bool = False
    # Share of the skewed set's rows labelled with an occupation typed for the row's gender (the
    # rest uniformly); 1/3 of them would land there by chance. Higher: a larger planted effect.
    skew: float = Field(0.9, ge=0.0, le=1.0)


class FileSourceConfig(Strict):
    """Augmented data made elsewhere (another model, a vendor, a human): a parquet, JSON-lines or
    CSV file on any pyarrow filesystem, or `hub:<dataset>[:<split>]`. It runs as the bias type
    `file-<name>`, so its inheritance is measured like a generated set's."""
    name: str = Field(..., pattern=r"^[a-z0-9_]+$")
    path: str
    text_column: str = "text"
    occupation_column: str = "occupation"
    # The group each row is about (gender for gender studies); blank when the file has none.
    group_column: str | None = "gender"


class TrackingConfig(Strict):
    uri: str | None = Field(None, description="default: env MLFLOW_TRACKING_URI, else sqlite")
    experiment: str | None = Field(None, description="default: the config's name")


class ExperimentConfig(Strict):
    name: str = Field(..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    social_bias: str = "gender"      # a spec module in bias/social_biases/ (gender, culture, age)
    bias_types: list[str] = Field(default_factory=list)
    ratios: list[float] = Field(..., min_length=1)
    mitigations: list[str] = ["none"]
    seeds: list[int] = [0]
    # Evaluate the untrained model once per experiment, as the reference row.
    evaluate_base_model: bool = True
    # Multi-round self-augmentation after the grid: round k's fine-tuned model generates the
    # neutral data of round k+1 (1 = off). Each round mixes at round_ratio (the paper: 0.5).
    rounds: int = Field(1, ge=1, le=20)
    round_ratio: float = Field(0.5, gt=0.0, lt=1.0)
    data: DataConfig = DataConfig()
    generation: GenerationConfig = GenerationConfig()
    model: ModelConfig = ModelConfig()
    lora: LoraConfigModel = LoraConfigModel()
    optim: OptimConfig = OptimConfig()
    mitigation: MitigationConfig = MitigationConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    analyses: AnalysesConfig = AnalysesConfig()
    resources: ResourcesConfig = ResourcesConfig()
    throughput: ThroughputConfig = ThroughputConfig()
    control: ControlConfig = ControlConfig()
    augmented_files: list[FileSourceConfig] = []
    tracking: TrackingConfig = TrackingConfig()
    storage_path: str = Field("ray_results", description="local dir or pyarrow URI (s3://...)")

    @field_validator("bias_types")
    @classmethod
    def _known_types(cls, types: list[str]) -> list[str]:
        for t in types:
            parse_bias_type(t)  # raises with the list of valid names
        if len(set(types)) != len(types):
            raise ValueError("bias_types has duplicates")
        return types

    @field_validator("ratios")
    @classmethod
    def _ratio_range(cls, ratios: list[float]) -> list[float]:
        bad = [r for r in ratios if not 0.0 <= r < 1.0]
        if bad:
            raise ValueError(f"bias ratio γ must be in [0, 1): got {bad}")
        if len(set(ratios)) != len(ratios):
            raise ValueError("ratios has duplicates")
        return sorted(ratios)

    @field_validator("social_bias")
    @classmethod
    def _known_social_bias(cls, social_bias: str) -> str:
        from bias import social_biases
        if social_bias not in social_biases.names():
            raise ValueError(f"unknown social bias {social_bias!r}; known: "
                             f"{list(social_biases.names())}")
        return social_bias

    @field_validator("mitigations")
    @classmethod
    def _known_mitigations(cls, mitigations: list[str]) -> list[str]:
        known = known_mitigations()
        unknown = [m for m in mitigations if m not in known]
        if unknown:
            raise ValueError(f"unknown mitigation(s) {unknown}; known: {list(known)}")
        return mitigations

    @model_validator(mode="after")
    def _sizes_fit(self) -> "ExperimentConfig":
        for r in self.ratios:
            n_aug = round(r * self.data.dataset_size)
            if n_aug > self.generation.samples_per_type:
                raise ValueError(
                    f"γ={r} needs {n_aug} augmented rows per type (|D|={self.data.dataset_size}) "
                    f"but generation.samples_per_type={self.generation.samples_per_type}; raise "
                    f"it (malformed generations are dropped, so leave a margin)")
        return self

    @model_validator(mode="after")
    def _has_augmented_sets(self) -> "ExperimentConfig":
        if not self.augmented_sets:
            raise ValueError("bias_types is empty and control.enabled is false: nothing to "
                             "augment with")
        if self.control.enabled and self.social_bias != "gender":
            raise ValueError("control sets plant a gender → occupation skew; they need "
                             "social_bias: gender")
        return self

    @property
    def augmented_sets(self) -> list[str]:
        """Every augmented set the grid trains on: the bias types, then the control sets."""
        return (self.bias_types + [f"{FILE_PREFIX}{f.name}" for f in self.augmented_files]
                + ([CONTROL_SKEWED, CONTROL_NULL] if self.control.enabled else []))

    def file_source(self, set_name: str) -> FileSourceConfig | None:
        return next((f for f in self.augmented_files if f"{FILE_PREFIX}{f.name}" == set_name), None)

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    def digest(self) -> str:
        """Stable hash of the whole config, for tags and run names."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        _set_dotted(raw, key.strip(), yaml.safe_load(value))
    return raw


def format_validation_error(path: str, err: ValidationError) -> str:
    lines = [f"invalid config {path}:"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  - {where}: {msg}")
    return "\n".join(lines)


def load_config(path: str | os.PathLike, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read, override and validate; every failure is a `ConfigError` with a readable message."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise ConfigError(f"config {path} is not a text file (binary or not UTF-8); give the "
                          f"experiment's YAML file, e.g. configs/smoke.yaml")
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"config {path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path} must be a mapping of keys, not {type(raw).__name__}")
    raw = apply_overrides(raw, overrides or [])
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(path, e)) from None


if __name__ == "__main__":
    try:
        cfg = load_config(sys.argv[1], sys.argv[2:])
    except ConfigError as e:
        sys.exit(str(e))
    print(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
