"""The LoRA fine-tuning loop that runs in each Ray Train worker, then scores the model.

Linear recipe: setup (threads, model, mix) -> train (epochs of LoRA steps, DDP across workers)
-> evaluate (rank 0, the task suite on the adapter-wrapped model, no merge) -> report (metrics
plus the adapter as a Train checkpoint). A `base` cell skips training: it scores the untrained
model, the experiment's reference row.
"""
from __future__ import annotations

import os
import tempfile
import time
import warnings
from contextlib import contextmanager, nullcontext

import pandas as pd
import torch

from bias.config import ExperimentConfig
from bias.errors import USER_ERROR_KEY
from bias.formats import occupation_prompt, occupation_target
from bias.models import (fused_rms_norms, load_causal_lm, load_tokenizer, pick_dtype,
                         resolve_model, sdpa_backends)
from bias.original_data import load_original
from generation.pipeline import read_generated
from training.adapter_models import save_adapter_model
from training.alignment import alignment_term
from training.batching import shard_batch, source_stratified_batches
from training.checkpointing import EpochCheckpointer, write_state
from training.grid import Cell
from training.mitigations import alignment_weight, apply_mitigation
from training.mixing import mix
from training.token_loss import causal_lm_loss
from training.worker_env import active_allocator, release_single_worker_process_group


def build_training_frame(cfg: ExperimentConfig, cell: Cell,
                         augmented: pd.DataFrame | None) -> tuple[pd.DataFrame, dict[str, float]]:
    """D_o mixed with the cell's D_a at γ, mitigation applied to the augmented rows."""
    original = load_original(cfg.data.original, "train", cfg.data.dataset_size, seed=cell.seed)
    mixed = mix(original, augmented, cell.ratio, cfg.data.dataset_size, seed=cell.seed,
                allow_shortfall=cell.round > 0)
    return apply_mitigation(mixed, cell.mitigation, cfg.mitigation)


def tokenize_examples(frame: pd.DataFrame, tokenizer, max_length: int, train_on: str) -> list[dict]:
    """input_ids + labels per row; labels are -100 where no loss is taken."""
    examples = []
    sources = frame["source"] if "source" in frame else ["original"] * len(frame)
    for text, occupation, source in zip(frame["text"], frame["occupation"], sources):
        prompt = tokenizer(occupation_prompt(text), add_special_tokens=False)["input_ids"]
        target = tokenizer(occupation_target(occupation), add_special_tokens=False)["input_ids"]
        target = target + [tokenizer.eos_token_id]
        prompt = prompt[: max(1, max_length - len(target))]   # keep the label, trim the bio
        ids = prompt + target
        labels = ids.copy() if train_on == "all" else [-100] * len(prompt) + target
        examples.append({"input_ids": ids, "labels": labels, "augmented": source == "augmented"})
    return examples


def collate(batch: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(e["input_ids"]) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, e in enumerate(batch):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        mask[i, :n] = 1
    augmented = torch.tensor([bool(e.get("augmented", False)) for e in batch])
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "augmented": augmented}


