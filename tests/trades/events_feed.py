"""How a merchant reads GET /api/v1/events in the tests (merchant-api.md "Notifications and events")."""

from __future__ import annotations


def new_events(api, seen: set[str], *, limit: int = 100) -> list[dict]:
    """The merchant's catch-up: read newest first, page by page, until an event already seen."""
    found, cursor = [], None
    while True:
        page = api.get(f"/api/v1/events?limit={limit}" + (f"&starting_after={cursor}" if cursor else "")).json()
        for item in page["data"]:
            if item["id"] in seen:
                return found
            found.append(item)
        if not page["has_more"]:
            return found
        cursor = page["data"][-1]["id"]
