"""Snap's types for `custom_data` and `app_data`: one small pure rule per field, as for `user_data`.

Users give these fields as text, numbers or lists, in whatever shape their data has; Snap wants
fixed types (a number for `value`, a list of strings for `content_ids`, a 16-string `extinfo`).
Each rule coerces one field or raises `FieldError` with the input name of the field, never its
value. Fields without a rule go to Snap as given.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import pycountry

from .yes_no import yes_no

_ID_SEPARATORS = re.compile(r"[,;]")
#: Control characters (Unicode category Cc), U+FFFD and lone surrogates.
_BROKEN = re.compile("[\x00-\x1f\x7f-\x9f\ufffd\ud800-\udfff]")
EXTINFO_LENGTH = 16
#: `extinfo[0]` is the version tag: `a2` for Android, `i2` for iOS (Snap's and Meta's format).
EXTINFO_VERSIONS = frozenset({"a2", "i2"})
#: Largest price (`value`, `contents[].item_price`) and count (`num_items`, `contents[].quantity`) sent:
#: larger is a unit mix-up (cents, a timestamp, an id in the price column) that would skew Snap's reporting,
#: and keeps counts within 32-bit integers.
MAX_AMOUNT = 1_000_000_000
#: Currencies whose unit is worth less than about a tenth of a US cent (2025 rates), where a car or a flat costs
#: billions: their prices may go `SMALL_UNIT_FACTOR` times higher (a billion rupiah is about 60,000 US dollars).
SMALL_UNIT_CURRENCIES = frozenset({
    "ARS", "BIF", "CDF", "COP", "GNF", "IDR", "IQD", "IRR", "KHR", "KRW", "LAK", "LBP", "MGA", "MMK", "MNT",
    "MWK", "NGN", "PYG", "RWF", "SLL", "SYP", "TZS", "UGX", "UZS", "VND",
})  # fmt: skip
SMALL_UNIT_FACTOR = 1000
#: Longest text sent in any custom or app data field.
MAX_TEXT = 1000


class FieldError(ValueError):
    """A field Snap would refuse. The message names the field and never contains the value."""


def broken_text(text: str) -> str | None:
    """What is wrong with text no identifier or id may contain, or None: control characters, and the marks of
    broken UTF-8 (U+FFFD replacement characters from a mis-decoded file, lone surrogates). The answer never
    quotes the text."""
    if text.isascii() and text.isprintable():  # the common case, without the regex: no control character in it
        return None
    found = _BROKEN.search(text)
    if found is None:
        return None
    char = found.group()
    if char == "\ufffd":
        return "contains U+FFFD replacement characters (broken UTF-8 in the source)"
    if char >= "\ud800":
        return "contains broken UTF-8 (a lone surrogate)"
    return "contains control characters"


def as_number(value: object, field: str = "price") -> float | int:
    """A finite JSON number from a number or numeric text; `"42"` stays an int, `"42.0"` a float."""
    kind = type(value)
    if kind is int:  # JSON's own number types first: the common case, no coercion
        return value  # type: ignore[return-value]
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise FieldError(f"{field} must be a finite number (not NaN or infinity)")
        return value  # type: ignore[return-value]
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise FieldError(f"{field} must be a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        number = value
    else:
        try:
            number = float(value.strip())
        except ValueError:
            raise FieldError(f"{field} must be a number") from None
    if not math.isfinite(number):
        raise FieldError(f"{field} must be a finite number (not NaN or infinity)")
    if isinstance(value, str) and number.is_integer() and "." not in value:
        return int(number)
    return number


def amount(value: object, field: str) -> float | int:
    """A price: a number of 0 or more (a negative one, a refund, is refused); `check_prices` holds it to its
    currency's upper bound once the event's currency is known."""
    number = as_number(value, field)
    if number < 0:
        raise FieldError(f"{field} must be 0 or more (a refund is not a conversion)")
    return number


def max_price(currency: object) -> int:
    """The largest plausible price in `currency`: `MAX_AMOUNT`, or more for a currency of small units."""
    return MAX_AMOUNT * SMALL_UNIT_FACTOR if currency in SMALL_UNIT_CURRENCIES else MAX_AMOUNT


def check_prices(custom: Mapping[str, Any]) -> None:
    """Each price of tidy `custom_data` within its currency's bound (`max_price`); refused naming the field."""
    currency = custom.get("currency")
    cap = max_price(currency)
    where = f"in {currency}" if currency else "without a currency"
    if custom.get("value", 0) > cap:
        raise FieldError(f"price must be between 0 and {cap:,} {where}")
    for position, item in enumerate(custom.get("contents") or ()):
        if item.get("item_price", 0) > cap:
            raise FieldError(f"contents[{position}].item_price must be between 0 and {cap:,} {where}")


def _count(value: object, field: str, minimum: int) -> int:
    number = as_number(value, field)
    if number != int(number) or not minimum <= number <= MAX_AMOUNT:
        raise FieldError(f"{field} must be a whole number from {minimum} to {MAX_AMOUNT:,}")
    return int(number)


