"""Reading and checking privacy parameters from ``EvalOptions.params``, with one message shape.

Settings shared by every privacy metric live under ``params["privacy"]``; a metric's own name
(``params["privacy.mia.shadow"]``) overrides them. Every check raises
:class:`~evaluate.privacy.errors.InvalidParameterError` with the message
"The 'x' parameter of M must be ...; got ... instead." (scikit-learn's shape).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from evaluate.context import EvalContext
from evaluate.privacy.errors import InvalidParameterError

SHARED = "privacy"


def get_param(ctx: EvalContext, metric: str, key: str, default: Any) -> Any:
    """``params[metric][key]``, else ``params["privacy"][key]``, else ``default``."""
    own = ctx.options.params.get(metric, {})
    if key in own:
        return own[key]
    return ctx.options.params.get(SHARED, {}).get(key, default)


def check_int(value: Any, name: str, owner: str, *, low: int, high: float = math.inf) -> int:
    """``value`` as an int within [low, high]; raise naming the parameter, the range and the value."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise InvalidParameterError(_message(name, owner, f"an int in {_range(low, high)}", value))
    out = int(value)
    if not low <= out <= high:
        raise InvalidParameterError(_message(name, owner, f"an int in {_range(low, high)}", value))
    return out


def check_float(value: Any, name: str, owner: str, *, low: float, high: float, open_low: bool = False,
                open_high: bool = False) -> float:
    """``value`` as a float within the interval; raise naming the parameter, the range and the value."""
    bracket = ("(" if open_low else "[") + f"{low}, {high}" + (")" if open_high else "]")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(float(value)):
        raise InvalidParameterError(_message(name, owner, f"a float in {bracket}", value))
    out = float(value)
    below = out <= low if open_low else out < low
    above = out >= high if open_high else out > high
    if below or above:
        raise InvalidParameterError(_message(name, owner, f"a float in {bracket}", value))
    return out


def confidence_param(ctx: EvalContext, metric: str) -> float:
    """The ``confidence`` parameter of a metric's intervals: a float in (0, 1), 0.95 by default."""
    return check_float(get_param(ctx, metric, "confidence", 0.95), "confidence", metric, low=0.0, high=1.0,
                       open_low=True, open_high=True)


def check_choice(value: Any, name: str, owner: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise InvalidParameterError(_message(name, owner, f"one of {', '.join(map(repr, choices))}", value))
    return str(value)


def check_columns(value: Any, name: str, owner: str, available: Sequence[str]) -> list[str]:
    """A list of column names, each one of ``available``."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise InvalidParameterError(_message(name, owner, "a list of column names", value))
    unknown = [v for v in value if v not in available]
    if unknown:
        raise InvalidParameterError(
            _message(name, owner, f"a list of columns among {', '.join(available)}", value)
            + f" (unknown: {', '.join(map(str, unknown))})"
        )
    return list(value)


def _range(low: float, high: float) -> str:
    return f"[{low}, inf)" if math.isinf(high) else f"[{low}, {int(high) if float(high).is_integer() else high}]"


def _message(name: str, owner: str, expected: str, value: Any) -> str:
    return f"The {name!r} parameter of {owner} must be {expected}; got {value!r} instead."
