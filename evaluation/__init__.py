"""Evaluation stage: a task registry (one module per task), batched scoring, per-group metrics."""