def number_text(value: object) -> str | None:
    """A JSON number where text is expected, as that text (an id given as 123); None for anything else: booleans,
    NaN, infinities, and integers past Python's limit of digits."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))):
        return None
    with contextlib.suppress(ValueError):  # an int past Python's limit of digits
        return str(value)
    return None


def _text(value: object, field: str) -> str:
    if isinstance(value, str):  # the common case
        text = str(value).strip()
    elif (number := number_text(value)) is not None:
        text = number
    else:
        raise FieldError(f"{field} must be text")
    if (problem := broken_text(text)) is not None:
        raise FieldError(f"{field} {problem}")
    if len(text) > MAX_TEXT:
        raise FieldError(f"{field} is longer than {MAX_TEXT} characters")
    return text


def _text_list(value: object, field: str, *, split: bool) -> list[str]:
    """A list of non-empty strings; text is one item, or comma/semicolon-separated items when `split`."""
    if isinstance(value, str):
        items: list[object] = list(_ID_SEPARATORS.split(value)) if split else [value]
    elif isinstance(value, list):
        items = value
    else:
        items = [value]
    texts = (_text(item, field) for item in items)
    return [text for text in texts if text]


def content_ids(value: object) -> list[str]:
    return _text_list(value, "itemIds (content_ids)", split=True)


def brands(value: object) -> str:
    """One string, as Snap's own v3 material has it (the Java v3 SDK's `CustomData.brands` is a string,
    and so is the v3 usage example); several brands given as a list are joined with commas."""
    return ",".join(_text_list(value, "brands", split=False))


def currency(value: object) -> str:
    """An ISO 4217 code on every event that carries one (`usd` -> `USD`; `dollars` is refused)."""
    code = _text(value, "currency").upper()
    if len(code) != 3 or not _is_currency(code):
        raise FieldError("currency must be an ISO 4217 code such as USD or EUR")
    return code


#: Codes looked up so far -> whether ISO 4217 has them: an export repeats a few currencies on every event,
#: and a pycountry lookup costs more than the rest of the field. Bounded, as the codes come from the data.
_CURRENCIES_SEEN: dict[str, bool] = {}
_SEEN_LIMIT = 1024


def _is_currency(code: str) -> bool:
    known = _CURRENCIES_SEEN.get(code)
    if known is None:
        known = pycountry.currencies.get(alpha_3=code) is not None
        if len(_CURRENCIES_SEEN) < _SEEN_LIMIT:
            _CURRENCIES_SEEN[code] = known
    return known


def order_id(value: object) -> str:
    return _text(value, "transactionId (order_id)")


def num_items(value: object) -> int:
    return _count(value, "numberOfItems (num_items)", 0)


def value(value: object) -> float | int:
    return amount(value, "price")


_CONTENT_RULES: Mapping[str, Callable[[object, str], object]] = {
    "id": _text,
    "quantity": lambda item, field: _count(item, field, 1),
    "item_price": amount,
    "brand": _text,
    "category": _text,
}


def contents(items: object) -> list[dict[str, Any]]:
    """Line items `{id, quantity, item_price, brand, category}`; each needs an id or is refused."""
    if not isinstance(items, list):
        raise FieldError("contents must be an array of objects with id, quantity and item_price")
    out: list[dict[str, Any]] = []
    for position, item in enumerate(items):
        where = f"contents[{position}]"
        if not isinstance(item, Mapping):
            raise FieldError(f"{where} must be an object with id, quantity and item_price")
        tidy = dict(item)
        for key, rule in _CONTENT_RULES.items():
            if key in tidy:
                tidy[key] = rule(tidy[key], f"{where}.{key}")
        if not tidy.get("id"):
            raise FieldError(f"{where}.id is missing")
        out.append(tidy)
    return out


def content_category(value: object) -> str:
    return _text(value, "itemCategory (content_category)")


def search_string(value: object) -> str:
    return _text(value, "searchString (search_string)")


def sign_up_method(value: object) -> str:
    return _text(value, "signUpMethod (sign_up_method)")


def app_id(value: object) -> str:
    return _text(value, "appId (app_id)")


#: iOS ATT status names beyond the yes/no truth table (`authorized` is the only yes).
_ATT_STATUS = {
    "authorized": True, "denied": False, "restricted": False, "not_determined": False, "notdetermined": False,
}  # fmt: skip


def tracking_enabled(status: object) -> bool:
    """iOS ATT status as Snap's boolean: a bool, 1/0, or the ATT names (`authorized` is the only yes)."""
    found = yes_no(status)
    if found is None and isinstance(status, str):
        found = _ATT_STATUS.get(status.strip().lower())
    if found is None:
        raise FieldError("advertiserTrackingEnabled must be true/false, 1/0 or an ATT status such as authorized")
    return found


def extinfo(items: object) -> list[str]:
    """The device array Snap requires for app events: 16 strings, the first `a2` (Android) or `i2` (iOS).

    A shorter array is padded with `""` (Snap's value for an unknown position) to 16; a longer one
    is refused, as its positions cannot be told apart.
    """
    if not isinstance(items, list) or not 1 <= len(items) <= EXTINFO_LENGTH:
        raise FieldError(
            f"extinfo must be an array of up to {EXTINFO_LENGTH} device strings, starting with 'a2' or 'i2'"
        )
    texts = ["" if item is None else _text(item, f"extinfo[{position}]") for position, item in enumerate(items)]
    if texts[0] not in EXTINFO_VERSIONS:
        raise FieldError("extinfo[0] must be 'a2' (Android) or 'i2' (iOS)")
    return texts + [""] * (EXTINFO_LENGTH - len(texts))
