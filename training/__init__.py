"""Training stage: mixing at ratio γ, mitigations, the LoRA loop per Ray Train worker, the Tune trial."""
