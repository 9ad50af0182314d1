"""Task registry: one module per task, registered here by name.

A task module defines `TASK = Task(...)`; adding a task is one file plus one line in
TASK_MODULES below (the registry is lazy: a module is imported when its task is looked up).
`bias-inherit tasks` lists them.

Each task declares what its numbers mean, and the report and the findings read only these
declarations (there is no second table to keep in step):
  headline       the metric drawn as the task's curve (its performance)
  bias_metrics   one `BiasMetric` per social bias the task can speak to, with its sign
                 convention: positive = toward the stereotype or the majority group, unless
                 `signed=False` (a disparity with no direction, e.g. a range over groups)
  group_metrics  per-group values drawn as a band around the curve
  data, hub      the files it reads under the data dir, and its hub dataset (none: the task
                 writes its own items); pre-flight and `bias-inherit data` read these
  generation     for tasks scored on greedy continuations: the prompts, their length and the
                 scorer, so any engine can write the continuations (`evaluation.engine: vllm`)
  items_per_social_bias   True where `load` builds the items for the study's social bias: the
                 task then runs only in studies its bias_metrics name (pre-flight refuses the
                 rest); False: the same items in every study, scored for whatever they show
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Literal


@dataclass(frozen=True)
class BiasMetric:
    name: str              # the metric's name inside the task (`<task>/<name>` in MLflow)
    social_biases: tuple[str, ...]   # the studies it speaks to: gender, culture, ...
    positive: str          # what a value above zero means
    reference: str         # where its definition comes from
    signed: bool = True    # False: a disparity without direction (0 = none, never below)

    def __post_init__(self):
        if isinstance(self.social_biases, str):   # ("gender") is a string, not a tuple
            raise TypeError(f"BiasMetric {self.name!r}: social_biases must be a tuple of names")


@dataclass(frozen=True)
class Generation:
    """A task scored on greedy continuations of its prompts, whichever engine writes them."""
    prompts: Callable[[list[dict]], list[str]]                  # items -> one prompt per item
    max_new_tokens: Callable[[Any], int]                        # cfg -> tokens per continuation
    score: Callable[[list[dict], list[str], Any], dict[str, float]]   # (items, texts, cfg)


@dataclass(frozen=True)
class Task:
    name: str
    kind: Literal["classification", "generation", "likelihood"]
    relation: Literal["direct", "indirect"]     # how the study groups it: directly bias-related or not
    description: str
    load: Callable[[Any], list[dict]]             # (ExperimentConfig) -> items
    evaluate: Callable[..., dict[str, float]]     # (model, tokenizer, items, cfg) -> metrics
    headline: str = "accuracy"
    bias_metrics: tuple[BiasMetric, ...] = ()
    group_metrics: tuple[str, ...] = ()
    data: tuple[str, ...] = ()
    hub: str | None = None
    items_per_social_bias: bool = False
    generation: Generation | None = None

    @property
    def social_biases(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for b in self.bias_metrics for s in b.social_biases))

    def bias_metric(self, social_bias: str) -> BiasMetric | None:
        """The task's bias metric for a study of `social_bias`; None if it cannot speak to it."""
        return next((b for b in self.bias_metrics if social_bias in b.social_biases), None)


# name -> "module:attribute". Adding a task is its module plus one line here; a module is
# imported the first time its task is looked up, so naming and validating tasks needs no torch.
TASK_MODULES: dict[str, str] = {
    "occupation_classification": "evaluation.tasks.occupation_classification:TASK",
    "salary_recommendation": "evaluation.tasks.salary_recommendation:TASK",
    "recruitment": "evaluation.tasks.recruitment:TASK",
    "story_generation": "evaluation.tasks.story_generation:TASK",
    "hate_speech": "evaluation.tasks.hate_speech:TASK",
    "toxigen": "evaluation.tasks.toxigen:TASK",
    "bbq": "evaluation.tasks.bbq:TASK",
    "crows_pairs": "evaluation.tasks.crows_pairs:TASK",
    "stereoset": "evaluation.tasks.stereoset:TASK",
    "winobias": "evaluation.tasks.winobias:TASK",
}


class TaskRegistry(Mapping):
    """A read-only name -> Task mapping that imports a task's module on first lookup."""

    def __init__(self, modules: dict[str, str]):
        self._modules = dict(modules)
        self._loaded: dict[str, Task] = {}

    def __getitem__(self, name: str) -> Task:
        if name not in self._loaded:
            module, attribute = self._modules[name].split(":")
            task = getattr(importlib.import_module(module), attribute)
            if task.name != name:
                raise ValueError(f"registry line {name!r} points at task {task.name!r}")
            self._loaded[name] = task
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:   # a name check imports nothing
        return name in self._modules

    def __iter__(self):
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


TASKS = TaskRegistry(TASK_MODULES)
