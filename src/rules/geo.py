"""Country and US state names to the ISO codes Snap hashes, from pycountry's ISO 3166 data."""

from __future__ import annotations

from functools import cache

import pycountry

#: Names people write that ISO 3166 does not list.
_COUNTRY_ALIASES = {"uk": "gb", "great britain": "gb", "england": "gb", "america": "us", "usa": "us"}


@cache
def country_code(text: str) -> str | None:
    """Lowercase ISO alpha-2 code for a code (alpha-2 or alpha-3) or an English name."""
    key = text.strip().lower()
    if key in _COUNTRY_ALIASES:
        return _COUNTRY_ALIASES[key]
    try:
        country = pycountry.countries.lookup(key)
    except LookupError:
        return None
    return str(country.alpha_2).lower()


@cache
def _us_states() -> dict[str, str]:
    return {
        str(division.name).lower(): str(division.code).split("-")[1].lower()
        for division in pycountry.subdivisions.get(country_code="US") or []  # type: ignore[no-untyped-call]
    }


def us_state_code(text: str) -> str | None:
    """Lowercase 2-letter code for a US state or territory name; None when it is not one."""
    return _us_states().get(text.strip().lower())
