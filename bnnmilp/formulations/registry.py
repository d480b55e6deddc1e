"""The registry of formulations: names (as written in YAML) to classes."""

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
