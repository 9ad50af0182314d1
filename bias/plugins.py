"""Plugin packages: a package whose modules each define one extension object (a social bias, a
mitigation), found by file name, so adding one is adding its module.

    from bias import plugins
    plugins.module_names(package.__path__, first="none")   # names, no module imported
    plugins.load("training.mitigations", "mask", "MITIGATION", "mitigation", known)
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Iterable


def module_names(search_path: Iterable[str], first: str) -> tuple[str, ...]:
    """The public modules on `search_path`, `first` first, the rest sorted; none is imported."""
    found = sorted(m.name for m in pkgutil.iter_modules(list(search_path))
                   if not m.name.startswith("_"))
    return tuple(sorted(found, key=lambda name: name != first))


def load(package: str, name: str, attribute: str, what: str, known: tuple[str, ...]) -> Any:
    """`package.name.attribute`, checked: the name is known and the object calls itself `name`."""
    if name not in known:
        raise ValueError(f"unknown {what} {name!r}; known: {list(known)}")
    obj = getattr(importlib.import_module(f"{package}.{name}"), attribute)
    if obj.name != name:
        raise ValueError(f"{package.replace('.', '/')}/{name}.py defines {what} {obj.name!r}")
    return obj
