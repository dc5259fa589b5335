"""The one truth table for yes/no: a CSV cell, a JSON value and a form switch mean the same.

`optOut: "y"` opts an event out whether it came from a CSV file or a JSON array.
"""

from __future__ import annotations

YES = frozenset({"true", "1", "yes", "y"})
NO = frozenset({"false", "0", "no", "n"})


def yes_no(value: object) -> bool | None:
    """True or False for a boolean, 1/0 or a yes/no word (any case, spaces ignored); None for anything else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, str)):
        text = str(value).strip().lower()
        if text in YES:
            return True
        if text in NO:
            return False
    return None


def is_yes(value: object) -> bool:
    """A per-event switch: on only when the truth table says yes; anything else is off."""
    return yes_no(value) is True
