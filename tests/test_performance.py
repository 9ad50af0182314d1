"""Performance levers keep results exact, and the benchmarks produce every figure (--quick)."""
from __future__ import annotations

import math
import sys

import pytest
import torch

from tests.conftest import REPO


def test_bucketed_batches_give_the_same_loss_as_padded_batches(tiny_model):
    from bias.config import ExperimentConfig
    from bias.models import load_causal_lm, load_tokenizer
    from training.lora_loop import collate, lora_wrap
    cfg = ExperimentConfig(name="t", bias_types=["neutral"], ratios=[0.0])
    model = lora_wrap(load_causal_lm(tiny_model, torch.float32), cfg).eval()
    tok = load_tokenizer(tiny_model, padding_side="right")
    texts = ["Emma works at a clinic.", ("James designs libraries and restores historic facades "
                                         "in the old town, where he has lived for a decade."),
             "Wei paints."]
    examples = [{"input_ids": tok(t)["input_ids"], "labels": tok(t)["input_ids"]} for t in texts]
    dynamic = collate(examples, tok.pad_token_id)
    dynamic.pop("augmented")
    # the same rows padded to a fixed 64 tokens, as a plain pad-to-max loop does
    width = 64
    fixed = {k: torch.nn.functional.pad(v, (0, width - v.shape[1]),
                                        value={"input_ids": tok.pad_token_id, "labels": -100,
                                               "attention_mask": 0}[k])
             for k, v in dynamic.items()}
    with torch.no_grad():
        assert abs(model(**dynamic).loss.item() - model(**fixed).loss.item()) < 1e-4
        # a length-bucketed regrouping keeps every example's own loss
        per_example = [model(**{k: v[i:i + 1] for k, v in dynamic.items()}).loss.item()
                       for i in range(3)]
        alone = [model(**{k: v for k, v in collate([e], tok.pad_token_id).items()
                         if k != "augmented"}).loss.item() for e in examples]
    assert all(abs(a - b) < 1e-4 for a, b in zip(per_example, alone))


def test_target_only_loss_matches_the_models_own_loss_and_gradient(tiny_model):
    """training.token_loss projects only positions with a target and computes the gradient in
    the forward pass: same mean loss and LoRA gradients as HF's `labels=` loss (fp32), with
    padding and prompt tokens (-100) in the batch, and a zero that backpropagates when a batch
    has no target at all. It drops a right-padding mask and keeps a left-padding one."""
    from bias.config import ExperimentConfig
    from bias.models import load_causal_lm, load_tokenizer
    from training.lora_loop import collate, lora_wrap
    from training.token_loss import causal_lm_loss, right_padded
    cfg = ExperimentConfig(name="t", bias_types=["neutral"], ratios=[0.0])
    torch.manual_seed(0)
    model = lora_wrap(load_causal_lm(tiny_model, torch.float32), cfg)
    for p in model.parameters():   # LoRA B starts at zero: make every adapter weight matter
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.02)
    tok = load_tokenizer(tiny_model, padding_side="right")
    texts = ["Emma works at a clinic.", "James restores historic facades in the old town.", "Wei"]
    examples = []
    for i, text in enumerate(texts):
        ids = tok(text)["input_ids"]
        labels = ids if i != 1 else [-100] * 4 + ids[4:]   # a prompt part without loss
        examples.append({"input_ids": ids, "labels": labels})
    batch = collate(examples, tok.pad_token_id)
    trainable = [p for p in model.parameters() if p.requires_grad]

    def loss_and_grads(loss_fn):
        model.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        return loss.item(), [p.grad.clone() for p in trainable]

    theirs, their_grads = loss_and_grads(lambda: model(**{k: v for k, v in batch.items()
                                                         if k != "augmented"}).loss)
    ours, our_grads = loss_and_grads(lambda: causal_lm_loss(model, batch)[0])
    assert math.isfinite(ours) and abs(ours - theirs) < 1e-4
    assert max((a - b).abs().max().item() for a, b in zip(their_grads, our_grads)) < 1e-5
    assert max(g.abs().max().item() for g in our_grads) > 1e-4   # the comparison is not 0 == 0

    nothing = {**batch, "labels": torch.full_like(batch["labels"], -100)}
    empty, empty_grads = loss_and_grads(lambda: causal_lm_loss(model, nothing)[0])
    assert empty == 0.0 and all(not g.any() for g in empty_grads)

    # The loss drops a right-padding mask (nothing it reads depends on it: checked above against
    # HF's masked loss) but must keep a left-padding one, which real tokens would otherwise miss.
    assert right_padded(batch["attention_mask"])
    width = batch["input_ids"].shape[1]
    left = {k: torch.stack([row.roll(width - int(n)) for row, n in
                            zip(batch[k], batch["attention_mask"].sum(1))])
            for k in ("input_ids", "labels", "attention_mask")}
    assert not right_padded(left["attention_mask"])
    hf_left, _ = loss_and_grads(lambda: model(**left).loss)
    hf_left_unmasked, _ = loss_and_grads(
        lambda: model(**{k: v for k, v in left.items() if k != "attention_mask"}).loss)
    ours_left, _ = loss_and_grads(lambda: causal_lm_loss(model, left)[0])
    assert abs(ours_left - hf_left) < 1e-4
    assert abs(hf_left_unmasked - hf_left) > 1e-3   # the mask matters there: the check can fail


