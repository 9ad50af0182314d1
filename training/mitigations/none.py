"""Mitigation `none`: the augmented rows are trained on as generated (the baseline).

    python -m training.mitigations    # lists every mitigation
"""
from training.mitigations import Mitigation

MITIGATION = Mitigation(name="none", description="no mitigation: the augmented rows as generated")
