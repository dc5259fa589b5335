"""Sample data for demo mode: realistic, free, and never sent anywhere."""

from __future__ import annotations

import time
from typing import Any

DEMO_PIXEL_ID = "demo-pixel-0000-0000-000000000000"
DEMO_AD_ACCOUNT_ID = "demo-ad-account-0000-000000000000"


def sample_events(event_source_url: str | None) -> list[dict[str, Any]]:
    url = event_source_url or "https://example.com/checkout"
    now = int(time.time())
    return [
        {
            "eventType": "PURCHASE",
            "eventTime": now - 120,
            "eventSourceUrl": f"{url}?ScCid=demo-click-id-7b3a7917",
            "email": "Person@Example.com",
            "phone": "+44 844 412 4653",
            "ipAddress": "203.0.113.7",
            "userAgent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
            "price": 42.5,
            "currency": "USD",
            "transactionId": "demo-order-1001",
            "itemIds": "sku-1,sku-2",
            "numberOfItems": 2,
        },
        {
            "eventType": "sign_up",
            "eventTime": now - 60,
            "eventSourceUrl": url,
            "email": "new.user@example.com",
            "firstName": "John",
            "country": "United States",
        },
        {
            "eventType": "Product Added",
            "eventSourceUrl": url,
            "ipAddress": "198.51.100.23",
            "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
            "uuid1": "57cf8a96-99ff-4260-a6b0-219820d2860e",
            "price": 19.99,
            "currency": "EUR",
        },
    ]


def sample_pixels(ad_account_id: str | None) -> list[dict[str, Any]]:
    account = ad_account_id or DEMO_AD_ACCOUNT_ID
    return [
        {
            "id": DEMO_PIXEL_ID,
            "name": "Demo web pixel",
            "ad_account_id": account,
            "status": "ACTIVE",
            "effective_status": "ACTIVE",
            "created_at": "2026-01-15T10:00:00.000Z",
            "updated_at": "2026-10-01T08:30:00.000Z",
        },
        {
            "id": "demo-pixel-1111-1111-111111111111",
            "name": "Demo staging pixel",
            "ad_account_id": account,
            "status": "PAUSED",
            "effective_status": "PAUSED",
            "created_at": "2025-06-02T12:00:00.000Z",
            "updated_at": "2026-03-11T17:45:00.000Z",
        },
    ]


def sample_quality_scores(pixel_id: str) -> dict[str, Any]:
    """A Signal Readiness answer in the shape `quality_scores` reads (see docs/snap-fidelity.md)."""
    return {
        "request_status": "SUCCESS",
        "request_id": "demo-request",
        "pixel_id": pixel_id,
        "event_quality_scores": [
            {
                "event_type": "PURCHASE",
                "action_source": "WEB",
                "event_source": "API",
                "score": "GREAT",
                "recommendations": [],
            },
            {
                "event_type": "SIGN_UP",
                "action_source": "WEB",
                "event_source": "API",
                "score": "GOOD",
                "recommendations": [
                    {"priority": "P1", "parameter": "sc_click_id",
                     "description": "Send the click ID (ScCid) from the landing URL with your events."},
                ],
            },
            {
                "event_type": "ADD_CART",
                "action_source": "WEB",
                "event_source": "API",
                "score": "POOR",
                "recommendations": [
                    {"priority": "P0", "parameter": "em", "description": "Send a hashed email address."},
                    {"priority": "P2", "parameter": "ph", "description": "Send a hashed phone number."},
                ],
            },
        ],
    }  # fmt: skip
