"""Event names: Snap's own, Snap's alternative spellings, GA4, Segment and the user's mapping."""

from __future__ import annotations

import pytest

from src.events.names import GA4_NAMES, SEGMENT_NAMES, EventNameResolver

#: Snap's v3 event names, written out from reference/snap-api.md (not imported from the code).
SNAP_NAMES = [
    "PAGE_VIEW", "VIEW_CONTENT", "ADD_CART", "ADD_TO_WISHLIST", "ADD_BILLING", "START_CHECKOUT",
    "PURCHASE", "SEARCH", "LIST_VIEW", "SIGN_UP", "SAVE", "SUBSCRIBE", "AD_CLICK", "AD_VIEW",
    "COMPLETE_TUTORIAL", "LEVEL_COMPLETE", "INVITE", "LOGIN", "SHARE", "RESERVE",
    "ACHIEVEMENT_UNLOCKED", "SPENT_CREDITS", "RATE", "START_TRIAL", "APP_INSTALL", "APP_OPEN",
    "CUSTOM_EVENT_1", "CUSTOM_EVENT_2", "CUSTOM_EVENT_3", "CUSTOM_EVENT_4", "CUSTOM_EVENT_5",
]  # fmt: skip

resolver = EventNameResolver()


def spellings(name: str) -> list[str]:
    return [name, name.lower(), name.title(), f"  {name.lower()} ", name.lower().replace("_", " ")]


@pytest.mark.parametrize("name", SNAP_NAMES)
def test_every_snap_name_resolves_to_itself_in_any_case(name: str) -> None:
    for spelling in spellings(name):
        assert resolver.resolve(spelling) == name, spelling


@pytest.mark.parametrize(
    ("alias", "snap"),
    [
        ("ADD_TO_CART", "ADD_CART"),
        ("add_to_cart", "ADD_CART"),
        ("Add To Cart", "ADD_CART"),
        ("SPEND_CREDITS", "SPENT_CREDITS"),
        ("spend-credits", "SPENT_CREDITS"),
    ],
)
def test_seed_spellings_are_sent_as_snaps_v3_names(alias: str, snap: str) -> None:
    assert resolver.resolve(alias) == snap


@pytest.mark.parametrize(("ga4", "snap"), sorted(GA4_NAMES.items()))
def test_ga4_names(ga4: str, snap: str) -> None:
    assert snap in SNAP_NAMES
    assert resolver.resolve(ga4) == snap
    assert resolver.resolve(ga4.upper()) == snap


@pytest.mark.parametrize(("segment", "snap"), sorted(SEGMENT_NAMES.items()))
def test_segment_names(segment: str, snap: str) -> None:
    assert snap in SNAP_NAMES
    assert resolver.resolve(segment) == snap
    assert resolver.resolve(segment.lower().replace(" ", "_")) == snap


@pytest.mark.parametrize(
    ("ga4", "snap"),
    [
        ("purchase", "PURCHASE"),
        ("add_to_cart", "ADD_CART"),
        ("begin_checkout", "START_CHECKOUT"),
        ("view_item", "VIEW_CONTENT"),
        ("add_payment_info", "ADD_BILLING"),
        ("spend_virtual_currency", "SPENT_CREDITS"),
    ],
)
def test_common_ga4_names_independently(ga4: str, snap: str) -> None:
    assert resolver.resolve(ga4) == snap


@pytest.mark.parametrize(
    ("segment", "snap"),
    [
        ("Order Completed", "PURCHASE"),
        ("Product Added", "ADD_CART"),
        ("Checkout Started", "START_CHECKOUT"),
        ("Product Viewed", "VIEW_CONTENT"),
        ("Signed Up", "SIGN_UP"),
        ("Application Installed", "APP_INSTALL"),
    ],
)
def test_common_segment_names_independently(segment: str, snap: str) -> None:
    assert resolver.resolve(segment) == snap


def test_custom_mapping_maps_to_custom_event() -> None:
    names = EventNameResolver({"Newsletter Joined": "CUSTOM_EVENT_1"})
    assert names.resolve("Newsletter Joined") == "CUSTOM_EVENT_1"
    assert names.resolve("newsletter_joined") == "CUSTOM_EVENT_1"
    assert names.resolve("PURCHASE") == "PURCHASE"  # the built-in table is still there


def test_custom_mapping_wins_over_built_in_tables() -> None:
    names = EventNameResolver({"Order Completed": "CUSTOM_EVENT_1", "login": "custom_event_2"})
    assert names.resolve("Order Completed") == "CUSTOM_EVENT_1"
    assert names.resolve("login") == "CUSTOM_EVENT_2"
    assert resolver.resolve("Order Completed") == "PURCHASE"  # the default resolver is unaffected


@pytest.mark.parametrize(("target", "snap"), [("add_to_cart", "ADD_CART"), ("Spend Credits", "SPENT_CREDITS")])
def test_custom_mapping_target_may_use_an_accepted_spelling(target: str, snap: str) -> None:
    assert EventNameResolver({"basket": target}).resolve("basket") == snap


@pytest.mark.parametrize("target", ["NEWSLETTER", "CUSTOM_EVENT_6", ""])
def test_custom_mapping_to_a_non_snap_name_is_refused(target: str) -> None:
    with pytest.raises(ValueError, match="not a Snap event name"):
        EventNameResolver({"Newsletter Joined": target})


@pytest.mark.parametrize("name", ["NEWSLETTER_SIGNUP", "Order Refunded", "", "   ", "CUSTOM_EVENT_6"])
def test_unknown_names_resolve_to_none(name: str) -> None:
    assert resolver.resolve(name) is None
