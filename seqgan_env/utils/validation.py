"""The one integer check behind every config: bools are not ints, and the message names value, range and fix."""

from __future__ import annotations

from typing import Any


def check_int(name: str, value: Any, minimum: int = 1, fix: str = "") -> None:
    """Raise ValueError unless ``value`` is an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        hint = f"; {fix}" if fix else ""
        raise ValueError(f"{name}={value!r} is invalid: it must be an int >= {minimum}{hint}.")


def check_ints(obj: Any, names: tuple[str, ...], minimum: int = 1, prefix: str = "") -> None:
    """``check_int`` on each named attribute of a config object (``prefix`` names its section)."""
    for name in names:
        check_int(prefix + name, getattr(obj, name), minimum)
