"""One event's raw `user_data` -> what Snap accepts, by the rules `fields.py` assigns to each key.

Nothing else in the actor touches raw identifiers.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from hashlib import sha256

from ..fields import HASHED_RULES, RAW_RULES, USER_DATA_ALIASES
from ..rules.identifiers import IdentifierError, Rule, is_sha256_hex, masked, normalize_phone
from ..rules.values import broken_text

UserDataValue = str | list[str]


class UserDataNormalizer:
    """Turns one event's raw `user_data` into what Snap accepts: hashes where Snap wants hashes.

    A value that fails its rule is dropped with a warning naming the field, so that one bad phone
    number does not cost the conversion its email match.
    """

    def __init__(self, *, default_phone_country: str | None = None, already_hashed: bool = False) -> None:
        self._already_hashed = already_hashed
        hashed: dict[str, Rule] = dict(HASHED_RULES)
        if default_phone_country:  # without one, the rule's own default: no `partial` to go through per event
            hashed["ph"] = partial(normalize_phone, default_country=default_phone_country)
        #: Every `user_data` key -> the whole transform of one value, compiled once per run.
        self._transforms: dict[str, Rule] = {key: self._hashing(rule) for key, rule in hashed.items()}
        self._transforms.update(RAW_RULES)

    def normalize(self, user_data: Mapping[str, object]) -> tuple[dict[str, UserDataValue], list[str]]:
        """The event's `user_data` as Snap takes it, and a warning for each value left out."""
        result: dict[str, UserDataValue] = {}
        warnings: list[str] = []
        transforms = self._transforms
        aliases = USER_DATA_ALIASES
        for given_key, value in user_data.items():
            key = aliases.get(given_key, given_key)
            transform = transforms.get(key)
            if type(value) is str and transform is not None and key not in result:
                # The common case: one text value, the first of its key (an empty one is no value).
                if value:
                    try:
                        result[key] = transform(_as_text(value))
                    except IdentifierError as error:
                        warnings.append(f"user_data.{key} {error}; left out")
                continue
            if value is None or value == "" or value == []:
                continue
            if transform is None:
                warnings.append(f"user_data.{masked(str(key))} is not a Snap identifier and was left out")
                continue
            earlier = result.get(key)
            kept: list[str] = [] if earlier is None else [earlier] if isinstance(earlier, str) else earlier
            many = isinstance(value, list) or earlier is not None
            for item in value if isinstance(value, list) else [value]:
                try:
                    out = transform(_as_text(item))
                except IdentifierError as error:
                    warnings.append(f"user_data.{key} {error}; left out")
                    continue
                if out not in kept:
                    kept.append(out)
            if kept:
                result[key] = kept if (many and len(kept) > 1) or isinstance(value, list) else kept[0]
        return result, warnings

    def _hashing(self, rule: Rule) -> Rule:
        """One hashed key's whole transform: a SHA-256 hex digest given is kept (lowercased), anything else
        normalized by `rule` and hashed, or refused when the run says the values are already hashed."""
        already_hashed = self._already_hashed

        def transform(value: str) -> str:
            value = value.strip()
            if len(value) == 64 and is_sha256_hex(value):
                return value.lower()
            if already_hashed:
                raise IdentifierError("is marked as already hashed but is not a SHA-256 hex digest")
            return sha256(rule(value).encode()).hexdigest()

        return transform


def _as_text(value: object) -> str:
    if type(value) is not str:
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise IdentifierError("must be text")
        value = str(value)
    # Printable ASCII has nothing `broken_text` looks for, trimmed or not: the common case skips the trim.
    if not (value.isascii() and value.isprintable()) and (problem := broken_text(value.strip())) is not None:
        raise IdentifierError(problem)
    return value
