"""Mitigation `loss`: the data are untouched; the training loop adds λ·alignment
(training/alignment.py), λ = `mitigation.loss_lambda`, pulling the groups' representations
together.

    python -m training.mitigations    # lists every mitigation
"""
from training.mitigations import Mitigation

MITIGATION = Mitigation(name="loss", description="an alignment term in the training loss "
                                                 "(λ = mitigation.loss_lambda)",
                        loss_weight=lambda settings: settings.loss_lambda)
