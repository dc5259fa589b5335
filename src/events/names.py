"""Snap's event names, and the other spellings people's data already uses for them."""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..rules.identifiers import masked

SNAP_EVENT_NAMES: tuple[str, ...] = (
    "PAGE_VIEW", "VIEW_CONTENT", "ADD_CART", "ADD_TO_WISHLIST", "ADD_BILLING", "START_CHECKOUT",
    "PURCHASE", "SEARCH", "LIST_VIEW", "SIGN_UP", "SAVE", "SUBSCRIBE", "AD_CLICK", "AD_VIEW",
    "COMPLETE_TUTORIAL", "LEVEL_COMPLETE", "INVITE", "LOGIN", "SHARE", "RESERVE",
    "ACHIEVEMENT_UNLOCKED", "SPENT_CREDITS", "RATE", "START_TRIAL", "APP_INSTALL", "APP_OPEN",
    "CUSTOM_EVENT_1", "CUSTOM_EVENT_2", "CUSTOM_EVENT_3", "CUSTOM_EVENT_4", "CUSTOM_EVENT_5",
)  # fmt: skip

#: Snap's own alternative spellings (seed 004 lists them; Snap's tag and every integration send the
#: names on the right).
SNAP_ALIASES: Mapping[str, str] = {"ADD_TO_CART": "ADD_CART", "SPEND_CREDITS": "SPENT_CREDITS"}

#: GA4 recommended events.
GA4_NAMES: Mapping[str, str] = {
    "purchase": "PURCHASE",
    "add_to_cart": "ADD_CART",
    "begin_checkout": "START_CHECKOUT",
    "view_item": "VIEW_CONTENT",
    "view_item_list": "LIST_VIEW",
    "sign_up": "SIGN_UP",
    "search": "SEARCH",
    "view_search_results": "SEARCH",
    "add_to_wishlist": "ADD_TO_WISHLIST",
    "add_payment_info": "ADD_BILLING",
    "login": "LOGIN",
    "generate_lead": "SIGN_UP",
    "share": "SHARE",
    "page_view": "PAGE_VIEW",
    "tutorial_complete": "COMPLETE_TUTORIAL",
    "level_end": "LEVEL_COMPLETE",
    "unlock_achievement": "ACHIEVEMENT_UNLOCKED",
    "spend_virtual_currency": "SPENT_CREDITS",
    "select_promotion": "AD_CLICK",
    "view_promotion": "AD_VIEW",
}

#: Segment / RudderStack e-commerce and lifecycle spec.
SEGMENT_NAMES: Mapping[str, str] = {
    "Order Completed": "PURCHASE",
    "Product Added": "ADD_CART",
    "Checkout Started": "START_CHECKOUT",
    "Product Viewed": "VIEW_CONTENT",
    "Product List Viewed": "LIST_VIEW",
    "Product Category Viewed": "LIST_VIEW",
    "Products Searched": "SEARCH",
    "Product Added to Wishlist": "ADD_TO_WISHLIST",
    "Payment Info Entered": "ADD_BILLING",
    "Signed Up": "SIGN_UP",
    "Signed In": "LOGIN",
    "Product Shared": "SHARE",
    "Cart Shared": "SHARE",
    "Product Reviewed": "RATE",
    "Subscription Started": "SUBSCRIBE",
    "Trial Started": "START_TRIAL",
    "Promotion Clicked": "AD_CLICK",
    "Promotion Viewed": "AD_VIEW",
    "Application Installed": "APP_INSTALL",
    "Application Opened": "APP_OPEN",
    "Page Viewed": "PAGE_VIEW",
}

_SEPARATORS = re.compile(r"[\s\-_]+")
_SEEN_LIMIT = 4096


def _key(name: str) -> str:
    """Case, spaces, hyphens and underscores do not matter: `Order Completed` = `order_completed`."""
    return _SEPARATORS.sub("_", name.strip()).upper()


class EventNameResolver:
    """Maps whatever the user's data calls an event to Snap's name; the user's own table wins."""

    def __init__(self, custom: Mapping[str, str] | None = None) -> None:
        table: dict[str, str] = {_key(name): name for name in SNAP_EVENT_NAMES}
        for source in (SNAP_ALIASES, GA4_NAMES, SEGMENT_NAMES):
            table.update({_key(alias): snap for alias, snap in source.items()})
        for alias, snap in (custom or {}).items():
            target = table.get(_key(snap))
            if target is None:
                raise ValueError(f"maps {alias!r} to {snap!r}, which is not a Snap event name")
            table[_key(alias)] = target
        self._table = table
        self._seen: dict[str, str | None] = {}  # names as written -> resolved; an export repeats a few names

    def resolve(self, name: str) -> str | None:
        try:
            return self._seen[name]
        except KeyError:
            resolved = self._table.get(_key(name))
            if len(self._seen) < _SEEN_LIMIT:
                self._seen[name] = resolved
            return resolved


def unknown_event_message(name: str) -> str:
    name = masked(name)  # before it is cut: a cut address would no longer look like one
    name = name if len(name) <= 100 else name[:99] + "…"
    return (
        f"event name {name!r} is not one Snap accepts; use one of {', '.join(SNAP_EVENT_NAMES)}, "
        "a GA4 or Segment e-commerce name, or map it with eventNameMapping"
    )