def test_bucketing_cuts_padding_and_keeps_rows_and_proportions():
    import random

    from training.batching import source_stratified_batches
    rng = random.Random(0)
    lengths = [rng.randint(30, 90) for _ in range(64)]
    sources = ["augmented"] * 13 + ["original"] * 51

    def padding(batches):
        slots = sum(len(b) * max(lengths[i] for i in b) for b in batches)
        return 1 - sum(lengths) / slots

    plain = source_stratified_batches(sources, 8, 0, 0)
    bucketed = source_stratified_batches(sources, 8, 0, 0, lengths)
    assert sorted(i for b in bucketed for i in b) == list(range(64))
    assert [len(b) for b in bucketed] == [8] * 8
    assert all(1 <= sum(sources[i] == "augmented" for i in b) <= 2 for b in bucketed)
    assert padding(bucketed) < padding(plain) / 2


def test_attention_auto_is_eager_on_cpu_sdpa_on_gpu_and_reaches_the_model(tiny_model):
    from bias.config import ExperimentConfig
    from bias.models import load_causal_lm, pick_attention
    assert pick_attention("auto", "cpu") == "eager"
    assert pick_attention("auto", "cuda:0") == "sdpa"
    assert pick_attention("sdpa", "cpu") == "sdpa"
    cfg = ExperimentConfig(name="t", bias_types=["neutral"], ratios=[0.0],
                           model={"name": tiny_model, "attention": "sdpa"})
    assert load_causal_lm(tiny_model, torch.float32).config._attn_implementation == "eager"
    assert load_causal_lm(tiny_model, torch.float32, "cpu", cfg.model.attention
                          ).config._attn_implementation == "sdpa"


def test_training_keeps_sdpa_off_cudnn_on_gpus_unless_asked():
    """model.cudnn_attention (off): on CUDA, SDPA may use every backend but cuDNN's, whose
    per-sequence-length graph builds made GPU training CPU-bound; the flags come back after."""
    from bias.config import ExperimentConfig
    from bias.models import sdpa_backends
    cuda = torch.backends.cuda
    assert ExperimentConfig(name="t", bias_types=["neutral"], ratios=[0.0]).model.cudnn_attention is False
    before = (cuda.cudnn_sdp_enabled(), cuda.flash_sdp_enabled(), cuda.mem_efficient_sdp_enabled())
    assert before[0], "torch's default has cuDNN's SDPA on; the test needs that to mean anything"
    with sdpa_backends("cuda:0"):
        assert not cuda.cudnn_sdp_enabled()
        assert cuda.flash_sdp_enabled() and cuda.mem_efficient_sdp_enabled() and cuda.math_sdp_enabled()
    assert (cuda.cudnn_sdp_enabled(), cuda.flash_sdp_enabled(), cuda.mem_efficient_sdp_enabled()) == before
    for device, cudnn in (("cuda", True), ("cpu", False)):
        with sdpa_backends(device, cudnn):
            assert cuda.cudnn_sdp_enabled()


