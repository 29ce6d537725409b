"""The merchant onboarding record: validating and writing it (issue 4 "The merchant record").

One entry point for every source — the clerk's form, the batch import and the partner API — so a record is checked
the same way whoever sends it. Validation happens entirely before anything is written (design §5 rule 12).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from channels.adapters.base import PRODUCTS
from merchants import validation as v
from merchants.models import AccountType, IdDocType, SubjectType

SCENARIO_TYPES = ("store", "website", "app", "mini_program", "official_account")
ONLINE_SCENARIOS = ("website", "app", "mini_program", "official_account")


@dataclass
class RecordInput:
    """A validated, normalised onboarding record."""

    merchant: dict[str, Any]
    settlement: dict[str, Any] | None
    stores: list[dict[str, Any]] = field(default_factory=list)


def _req(data: dict, key: str, *, max_len: int, prefix: str = "") -> str:
    value = data.get(key)
    name = prefix + key
    if value is None or (isinstance(value, str) and not value.strip()):
        raise v.InvalidRequest(f"{name} is required", param=name)
    if not isinstance(value, str):
        raise v.InvalidRequest(f"{name} must be text", param=name)
    value = value.strip()
    if len(value) > max_len:
        raise v.InvalidRequest(f"{name} is longer than {max_len} characters", param=name)
    return value


def _opt(data: dict, key: str, *, max_len: int, prefix: str = "") -> str:
    value = data.get(key)
    if value in (None, ""):
        return ""
    return _req(data, key, max_len=max_len, prefix=prefix)


def _date(data: dict, key: str, *, required: bool, prefix: str = "") -> dt.date | None:
    value = data.get(key)
    name = prefix + key
    if value in (None, "", "long_term", "长期"):
        if required:
            raise v.InvalidRequest(f"{name} is required (YYYY-MM-DD)", param=name)
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise v.InvalidRequest(f"{name} must be a date written YYYY-MM-DD", param=name)


def _choice(data: dict, key: str, choices, *, default: str | None = None, prefix: str = "") -> str:
    value = data.get(key, default)
    name = prefix + key
    if value not in choices.values:
        raise v.InvalidRequest(f"{name} must be one of {', '.join(choices.values)}", param=name)
    return value


def validate_record(data: dict[str, Any], *, partial_settlement_ok: bool = False) -> RecordInput:
    """Check a whole record; raise InvalidRequest naming the first bad field. Writes nothing."""
    if not isinstance(data, dict):
        raise v.InvalidRequest("the record must be a JSON object", param=None)
    subject_type = _choice(data, "subject_type", SubjectType)
    merchant: dict[str, Any] = {
        "subject_type": subject_type,
        "legal_name": _req(data, "legal_name", max_len=128),
        "short_name": _req(data, "short_name", max_len=64),
        "mcc": v.validate_mcc(data.get("mcc", "")),
        "industry": _opt(data, "industry", max_len=64),
        "service_phone": v.validate_service_phone(_req(data, "service_phone", max_len=20)),
        # Required: WeChat needs it as the legal person's ID address (A.13 id_card_address), 小微 merchants included.
        "registered_address": _req(data, "registered_address", max_len=256),
    }
    if subject_type == SubjectType.MICRO:
        merchant.update(licence_no="", licence_valid_from=None, licence_valid_until=None)
    else:
        merchant["licence_no"] = v.validate_licence_no(_req(data, "licence_no", max_len=32))
        merchant["licence_valid_from"] = _date(data, "licence_valid_from", required=True)
        merchant["licence_valid_until"] = _date(data, "licence_valid_until", required=False)
        if merchant["licence_valid_until"] and merchant["licence_valid_until"] <= merchant["licence_valid_from"]:
            raise v.InvalidRequest("licence_valid_until must be after licence_valid_from", param="licence_valid_until")
    id_type = _choice(data, "legal_person_id_type", IdDocType, default=IdDocType.ID_CARD)
    merchant.update(
        legal_person_name=_req(data, "legal_person_name", max_len=64),
        legal_person_id_type=id_type,
        legal_person_id_number=v.validate_id_number(_req(data, "legal_person_id_number", max_len=20), id_type=id_type),
        legal_person_id_valid_from=_date(data, "legal_person_id_valid_from", required=True),
        legal_person_id_valid_until=_date(data, "legal_person_id_valid_until", required=False),
        contact_name=_req(data, "contact_name", max_len=64),
        contact_phone=v.validate_mobile(_req(data, "contact_phone", max_len=20)),
        contact_email=v.validate_email(data["contact_email"]) if data.get("contact_email") else "",
    )
    today = dt.date.today()
    for key in ("licence_valid_until", "legal_person_id_valid_until"):
        if merchant.get(key) and merchant[key] < today:
            raise v.InvalidRequest(f"{key}: the document expired on {merchant[key]:%Y-%m-%d}", param=key)

    products = data.get("requested_products")
    if not isinstance(products, list) or not products:
        raise v.InvalidRequest("requested_products must list at least one product", param="requested_products")
    unknown = [p for p in products if p not in PRODUCTS]
    if unknown:
        raise v.InvalidRequest(f"requested_products: unknown product(s) {', '.join(map(str, unknown))}",
                               param="requested_products")
    merchant["requested_products"] = sorted(set(products))

    scenarios = data.get("scenarios") or []
    if not isinstance(scenarios, list) or not scenarios:
        raise v.InvalidRequest("scenarios must list at least one business scenario", param="scenarios")
    clean_scenarios = []
    for i, scenario in enumerate(scenarios):
        prefix = f"scenarios[{i}]."
        if not isinstance(scenario, dict):
            raise v.InvalidRequest(f"scenarios[{i}] must be an object", param=f"scenarios[{i}]")
        kind = scenario.get("type")
        if kind not in SCENARIO_TYPES:
            raise v.InvalidRequest(f"{prefix}type must be one of {', '.join(SCENARIO_TYPES)}", param=prefix + "type")
        item = {"type": kind, "name": _req(scenario, "name", max_len=64, prefix=prefix)}
        if kind == "website":
            url = _req(scenario, "url", max_len=256, prefix=prefix)
            if not url.startswith(("http://", "https://")):
                raise v.InvalidRequest(f"{prefix}url must start with http:// or https://", param=prefix + "url")
            item["url"] = url
        elif kind in ("app", "mini_program", "official_account"):
            item["appid"] = _req(scenario, "appid", max_len=64, prefix=prefix)
        clean_scenarios.append(item)
    merchant["scenarios"] = clean_scenarios

    stores = []
    for i, store in enumerate(data.get("stores") or []):
        prefix = f"stores[{i}]."
        if not isinstance(store, dict):
            raise v.InvalidRequest(f"stores[{i}] must be an object", param=f"stores[{i}]")
        stores.append({
            "store_no": _req(store, "store_no", max_len=32, prefix=prefix),
            "name": _req(store, "name", max_len=64, prefix=prefix),
            "area_code": v.validate_area_code(store.get("area_code", ""), field=prefix + "area_code"),
            "address": _req(store, "address", max_len=256, prefix=prefix),
        })
    if any(s["type"] == "store" for s in clean_scenarios) and not stores:
        raise v.InvalidRequest("stores: an offline store scenario needs at least one store with its address",
                               param="stores")
    if len({s["store_no"] for s in stores}) != len(stores):
        raise v.InvalidRequest("stores: store_no must be unique within the merchant", param="stores")

    settlement = None
    raw = data.get("settlement_account")
    if raw is None and not partial_settlement_ok:
        raise v.InvalidRequest("settlement_account is required", param="settlement_account")
    if raw is not None:
        settlement = validate_settlement_account(raw, subject_type=subject_type, legal_name=merchant["legal_name"],
                                                 legal_person_name=merchant["legal_person_name"])
    return RecordInput(merchant=merchant, settlement=settlement, stores=stores)


def validate_settlement_account(raw: Any, *, subject_type: str, legal_name: str,
                                legal_person_name: str) -> dict[str, Any]:
    prefix = "settlement_account."
    if not isinstance(raw, dict):
        raise v.InvalidRequest("settlement_account must be an object", param="settlement_account")
    account_type = _choice(raw, "account_type", AccountType, prefix=prefix)
    holder = _req(raw, "account_holder", max_len=128, prefix=prefix)
    # Channel rules (A.13 bank_account_info): enterprises settle to a corporate account in the company's name;
    # small/micro merchants to the legal person's personal account.
    if subject_type == SubjectType.ENTERPRISE and account_type != AccountType.CORPORATE:
        raise v.InvalidRequest("settlement_account.account_type: an enterprise settles to a corporate account",
                               param=prefix + "account_type")
    if subject_type == SubjectType.MICRO and account_type != AccountType.PERSONAL:
        raise v.InvalidRequest("settlement_account.account_type: a small/micro merchant settles to a personal account",
                               param=prefix + "account_type")
    expected = legal_name if account_type == AccountType.CORPORATE else legal_person_name
    if holder != expected:
        which = "the legal name" if account_type == AccountType.CORPORATE else "the legal person's name"
        raise v.InvalidRequest(f"settlement_account.account_holder must be {which}", param=prefix + "account_holder")
    return {
        "account_type": account_type,
        "bank_name": _req(raw, "bank_name", max_len=64, prefix=prefix),
        "bank_branch": _opt(raw, "bank_branch", max_len=128, prefix=prefix),
        "bank_branch_code": _opt(raw, "bank_branch_code", max_len=16, prefix=prefix),
        "account_number": v.validate_account_number(raw.get("account_number", ""), field=prefix + "account_number"),
        "account_holder": holder,
    }


def required_documents(*, subject_type: str, scenarios: list[dict]) -> set[str]:
    """Which document types an application needs before it can be submitted (A.13 / B.7 required images)."""
    needed = {"id_front", "id_back", "bank_card"}
    if subject_type != SubjectType.MICRO:
        needed.add("licence")
    kinds = {s["type"] for s in scenarios}
    if "store" in kinds or subject_type == SubjectType.MICRO:
        needed |= {"store_front", "store_inside"}
    if kinds & set(ONLINE_SCENARIOS):
        needed.add("site_screenshot")
    return needed
