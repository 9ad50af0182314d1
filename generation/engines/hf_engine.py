"""CPU engine: an HF causal LM in a Ray Data class UDF, batched left-padded generation.

Used as `ds.map_batches(HFGenerator, fn_constructor_kwargs=..., compute=ActorPoolStrategy(size=n))`;
each actor loads the model once and generates a whole batch per forward pass. On GPU nodes
(`generation.gpus_per_actor` > 0) the same class runs on `device="cuda"`.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from bias.models import load_causal_lm, load_tokenizer, pick_dtype, with_adapter


class HFGenerator:
    def __init__(self, model_name: str, dtype: str = "auto", threads: int | None = None,
                 device: str = "cpu", adapter: str | None = None, attention: str = "auto"):
        if threads:
            torch.set_num_threads(threads)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.dtype = pick_dtype(dtype, self.device)
        self.tokenizer = load_tokenizer(model_name, padding_side="left")
        model = load_causal_lm(model_name, self.dtype, self.device, attention)
        self.model = with_adapter(model, adapter).eval()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        prompts = [str(p) for p in batch["prompt"]]
        params = batch["sampling_params"][0]  # one config per dataset: same for every row
        texts = [self.tokenizer.apply_chat_template([{"role": "user", "content": p}],
                                                    tokenize=False, add_generation_prompt=True)
                 for p in prompts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True,
                             add_special_tokens=False).to(self.device)
        # One generator per batch, seeded from its prompt ids: the same batch gives the same
        # text on any actor (vLLM instead honours each row's own sampling seed).
        ids = "|".join(str(i) for i in batch["prompt_id"])
        torch.manual_seed(int(hashlib.sha256(ids.encode()).hexdigest()[:8], 16))
        sample = float(params["temperature"]) > 0
        with torch.inference_mode():
            out = self.model.generate(
                **enc, max_new_tokens=int(params["max_tokens"]), do_sample=sample,
                temperature=float(params["temperature"]) if sample else None,
                top_p=float(params["top_p"]) if sample else None,
                pad_token_id=self.tokenizer.pad_token_id)
        new_tokens = out[:, enc["input_ids"].shape[1]:]
        generated = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        n_tokens = (new_tokens != self.tokenizer.pad_token_id).sum(dim=1)
        # `messages` is vLLM's input; dropping it spares Arrow a column of nested dicts.
        batch = {k: v for k, v in batch.items() if k != "messages"}
        batch["generated_text"] = np.array(generated, dtype=object)
        batch["num_generated_tokens"] = n_tokens.cpu().numpy()
        return batch
