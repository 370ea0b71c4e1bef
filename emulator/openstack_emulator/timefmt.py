"""The date formats each OpenStack service speaks (all UTC), from emulated epoch seconds."""

from __future__ import annotations

import datetime as dt

UTC = dt.timezone.utc
API_DATE = "%Y-%m-%d %H:%M"  # what Blazar accepts (blazarclient's API_DATE_FORMAT)
LEASE_DATE = "%Y-%m-%dT%H:%M:%S.%f"  # what Blazar answers (LEASE_DATE_FORMAT)
DB_DATE = "%Y-%m-%d %H:%M:%S"  # created_at / updated_at of Blazar objects


def utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, UTC)


def iso_z(ts: float) -> str:
    """Nova/Neutron/Glance timestamps: `2026-12-02T17:15:00Z`."""
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def keystone(ts: float) -> str:
    """Keystone's `expires_at`/`issued_at`: microseconds and a Z."""
    return utc(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease(ts: float) -> str:
    return utc(ts).strftime(LEASE_DATE)


def db(ts: float) -> str:
    return utc(ts).strftime(DB_DATE)


def parse_api(text: str) -> float:
    """`%Y-%m-%d %H:%M` (UTC) → epoch seconds; ValueError otherwise."""
    return dt.datetime.strptime(text, API_DATE).replace(tzinfo=UTC).timestamp()


def minute_floor(ts: float) -> float:
    return ts - ts % 60