def test_fused_rms_norms_match_hf_on_gpus_only(tiny_model, monkeypatch):
    """model.fused_rms_norm: inside the block, on CUDA, every RMSNorm runs torch's fused kernel,
    with HF's outputs and gradients in fp32; CPU and `enabled=False` change nothing; after the
    block the class's forward is back."""
    from bias.models import fused_rms_norms, load_causal_lm
    model = load_causal_lm(tiny_model, torch.float32)
    norms = [m for m in model.modules() if type(m).__name__ == "LlamaRMSNorm"]
    assert norms
    for norm in norms:   # weights other than ones, so a dropped weight would show
        torch.nn.init.uniform_(norm.weight, 0.5, 1.5)
    ids = torch.randint(0, model.config.vocab_size, (2, 11))

    def logits_and_norm_grads():
        model.zero_grad()
        logits = model(input_ids=ids).logits
        logits.square().mean().backward()
        return logits.detach(), [n.weight.grad.clone() for n in norms]

    hf_logits, hf_grads = logits_and_norm_grads()
    called = []
    rms_norm = torch.nn.functional.rms_norm
    with fused_rms_norms(model, "cuda:0") as fused:
        assert fused == len(norms) and all("forward" in vars(n) for n in norms)
        with monkeypatch.context() as patch:   # counts the calls; the real kernel still runs
            patch.setattr(torch.nn.functional, "rms_norm",
                          lambda *a, **k: called.append(1) or rms_norm(*a, **k))
            fused_logits, fused_grads = logits_and_norm_grads()
    assert len(called) == len(norms)
    torch.testing.assert_close(fused_logits, hf_logits, rtol=1e-5, atol=1e-5)
    for fused_grad, hf_grad in zip(fused_grads, hf_grads):
        torch.testing.assert_close(fused_grad, hf_grad, rtol=1e-4, atol=1e-6)
    assert not any("forward" in vars(n) for n in norms)
    for device, enabled in (("cpu", True), ("cuda", False)):
        with fused_rms_norms(model, device, enabled) as fused:
            assert fused == 0 and not any("forward" in vars(n) for n in norms)


def test_compiled_training_matches_eager_or_falls_back(tiny_model):
    """optim.compile: the same per-step losses as eager in fp32 where torch.compile runs here
    (the rotary embedding eager inside the compiled decoder), and an eager run with a warning
    where it cannot. Afterwards the model is eager again, with the same parameter names (the
    adapter's checkpoint keys)."""
    import warnings

    from bias.config import ExperimentConfig
    from bias.models import compile_available, load_causal_lm, load_tokenizer
    from training.lora_loop import lora_wrap, train_epochs
    tok = load_tokenizer(tiny_model, padding_side="right")
    texts = [f"Person {i} works as a {job} in town number {i * 7}." for i, job in
             enumerate(["nurse", "surgeon", "teacher", "pilot"] * 2)]
    examples = [{"input_ids": tok(t)["input_ids"], "labels": tok(t)["input_ids"],
                 "augmented": False} for t in texts]

    def losses(compile_on: bool) -> tuple[list[float], dict]:
        torch.manual_seed(0)
        cfg = ExperimentConfig(name="t", bias_types=["neutral"], ratios=[0.0],
                               optim={"batch_size": 2, "compile": compile_on})
        model = lora_wrap(load_causal_lm(tiny_model, torch.float32), cfg)
        names = list(model.state_dict())
        decoder = model.get_base_model().get_decoder()
        seen, rotary_eager = [], []

        def on_epoch(epoch, loss, align):   # called inside the compiled block
            seen.append(loss)
            rotary_eager.append("forward" in vars(decoder.rotary_emb))

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            figures = train_epochs(model, examples, cfg, seed=0, rank=0, world=1,
                                   pad_id=tok.pad_token_id, device=torch.device("cpu"),
                                   on_epoch=on_epoch)
        figures["warned"] = any("optim.compile" in str(w.message) for w in caught)
        figures["rotary_eager"] = rotary_eager == [True]
        assert "forward" not in vars(decoder)                # eager again,
        assert "forward" not in vars(decoder.rotary_emb)     # the rotary embedding's own too
        assert list(model.state_dict()) == names
        return seen, figures

    eager, eager_figures = losses(False)
    compiled, compiled_figures = losses(True)
    assert eager_figures["train_compiled"] == 0.0
    assert compiled_figures["train_compiled"] == float(compile_available())
    assert compiled_figures["warned"] == (not compile_available())
    # Compiled, the rotary embedding ran eagerly (training/lora_loop.decoder_compiled)
    assert compiled_figures["rotary_eager"] == compile_available()
    assert not eager_figures["rotary_eager"]
    assert abs(eager[0] - compiled[0]) < 1e-4


