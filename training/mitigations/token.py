"""Mitigation `token`: a configurable bias-warning sentence (`mitigation.token_text`) is prepended
to every augmented example, so the model can learn to discount what follows it.

    python -m training.mitigations    # lists every mitigation
"""
from __future__ import annotations

from bias.config import MitigationConfig
from training.mitigations import Mitigation


def prepend_warning(texts: list[str], settings: MitigationConfig) -> tuple[list[str], dict[str, float]]:
    return [f"{settings.token_text} {t}" for t in texts], {"token_prefixed_rows": float(len(texts))}


MITIGATION = Mitigation(name="token", description="a bias-warning sentence before each augmented "
                                                  "example", rewrite=prepend_warning)
