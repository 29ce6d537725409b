"""The print an idempotent create keeps of what it was asked (design §5 rule 5): sha256 of the parameters as canonical
JSON — keys sorted, no spaces, text as is — so a retry asking the same thing gives the same print. Orders
(trades.services.orders) and partner creates (merchants.services.partner) store it; changing the form would make
every stored print differ from its retry's."""

from __future__ import annotations

import hashlib
import json


def request_print(fields: dict) -> str:
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
