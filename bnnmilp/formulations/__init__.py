"""Formulations of BNN problems as standard-form MILPs, registered under string names.

``get(name)`` resolves a name (as written in YAML), a class or an instance,
in the manner of Larq's quantizers and gurobi-machinelearning's registry.
"""

from __future__ import annotations

from typing import Any

_REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator: make a formulation available under ``name``."""

    def deco(cls: type) -> type:
        _REGISTRY[name] = cls
        cls.registered_name = name
        return cls

    return deco


def get(obj: Any) -> Any:
    """A formulation instance from a registered name, a class or an instance."""
    if isinstance(obj, str):
        if obj not in _REGISTRY:
            raise KeyError(f"unknown formulation {obj!r} (known: {', '.join(sorted(_REGISTRY))})")
        return _REGISTRY[obj]()
    if isinstance(obj, type):
        return obj()
    return obj


def available() -> list[str]:
    return sorted(_REGISTRY)


from bnnmilp.formulations import robustness, theorem1  # noqa: E402,F401  (register themselves)
