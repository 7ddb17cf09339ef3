"""The generator registry: an explicit dict filled by a class decorator (style.md, rule 8)."""
from __future__ import annotations

import inspect
from typing import Any, TypeVar

from synth.errors import GeneratorError, UnknownGeneratorError

T = TypeVar("T", bound=type)

GENERATORS: dict[str, type] = {}


def register(cls: T) -> T:
    """Register a Generator subclass under its ``name``."""
    name = getattr(cls, "name", "")
    if not name or name in GENERATORS:
        raise ValueError(f"generator class {cls.__name__} has an empty or duplicate name {name!r}")
    GENERATORS[name] = cls
    return cls


def get_generator(name: str, **params: Any) -> Any:
    """A new, unfitted generator by registry name; unknown parameters raise with the accepted list."""
    import synth.generators  # noqa: F401  (fills the registry)

    if name not in GENERATORS:
        raise UnknownGeneratorError(f"unknown generator {name!r}; registered: {', '.join(sorted(GENERATORS))}")
    cls = GENERATORS[name]
    signature = inspect.signature(cls.__init__).parameters.values()
    accepted = [p.name for p in signature if p.name != "self" and p.kind is inspect.Parameter.KEYWORD_ONLY]
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature)  # engine parameters, checked there
    unknown = sorted(set(params) - set(accepted))
    if unknown and not open_ended:
        raise GeneratorError(
            f"unknown parameter(s) {', '.join(unknown)} for generator {name}; accepted: {', '.join(accepted) or 'none'}"
        )
    try:
        return cls(**params)
    except TypeError as exc:
        raise GeneratorError(f"bad parameters for generator {name}: {exc}") from None


def describe_generators() -> list[dict[str, Any]]:
    """Name, family, DP flag and one-line description of every registered generator."""
    import synth.generators  # noqa: F401

    return [
        {
            "name": name,
            "family": cls.family,
            "differentially_private": cls.differentially_private,
            "unsafe": cls.unsafe,
            "description": cls.description,
        }
        for name, cls in sorted(GENERATORS.items())
    ]
