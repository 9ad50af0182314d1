"""Task registry: one module per task, registered here by name.

A task module defines `TASK = Task(...)`; adding a task is one file plus one line below.
`bias-inherit tasks` lists them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal


@dataclass(frozen=True)
class Task:
    name: str
    kind: Literal["classification", "generation", "likelihood"]
    relation: Literal["direct", "indirect"]     # how the study groups it: directly bias-related or not
    description: str
    load: Callable[[Any], list[dict]]             # (ExperimentConfig) -> items
    evaluate: Callable[..., dict[str, float]]     # (model, tokenizer, items, cfg) -> metrics


def _registry() -> dict[str, Task]:
    from evaluation.tasks import (bbq, crows_pairs, hate_speech, occupation_classification,
                                  recruitment, salary_recommendation, stereoset, story_generation,
                                  toxigen, winobias)
    modules = [occupation_classification, salary_recommendation,
               recruitment,
               story_generation,
               hate_speech,
               toxigen,
               bbq,
               crows_pairs,
               stereoset,
               winobias]
    return {m.TASK.name: m.TASK for m in modules}


TASKS: dict[str, Task] = _registry()
