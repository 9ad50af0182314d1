"""Text formats shared by training and evaluation, so a model is scored in the format it learned."""
from __future__ import annotations


def occupation_prompt(bio: str) -> str:
    return f"Biography: {bio}\nOccupation:"


def occupation_target(occupation: str) -> str:
    return f" {occupation}"
