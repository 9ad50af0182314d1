"""Mix original data D_o with augmented data D_a at bias ratio γ = |D_a| / |D|, |D| held fixed.

Subsets are nested across ratios: for a seed, the originals kept at γ=0.5 are a subset of those
kept at γ=0.2, so only the mix changes between cells, not which originals are seen.

    python -m training.mixing 0.2 20     # counts for γ=0.2, |D|=20 on toy data
"""
from __future__ import annotations

import random
import sys

import pandas as pd

from bias.errors import NotEnoughDataError  # noqa: F401  (re-exported: its old home)


def mix_counts(ratio: float, size: int) -> tuple[int, int]:
    """(n_original, n_augmented) for |D| = size; rounding to the nearest row."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"bias ratio γ must be in [0, 1), got {ratio}")
    n_aug = int(round(ratio * size))
    return size - n_aug, n_aug


def mix(original: pd.DataFrame, augmented: pd.DataFrame | None, ratio: float, size: int,
        seed: int, allow_shortfall: bool = False) -> pd.DataFrame:
    """Deterministic mix with a `source` column ('original' / 'augmented'), shuffled.

    allow_shortfall: when fewer augmented rows exist than γ asks for, fill |D| with originals
    instead of failing (multi-round runs, where a degraded generator is itself the finding)."""
    n_orig, n_aug = mix_counts(ratio, size)
    n_avail = 0 if augmented is None else len(augmented)
    if allow_shortfall and n_aug > n_avail:
        n_orig, n_aug = size - n_avail, n_avail
    if n_orig > len(original):
        raise NotEnoughDataError(f"γ={ratio}, |D|={size} needs {n_orig} original rows, "
                                 f"only {len(original)} exist")
    if n_aug > n_avail:
        raise NotEnoughDataError(f"γ={ratio}, |D|={size} needs {n_aug} augmented rows, only "
                                 f"{n_avail} valid generations exist; raise "
                                 f"generation.samples_per_type")
    rng = random.Random(f"mix-{seed}")
    orig_order = list(range(len(original)))
    rng.shuffle(orig_order)
    aug_order = list(range(n_avail))
    rng.shuffle(aug_order)
    parts = [original.iloc[orig_order[:n_orig]].assign(source="original")]
    if n_aug:
        parts.append(augmented.iloc[aug_order[:n_aug]].assign(source="augmented"))
    mixed = pd.concat(parts, ignore_index=True)
    return mixed.sample(frac=1.0, random_state=seed).reset_index(drop=True)


if __name__ == "__main__":
    gamma, size = float(sys.argv[1]), int(sys.argv[2])
    o = pd.DataFrame({"text": [f"o{i}" for i in range(size)]})
    a = pd.DataFrame({"text": [f"a{i}" for i in range(size)]})
    print(mix(o, a, gamma, size, seed=0)["source"].value_counts().to_dict())
