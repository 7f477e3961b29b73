"""The error every check of the kit raises: an AssertionError whose message says what is wrong and the fix."""

from __future__ import annotations


class CheckError(AssertionError):
    """A contract check failed. Subclasses AssertionError, so pytest reports it as a failed assertion.

    The message names the piece checked, what it did, what the contract asks, and ends with ``fix: ...``.
    """


def fail(what: str, fix: str) -> None:
    """Raise :class:`CheckError` with ``"<what>; fix: <fix>"``."""
    raise CheckError(f"{what}; fix: {fix}")
