"""The one integer and number check behind every config: bools are not numbers, and the message
names the value, the range and the fix."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def is_int(x: Any, numpy: bool = False) -> bool:
    """An int and not a bool (``numpy=True`` also takes numpy integers)."""
    return not isinstance(x, bool) and isinstance(x, (int, np.integer) if numpy else int)


def is_number(x: Any) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_int(name: str, value: Any, minimum: int = 1, fix: str = "", numpy: bool = False,
              maximum: int | None = None) -> None:
    """Raise ValueError unless ``value`` is an int (not a bool) >= ``minimum`` (and <= ``maximum`` if given)."""
    if not is_int(value, numpy) or value < minimum or (maximum is not None and value > maximum):
        hint = f"; {fix}" if fix else ""
        where = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name}={value!r} is invalid: it must be an int {where}{hint}.")


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None, fix: str = "",
                 low_open: bool = False, high_open: bool = False) -> float:
    """Raise ValueError unless ``value`` is a finite number (not a bool) in the range; returns it as a float.

    ``low``/``high`` are inclusive unless ``low_open``/``high_open``; None leaves that side unbounded.
    """
    ok = is_number(value) and (low is None or (value > low if low_open else value >= low)) \
        and (high is None or (value < high if high_open else value <= high))
    if not ok:
        if low is not None and high is not None:
            where = f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            where = f" {'>' if low_open else '>='} {low:g}"
        elif high is not None:
            where = f" {'<' if high_open else '<='} {high:g}"
        else:
            where = ""
        hint = f"; {fix}" if fix else ""
        raise ValueError(f"{name}={value!r} is invalid: it must be a finite number{where}{hint}.")
    return float(value)


def check_ints(obj: Any, names: tuple[str, ...], minimum: int = 1, prefix: str = "") -> None:
    """``check_int`` on each named attribute of a config object (``prefix`` names its section)."""
    for name in names:
        check_int(prefix + name, getattr(obj, name), minimum)
