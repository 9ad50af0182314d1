"""A cell's LoRA adapter as an MLflow model (the transformers flavour with PEFT).

The trial's rank-0 worker writes it beside the peft files in the cell's checkpoint
(`save_adapter_model`); the driver's cell logger makes it an MLflow 3 logged model of the cell's
run, with the cell's final metrics linked to it. Only the adapter and the tokenizer are stored;
the base model is referenced by name (a hub name on clusters, the offline model's folder here).

    mlflow.search_logged_models(filter_string="tags.`bias_inherit.cell_id` = 'base'")
    mlflow.transformers.load_model("models:/<model_id>", return_type="components")["model"]
"""
from __future__ import annotations

import importlib.metadata
import os

MLFLOW_MODEL_DIR = "mlflow_model"   # inside the checkpoint, beside adapter_config.json
PEFT_DIR = "peft"                   # inside the MLflow model: the adapter vLLM and peft load


def save_adapter_model(model, tokenizer, base_model: str, checkpoint_dir: str) -> str:
    """Write the MLflow model of `model` (a peft LoRA model on `base_model`) into the checkpoint."""
    import mlflow.transformers
    path = os.path.join(checkpoint_dir, MLFLOW_MODEL_DIR)
    # Pinned from this environment, not inferred: inference imports every optional extra.
    pins = [f"{p}=={importlib.metadata.version(p)}" for p in ("torch", "transformers", "peft")]
    mlflow.transformers.save_model({"model": model, "tokenizer": tokenizer}, path,
                                   task="text-generation", base_model_path=base_model,
                                   pip_requirements=pins)
    return path
