"""A match-quality grade from the identifiers an event carries (which, never their values).

Snap matches first on hashed email and phone (and the mobile ad id in apps); a click id or the
`_scid` cookie ties the event to the ad click itself; IP with user agent is a weak probabilistic
match; names and address only help alongside the others.

| grade | when |
|---|---|
| excellent | email, phone or mobile ad id, plus click id or `_scid` cookie |
| good | email, phone or mobile ad id, plus IP and user agent or other personal data |
| fair | email, phone or mobile ad id alone; or click id or cookie with IP and user agent |
| poor | IP and user agent only |
| none | nothing Snap can match on |
"""

from __future__ import annotations

from collections.abc import Collection

from ..fields import PERSONAL_KEYS

GRADES = ("excellent", "good", "fair", "poor", "none")


def grade(keys: Collection[str]) -> str:
    strong = "em" in keys or "ph" in keys or "madid" in keys
    click = "sc_click_id" in keys or "sc_cookie1" in keys
    network = "client_ip_address" in keys and "client_user_agent" in keys
    if strong and click:
        return "excellent"
    if strong and (network or not PERSONAL_KEYS.isdisjoint(keys)):
        return "good"
    if strong or (click and network):
        return "fair"
    if network:
        return "poor"
    return "none"
