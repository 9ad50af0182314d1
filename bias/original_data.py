"""Original data D_o and its held-out test split: project-written bios offline, Bias in Bios on the hub.

Both sources yield rows with text, counterfactual_text (the same bio with its gender cues
swapped), occupation, gender (and culture, name where known).
"""
from __future__ import annotations

import pandas as pd

from bias.bios import write_bios
from bias.vocabulary import OCCUPATIONS, swap_gender

HUB_DATASET = "LabHC/bias_in_bios"
# LabHC/bias_in_bios profession ids of the study's six occupations; gender 0 = male, 1 = female.
HUB_PROFESSION_IDS = {1: "architect", 6: "dentist", 13: "nurse", 14: "painter", 21: "professor",
                      24: "software engineer"}


def _hub_rows(split: str, n: int, seed: int) -> pd.DataFrame:
    import datasets
    ds = datasets.load_dataset(HUB_DATASET, split=split)
    frame = ds.to_pandas()
    frame = frame[frame["profession"].isin(list(HUB_PROFESSION_IDS))]
    frame = pd.DataFrame({"text": frame["hard_text"],
                          "counterfactual_text": frame["hard_text"].map(swap_gender),
                          "occupation": frame["profession"].map(HUB_PROFESSION_IDS),
                          "gender": frame["gender"].map({0: "male", 1: "female"}),
                          "culture": "", "name": ""})
    # Gender-balanced per occupation, as the study's test set is.
    per_cell = max(1, n // (2 * len(OCCUPATIONS)))
    balanced = (frame.groupby(["occupation", "gender"], group_keys=False)
                .apply(lambda g: g.sample(min(len(g), per_cell), random_state=seed)))
    return balanced.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def load_original(source: str, split: str, n: int, seed: int) -> pd.DataFrame:
    """`n` rows of D_o ('train') or of its held-out test split ('test')."""
    if source == "hub":
        return _hub_rows(split, n, seed).assign(source="original")
    return pd.DataFrame(write_bios(n, seed=seed, split=split))
