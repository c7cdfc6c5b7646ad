"""Shared bits of the promotion tests: a valid prediction request."""

from __future__ import annotations

PAYLOAD = {
    "entity_id": "card-1",
    "features": {
        "amount": 42.0,
        "merchant_risk": 0.4,
        "hour": 13,
        "card_age_days": 400,
        "txn_count_24h": 2,
        "merchant_category": "grocery",
        "country": "US",
        "channel": "online",
    },
}