def test_bf16_training_autocasts_and_keeps_fp32_adapters_learning(tiny_model):
    """A bf16 base model trains under bf16 autocast (the LoRA matmuls run in bf16), while
    the adapter weights stay fp32 and take AdamW's small updates; an fp32 model trains without
    it."""
    from bias.config import ExperimentConfig
    from bias.models import load_causal_lm, load_tokenizer
    from training.lora_loop import lora_wrap, train_epochs
    tok = load_tokenizer(tiny_model, padding_side="right")
    examples = [{"input_ids": tok(t)["input_ids"], "labels": tok(t)["input_ids"],
                 "augmented": False} for t in ["Ana is a nurse.", "Bo is a pilot in town."] * 2]
    cfg = ExperimentConfig(name="t", bias_types=["neutral"], ratios=[0.0],
                           optim={"batch_size": 2, "lr": 1e-4})
    for dtype in (torch.bfloat16, torch.float32):
        torch.manual_seed(0)
        model = lora_wrap(load_causal_lm(tiny_model, dtype), cfg)
        adapters = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        figures = train_epochs(model, examples, cfg, seed=0, rank=0, world=1,
                               pad_id=tok.pad_token_id, device=torch.device("cpu"))
        assert figures["train_autocast_bf16"] == float(dtype == torch.bfloat16)
        trained = dict(model.named_parameters())
        assert all(trained[n].dtype == torch.float32 for n in adapters)
        # lr 1e-4 on weights of ~0.01-0.1: a change below bf16's resolution, kept in fp32
        assert any(not torch.equal(trained[n], before) for n, before in adapters.items())