def lora_wrap(model, cfg: ExperimentConfig):
    from peft import LoraConfig, get_peft_model
    return get_peft_model(model, LoraConfig(
        r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM"))


@contextmanager
def decoder_compiled(model):
    """Within the block, the model's decoder stack (embeddings, layers, final norm) runs under
    torch.compile; yields whether it does. The vocabulary projection and the loss stay eager, so
    the loss's data-dependent row selection (training/token_loss.py) runs before the projection
    without breaking the graph, and scoring after training runs the eager model again.

    Compiling the decoder alone beat compiling the whole model, which must project every
    position and pick the rows after (figures: docs/performance.md). The rotary embedding
    stays eager inside it (below)."""
    from bias.models import compile_available
    if not compile_available():
        warnings.warn("optim.compile is on but torch.compile cannot run here (no C++ compiler "
                      "for inductor?): training eager", stacklevel=3)
        yield False
        return
    decoder = getattr(model, "module", model).get_base_model().get_decoder()   # DDP, peft
    # The bound forward, compiled in place: parameter names (and so the adapter's checkpoint
    # keys) stay as they are, unlike a wrapping OptimizedModule. Widths vary per batch: dynamic.
    decoder.forward = torch.compile(decoder.forward, dynamic=True)
    # The rotary embedding's cos/sin run eagerly, once per step, and enter the compiled layers as
    # inputs. Traced, inductor treats them as cheap pointwise ops and recomputes sin/cos inside
    # every kernel that applies them (q and k, every layer, forward and backward), more work
    # than computing them once eagerly (profiled; figures in docs/performance.md).
    # The break also leaves the causal mask to the first graph: the softmax kernel reads it
    # instead of rebuilding it.
    rotary = getattr(decoder, "rotary_emb", None)
    if rotary is not None:
        rotary.forward = torch.compiler.disable(
            rotary.forward, reason="rotary cos/sin: once per step, not in every kernel")
    try:
        yield True
    finally:
        del decoder.forward   # back to the class's eager forward
        if rotary is not None:
            del rotary.forward


def train_step_loss(model, batch: dict[str, torch.Tensor], align_lambda: float,
                    distributed: bool) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(total loss, LM loss, alignment term) for one batch; alignment only when λ > 0."""
    if not align_lambda:
        lm_loss, _ = causal_lm_loss(model, batch)
        return lm_loss, lm_loss, 0.0
    lm_loss, out = causal_lm_loss(model, batch, output_hidden_states=True)
    align = alignment_term(out.hidden_states[-1], batch["attention_mask"], batch["augmented"],
                           distributed=distributed)
    return lm_loss + align_lambda * align, lm_loss, float(align.detach())


def train_epochs(model, examples: list[dict], cfg: ExperimentConfig, seed: int, rank: int,
                 world: int, pad_id: int, device, on_epoch=None,
                 align_lambda: float = 0.0,
                 checkpointer: EpochCheckpointer | None = None) -> dict[str, float]:
    """AdamW over source-stratified global batches (optim.batch_size rows, split across the
    workers); returns throughput figures. With a checkpointer, optimizer and RNG state come from
    its checkpoint and finished epochs are skipped."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    start_epoch = checkpointer.attach(optimizer) if checkpointer else 0
    sources = ["augmented" if e["augmented"] else "original" for e in examples]
    lengths = [len(e["input_ids"]) for e in examples] if cfg.optim.length_bucketing else None
    tokens = 0
    slots = 0   # batch rows x padded width: tokens / slots = 1 - padding fraction
    step_seconds = 0.0
    first_step_seconds = None   # includes torch.compile's compilation when it is on
    # The frozen base weights' dtype (a model with no frozen weights trains as it is: no autocast).
    base_dtype = next((p.dtype for p in model.parameters() if not p.requires_grad), None)
    model.train()
    with (decoder_compiled(model) if cfg.optim.compile else nullcontext(False) as compiled,
          sdpa_backends(device, cfg.model.cudnn_attention),
          fused_rms_norms(model, device, cfg.model.fused_rms_norm) as fused_norms):
        # peft keeps the adapters in fp32 (AdamW's ~1e-4 updates would vanish in bf16) and
        # upcasts each LoRA input to fp32 for them; under bf16 autocast their matmuls run in bf16
        # off the fp32 weights (mixed precision), and the fp32 weights still take the updates.
        # That pays eager; compiled it pays where bf16 matmuls are fast, since the fp32 LoRA
        # matmuls and their casts then become a larger share of the step, and it costs little
        # elsewhere. So it is on in both (figures: docs/performance.md).
        autocast_bf16 = base_dtype == torch.bfloat16
        for epoch in range(start_epoch, cfg.optim.epochs):
            # Same batches on every worker (seeded), so all take the same number of DDP steps.
            batches = source_stratified_batches(sources, cfg.optim.batch_size, seed, epoch, lengths)
            losses, aligns = [], []
            for global_batch in batches:
                local = shard_batch(global_batch, sources, rank, world)
                rows = collate([examples[i] for i in local], pad_id)
                batch = {k: v.to(device) for k, v in rows.items()}
                started = time.perf_counter()
                with torch.autocast(device.type, torch.bfloat16, enabled=autocast_bf16):
                    loss, lm_loss, align = train_step_loss(model, batch, align_lambda, world > 1)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step_seconds += time.perf_counter() - started
                if first_step_seconds is None:
                    first_step_seconds = time.perf_counter() - started
                tokens += int(batch["attention_mask"].sum())
                slots += batch["attention_mask"].numel()
                losses.append(lm_loss.item())
                aligns.append(align)
            if on_epoch:
                on_epoch(epoch, sum(losses) / len(losses), sum(aligns) / len(aligns))
    return {"train_tokens": tokens, "train_step_seconds": step_seconds,
            "train_first_step_seconds": first_step_seconds or 0.0,
            "train_compiled": float(compiled), "train_autocast_bf16": float(autocast_bf16),
            "train_fused_rms_norms": float(fused_norms),
            "padding_fraction": 1 - tokens / slots if slots else 0.0,
            "train_tokens_per_second": tokens / step_seconds if step_seconds else 0.0}




def user_error_types() -> tuple[type[BaseException], ...]:
    """Errors of the user's making (a bad value, missing or unreadable data, an unknown model):
    retrying them redoes the work and fails again, unlike a dead worker or a lost node."""
    from bias.errors import WORKER_USER_ERRORS
    return WORKER_USER_ERRORS


def train_loop_per_worker(loop_config: dict) -> None:
    """One cell on one Train worker. A user error is reported (message and traceback), not
    raised: Train and Tune retry raised errors, which only pays for infrastructure faults."""
    import traceback

    import ray.train
    try:
        train_and_evaluate(loop_config)
    except user_error_types() as e:
        ray.train.report({USER_ERROR_KEY: f"{type(e).__name__}: {e}",
                          "user_error_traceback": traceback.format_exc()[-20000:]})


def train_and_evaluate(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    from evaluation.runner import evaluate_suite, load_suite

    started = time.perf_counter()
    cfg = ExperimentConfig.model_validate(loop_config["experiment"])
    cell = Cell.model_validate(loop_config["cell"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    group_released = release_single_worker_process_group(world)
    torch.set_num_threads(loop_config["threads"])
    os.environ["OMP_NUM_THREADS"] = str(loop_config["threads"])
    device = ray.train.torch.get_device()
    dtype = pick_dtype(cfg.model.dtype, device.type)
    torch.manual_seed(cell.seed)

    if cfg.data.dir:   # the driver's pre-flight resolved it: read the data it checked
        os.environ["BIAS_INHERIT_DATA_DIR"] = cfg.data.dir
    # Evaluation data first, on every rank: a missing or unreadable dataset fails before any
    # training, on all workers alike (no rank is left waiting in a collective).
    eval_items = load_suite(cfg)
    tokenizer = load_tokenizer(cfg.model.name, padding_side="right")
    model = load_causal_lm(cfg.model.name, dtype, device, cfg.model.attention)
    metrics: dict[str, float] = {"dtype_bf16": float(dtype == torch.bfloat16),
                                 "world_size": float(world),
                                 "worker_jemalloc": float(active_allocator() == "jemalloc"),
                                 "worker_process_group": float(not group_released)}
    if cell.trains:
        uri = loop_config.get("augmented_uri")
        augmented = read_generated(uri) if uri else None
        frame, mitigation_stats = build_training_frame(cfg, cell, augmented)
        metrics.update(mitigation_stats)
        examples = tokenize_examples(frame, tokenizer, cfg.optim.max_length, cfg.optim.train_on)
        model = lora_wrap(model, cfg)
        # Adapter, optimizer and RNG from the run's latest checkpoint (a retried or resumed trial).
        checkpointer = EpochCheckpointer(model, rank, cfg.resources.checkpoint_every_epoch)
        checkpointer.replay_reports()   # epochs MLflow may have missed when the run was cut short
        model = ray.train.torch.prepare_model(model) if world > 1 else model

        align_lambda = alignment_weight(cell.mitigation, cfg.mitigation)

        def on_epoch(epoch: int, loss: float, align: float) -> None:
            report = {"epoch": epoch, "train_loss": loss}
            if align_lambda:
                report["train_alignment_loss"] = align   # the loss mitigation's own term
            checkpointer.report_epoch(epoch, report)

        train_started = time.perf_counter()
        metrics.update(train_epochs(model, examples, cfg, cell.seed, rank, world,
                                    tokenizer.pad_token_id, device, on_epoch, align_lambda,
                                    checkpointer))
        metrics["train_seconds"] = time.perf_counter() - train_started
        metrics.update(checkpointer.metrics())
        metrics["n_augmented_rows"] = float((frame["source"] == "augmented").sum())
        metrics["n_original_rows"] = float((frame["source"] == "original").sum())
        model = getattr(model, "module", model)  # unwrap DDP for scoring and saving
    else:
        model.requires_grad_(False)   # scored only

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if rank == 0:
            eval_started = time.perf_counter()
            metrics.update(evaluate_suite(model, tokenizer, cfg, eval_items))
            metrics["eval_seconds"] = time.perf_counter() - eval_started
            if cell.trains:
                model.save_pretrained(tmp)   # the LoRA adapter only (a few MB), not the base
                save_adapter_model(model, tokenizer, resolve_model(cfg.model.name), tmp)
                # A restart after this point only evaluates (and replays the epoch reports).
                write_state(tmp, cfg.optim.epochs, checkpointer.epoch_reports)
                checkpoint = Checkpoint.from_directory(tmp)
        metrics["worker_seconds"] = time.perf_counter() - started
        ray.train.report({**metrics, "worker_node_id": ray.get_runtime_context().get_node_id()},
                         checkpoint=checkpoint)