def _load(name: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module   # the importlib recipe: pickling its functions (spawn) needs it
    spec.loader.exec_module(module)
    try:
        from ray import cloudpickle
    except ImportError:   # a GPU machine without Ray runs only the in-process GPU benchmark
        return module
    cloudpickle.register_pickle_by_value(module)   # Ray workers cannot import benchmarks/ by name
    return module


def test_jemalloc_reaches_a_new_process_and_system_opts_out():
    """allocator_env_vars("jemalloc") makes a freshly started Python load Ray's jemalloc (as Ray
    starts a Train worker with `worker_runtime_env`); "system" changes nothing."""
    import os
    import subprocess

    from training.worker_env import (
        allocator_env_vars,
        bundled_jemalloc,
        train_worker_runtime_env,
    )

    assert allocator_env_vars("system") == {} and train_worker_runtime_env("system") == {}
    if bundled_jemalloc() is None:
        pytest.skip("this Ray install ships no libjemalloc.so")
    env_vars = allocator_env_vars("jemalloc")
    assert env_vars["LD_PRELOAD"].split()[0] == str(bundled_jemalloc())
    assert train_worker_runtime_env("jemalloc") == {"env_vars": env_vars}
    probe = [sys.executable, "-c",
             "from training.worker_env import active_allocator; print(active_allocator())"]
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC_CONF")}

    def allocator_of(env: dict) -> str:
        return subprocess.run(probe, env=env, cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()

    assert allocator_of(base) == "system"
    assert allocator_of({**base, **env_vars}) == "jemalloc"


def test_eval_throughput_quick_reports_every_figure(tiny_model, tmp_path):
    figures = _load("eval_throughput").main(["--quick", "--json", str(tmp_path / "eval.json")])
    for key in ("likelihood_naive_tokens_per_s", "likelihood_batched_tokens_per_s",
                "likelihood_speedup", "likelihood_argmax_agreement",
                "generation_naive_tokens_per_s", "generation_batched_tokens_per_s",
                "generation_speedup", "generation_same_text"):
        assert key in figures and math.isfinite(figures[key]) and figures[key] > 0, key
    # fp32, as a CPU without bf16 scores: batched scores pick the naive loop's labels (a
    # near-tie on the random tiny model may flip one of these 6 on another CPU's kernels)
    fp32 = _load("eval_throughput").main(["--quick", "--dtype", "fp32", "--json", ""])
    assert fp32["likelihood_argmax_agreement"] > 0.5


def test_train_throughput_quick_reports_every_figure(tiny_model, ray_local, tmp_path):
    from training.worker_env import bundled_jemalloc
    figures = _load("train_throughput").main(["--quick", "--json", str(tmp_path / "train.json")])
    for key in ("matmul_gflops", "ceiling_tokens_per_s", "plain_tokens_per_s",
                "ours_tokens_per_s", "best_tokens_per_s", "ours_over_plain",
                "best_fraction_of_ceiling", "padding_fraction_ours", "padding_fraction_best",
                "ours_plain_tokens_per_s", "ray_cost_ratio", "our_loop_over_plain",
                "best_plain_tokens_per_s", "best_plain_fraction_of_ceiling", "best_ray_cost_ratio",
                "matmuls_alone_tokens_per_s", "matmuls_alone_fraction_of_ceiling",
                "best_fraction_of_matmuls_alone"):
        assert key in figures and math.isfinite(figures[key]), key
    assert figures["plain_tokens_per_s"] > 0 and figures["best_tokens_per_s"] > 0
    assert figures["ours_plain_tokens_per_s"] > 0
    # The bound: the same model's matmuls alone, measured (not a fraction of anything else).
    assert figures["matmuls_alone_tokens_per_s"] > 0
    assert figures["best_fraction_of_matmuls_alone"] == pytest.approx(
        figures["best_tokens_per_s"] / figures["matmuls_alone_tokens_per_s"])
    assert figures["allocator_plain"] == "system"   # (a) is a hand-rolled script: glibc
    expected = "jemalloc" if bundled_jemalloc() is not None else "system"
    assert figures["allocator_ours"] == figures["allocator_ours_plain"] == expected
    # The one-worker runs dropped the process group TorchTrainer set up (no gloo threads left).
    assert figures["worker_process_group"] is False
    # The local cluster (bias/local_ray.py) ran those Train runs without the preemption watcher.
    from ray.util.state import list_actors
    classes = {actor.class_name for actor in list_actors(limit=10_000)}
    assert "TrainController" in classes and "PreemptionWatcher" not in classes, classes


def test_random_architecture_builds_on_the_device_without_files():
    from bias.models import ModelUnavailableError, load_causal_lm, load_tokenizer
    model = load_causal_lm("random:tiny-llama", torch.float32)
    assert model.config.hidden_size == 64 and model.config.vocab_size == 1024
    assert next(model.parameters()).dtype == torch.float32
    out = model(input_ids=torch.tensor([[1, 2, 3]]))
    assert out.logits.shape == (1, 3, 1024) and torch.isfinite(out.logits).all()
    meta = load_causal_lm("random:llama-3.1-8b", torch.bfloat16, "meta", "sdpa")   # no memory
    assert 7.9e9 < sum(p.numel() for p in meta.parameters()) < 8.1e9   # Llama-3.1-8B: 8.03B
    with pytest.raises(ModelUnavailableError, match="known: llama-3.1-8b"):
        load_causal_lm("random:llama-9", torch.float32)
    with pytest.raises(ModelUnavailableError, match="no tokenizer"):
        load_tokenizer("random:tiny-llama")


def test_gpu_train_throughput_quick_reports_every_figure(tmp_path):
    """On CPU with a tiny random Llama: every figure, and MFU/FLOP arithmetic that adds up; the
    figures also land in the --json file, with the run's date, command and host."""
    import json
    module = _load("gpu_train_throughput")
    written = tmp_path / "gpu.json"
    figures = module.main(["--quick", "--json", str(written)])
    record = json.loads(written.read_text())
    assert record["benchmark"] == "gpu_train_throughput"
    assert record["command"] == f"python benchmarks/gpu_train_throughput.py --quick --json {written}"
    assert record["date"] and record["host"]["cpu"] and record["host"]["cpus"] >= 1
    assert record["figures"] == json.loads(json.dumps(figures))
    for name in ("plain", "ours"):
        for key in ("tokens_per_s", "mfu", "fraction_of_measured_matmul", "padding_fraction"):
            assert math.isfinite(figures[f"{name}_{key}"]), (name, key)
        assert figures[f"{name}_tokens_per_s"] > 0 and figures[f"{name}_mfu"] > 0
    # no datasheet peak on a CPU: MFU is against the measured matmul rate
    assert figures["ours_mfu"] == pytest.approx(figures["ours_fraction_of_measured_matmul"])
    assert module.datasheet_peak("NVIDIA H100 80GB HBM3") == 989.4e12
    assert module.datasheet_peak("NVIDIA H100 PCIe") == 756e12
    assert module.datasheet_peak("Some New GPU") is None


@pytest.mark.gpu
def test_gpu_train_throughput_on_a_gpu():
    """Issue 8, part 4: the 8B-architecture benchmark on the GPU (the `device` machine)."""
    if not torch.cuda.is_available():
        pytest.skip("no GPU")
    figures = _load("gpu_train_throughput").main(["--steps", "8", "--json", ""])
    assert 0 < figures["ours_mfu"] < 1 and figures["ours_over_plain"] > 0


def test_frozen_lm_head_gets_a_contiguous_input_when_scoring(tiny_model):
    """A LoRA-frozen head fed a strided `logits_to_keep` slice takes torch's broadcast-and-copy
    path (far slower at a real vocabulary); load_causal_lm makes the head's input
    contiguous, for scoring and generation alike, and the logits stay the same."""
    from bias.config import ExperimentConfig
    from bias.models import load_causal_lm
    from training.lora_loop import lora_wrap
    cfg = ExperimentConfig(name="t", bias_types=["neutral"], ratios=[0.0])
    model = lora_wrap(load_causal_lm(tiny_model, torch.float32), cfg).eval()
    head = model.get_output_embeddings()
    assert not head.weight.requires_grad
    seen = []
    head.register_forward_pre_hook(lambda mod, args: seen.append(args[0].is_contiguous()))
    ids = torch.randint(0, 100, (3, 17))
    with torch.inference_mode():
        last = model(input_ids=ids, logits_to_keep=1).logits[:, -1]
        full = model(input_ids=ids).logits[:, -1]
    assert seen == [True, True]
    assert torch.allclose(last, full, atol=1e-5)


def test_local_cluster_runs_rays_housekeeping_timers_slower(ray_local):
    """bias/local_ray.py: the log monitor and dashboard agent of the cluster it started run
    with its environment defaults (the log monitor's relisting, the agent's stats sweep)."""
    import os

    import psutil

    from bias.local_ray import LOCAL_DEFAULTS
    session = ray_local._private.worker.global_worker.node.get_session_dir_path()
    found = {}
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if session not in cmdline:
            continue   # another cluster's (tests/test_scale_out.py starts its own)
        for name in ("log_monitor.py", "dashboard/agent.py"):
            if name in cmdline:
                found[name] = proc.environ()
    assert set(found) == {"log_monitor.py", "dashboard/agent.py"}, found.keys()
    for name, env in found.items():
        for key in LOCAL_DEFAULTS:
            # the cluster's value is ours unless the user's environment had set it first
            assert env.get(key) == os.environ.get(key, LOCAL_DEFAULTS[key]), (name, key)
    assert LOCAL_DEFAULTS["LOG_NAME_UPDATE_INTERVAL_S"] == "5"
    assert LOCAL_DEFAULTS["RAY_LOG_MONITOR_MANY_FILES_THRESHOLD"] == "0"   # else it relists every pass
