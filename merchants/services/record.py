"""The merchant onboarding record: validating and writing it (issue 4 "The merchant record").

One entry point for every source — the clerk's form, the batch import and the partner API — so a record is checked
the same way whoever sends it. Validation happens entirely before anything is written (design §5 rule 12).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Exists, OuterRef, Q

from aggpay.locks import transaction_lock, transaction_lock_scope
from aggpay.masking import mask_id_number
from channels.adapters.base import PRODUCTS
from merchants import validation as v
from merchants.models import (
    AccountType,
    ApplicationState,
    IdDocType,
    Merchant,
    MerchantState,
    OnboardingApplication,
    SubjectType,
)
from merchants.models.merchant import id_number_digest

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


def _branch_code(data: dict, key: str, *, prefix: str = "") -> str:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise v.InvalidRequest(f"{prefix + key} must be text", param=prefix + key)
    return v.validate_branch_code(value or "", field=prefix + key)


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


def _issued(data: dict, key: str, *, required: bool, today: dt.date, prefix: str = "") -> dt.date | None:
    """A document's valid-from date: not after ``today`` — a licence or ID card is valid from the day it was
    issued, which has happened (a later date is a mistyped year, and is named here, not as its valid-until)."""
    value = _date(data, key, required=required, prefix=prefix)
    if value is not None and value > today:
        name = prefix + key
        raise v.InvalidRequest(f"{name}: {value:%Y-%m-%d} is in the future — the date the document was issued",
                               param=name)
    return value


def _person_name(data: dict, key: str, *, prefix: str = "") -> str:
    return v.validate_person_name(_req(data, key, max_len=64, prefix=prefix), field=prefix + key)


def _choice(data: dict, key: str, choices, *, default: str | None = None, prefix: str = "") -> str:
    value = data.get(key, default)
    name = prefix + key
    if value not in choices.values:
        raise v.InvalidRequest(f"{name} must be one of {', '.join(choices.values)}", param=name)
    return value


class _Bad:
    """A field that failed its check: left out of the normalised record, and skipped by checks that need it."""

    def __repr__(self) -> str:
        return "<bad field>"


_BAD: Any = _Bad()


class _Problems(list[v.InvalidRequest]):
    """The ``InvalidRequest``s of one record, in the order the fields were checked."""

    def check(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``, or _BAD after noting its InvalidRequest. A field's own steps (required → text →
        length → format) stop at the first that fails: one problem per check, each a clerk can act on."""
        try:
            return fn(*args, **kwargs)
        except v.InvalidRequest as exc:
            self.append(exc)
            return _BAD

    def add(self, message: str, *, param: str | None) -> None:
        self.append(v.InvalidRequest(message, param=param))


def _good(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not _BAD}


@dataclass
class RecordCheck:
    """Every problem of a record (``problems``, in the order of the batch template's columns) and what passed.

    ``record`` holds the fields that passed, normalised; a field with a problem is left out of it (so ``record`` is
    complete only when ``problems`` is empty).
    """

    record: RecordInput
    problems: list[v.InvalidRequest]


def validate_record(data: dict[str, Any], *, partial_settlement_ok: bool = False) -> RecordInput:
    """Check a whole record; raise InvalidRequest naming the first bad field. Writes nothing.

    "First" is the first of ``validate_record_problems`` — the order of the batch template's columns — so the partner
    API's one ``param`` and the batch preview's list always agree.
    """
    checked = check_record(data, partial_settlement_ok=partial_settlement_ok)
    if checked.problems:
        raise checked.problems[0]
    return checked.record


def validate_record_problems(data: dict[str, Any], *, partial_settlement_ok: bool = False) -> list[v.InvalidRequest]:
    """Every problem of a record at once (empty: the record is valid), each field checked on its own."""
    return check_record(data, partial_settlement_ok=partial_settlement_ok).problems


def check_record(data: dict[str, Any], *, partial_settlement_ok: bool = False) -> RecordCheck:
    """Check every field of a record independently and collect the problems, in the template's column order.

    Where a check depends on another field (the licence on the subject type, the ID number's format on the ID type,
    the account holder on the account type and the names), it is skipped while that other field is bad: its answer
    would be a guess, and fixing the other field brings it back on the next check.
    """
    if not isinstance(data, dict):
        return RecordCheck(RecordInput(merchant={}, settlement=None),
                           [v.InvalidRequest("the record must be a JSON object", param=None)])
    found = _Problems()
    check = found.check
    today = dt.date.today()
    m: dict[str, Any] = {}

    subject_type = m["subject_type"] = check(_choice, data, "subject_type", SubjectType)
    m["legal_name"] = check(_req, data, "legal_name", max_len=128)
    m["short_name"] = check(_req, data, "short_name", max_len=64)
    if subject_type == SubjectType.MICRO:
        m.update(licence_no="", licence_valid_from=None, licence_valid_until=None)
        # A 小微 merchant has no licence: a licence number sent for it is a wrong subject type or a wrong record,
        # and dropping it would hide that (docs/api.md: input that does not apply is refused, not ignored).
        if data.get("licence_no") not in (None, ""):
            found.add("licence_no: a small/micro merchant has no business licence — leave it out, or choose the "
                      "subject type the licence is for", param="licence_no")
    else:
        # An unknown subject type leaves open whether there is a licence at all (小微 has none): check only what was
        # filled in, and ask for the rest once the subject type is right.
        known = subject_type is not _BAD
        if known or data.get("licence_no") not in (None, ""):
            m["licence_no"] = check(lambda: v.validate_licence_no(_req(data, "licence_no", max_len=32)))
        valid_from = m["licence_valid_from"] = check(_issued, data, "licence_valid_from", required=known,
                                                     today=today)
        until = m["licence_valid_until"] = check(_date, data, "licence_valid_until", required=False)
        if until not in (_BAD, None):
            if valid_from not in (_BAD, None) and until <= valid_from:
                found.add("licence_valid_until must be after licence_valid_from", param="licence_valid_until")
            elif until < today:
                found.add(f"licence_valid_until: the document expired on {until:%Y-%m-%d}",
                          param="licence_valid_until")
    # Required: WeChat needs it as the legal person's ID address (A.13 id_card_address), 小微 merchants included.
    m["registered_address"] = check(_req, data, "registered_address", max_len=256)
    m["legal_person_name"] = check(_person_name, data, "legal_person_name")
    id_type = m["legal_person_id_type"] = check(_choice, data, "legal_person_id_type", IdDocType,
                                                default=IdDocType.ID_CARD)
    id_number = check(_req, data, "legal_person_id_number", max_len=20)
    if id_number is not _BAD:
        # The number's format depends on the document type: not judged while the type is unknown.
        # The legal person of any subject type, and the owner of a 小微 merchant, must be an adult.
        id_number = _BAD if id_type is _BAD else check(v.validate_id_number, id_number, id_type=id_type,
                                                       today=today)
    m["legal_person_id_number"] = id_number
    id_from = m["legal_person_id_valid_from"] = check(_issued, data, "legal_person_id_valid_from", required=True,
                                                      today=today)
    id_until = m["legal_person_id_valid_until"] = check(_date, data, "legal_person_id_valid_until", required=False)
    if id_until not in (_BAD, None):
        # As for the licence: a document valid until before it was issued is a mistyped date (channel-protocols.md
        # A.13 id_card_info: card_period_end follows card_period_begin).
        if id_from not in (_BAD, None) and id_until <= id_from:
            found.add("legal_person_id_valid_until must be after legal_person_id_valid_from",
                      param="legal_person_id_valid_until")
        elif id_until < today:
            found.add(f"legal_person_id_valid_until: the document expired on {id_until:%Y-%m-%d}",
                      param="legal_person_id_valid_until")
    m["contact_name"] = check(_person_name, data, "contact_name")
    m["contact_phone"] = check(lambda: v.validate_mobile(_req(data, "contact_phone", max_len=20)))
    m["contact_email"] = check(v.validate_email, data["contact_email"]) if data.get("contact_email") else ""
    m["service_phone"] = check(lambda: v.validate_service_phone(_req(data, "service_phone", max_len=20)))
    m["mcc"] = check(v.validate_mcc, data.get("mcc", ""))
    m["industry"] = check(_opt, data, "industry", max_len=64)
    m["requested_products"] = check(_products, data.get("requested_products"))
    m["scenarios"], kinds = _check_scenarios(found, data.get("scenarios") or [])
    stores = _check_stores(found, data.get("stores") or [], store_scenario="store" in kinds)

    settlement = None
    raw = data.get("settlement_account")
    if raw is None and not partial_settlement_ok:
        found.add("settlement_account is required", param="settlement_account")
    if raw is not None:
        settlement = _check_settlement(found, raw, subject_type=subject_type, legal_name=m["legal_name"],
                                       legal_person_name=m["legal_person_name"])
    return RecordCheck(RecordInput(merchant=_good(m), settlement=settlement, stores=stores), list(found))


def _products(products: Any) -> list[str]:
    if not isinstance(products, list) or not products:
        raise v.InvalidRequest("requested_products must list at least one product", param="requested_products")
    unknown = [p for p in products if p not in PRODUCTS]
    if unknown:
        raise v.InvalidRequest(f"requested_products: unknown product(s) {', '.join(map(str, unknown))}",
                               param="requested_products")
    return sorted(set(products))


def _check_scenarios(found: _Problems, scenarios: Any) -> tuple[Any, set[str]]:
    """The clean scenarios (_BAD if any has a problem) and the scenario types that were recognised."""
    if not isinstance(scenarios, list) or not scenarios:
        found.add("scenarios must list at least one business scenario", param="scenarios")
        return _BAD, set()
    clean, kinds, before = [], set(), len(found)
    for i, scenario in enumerate(scenarios):
        prefix = f"scenarios[{i}]."
        if not isinstance(scenario, dict):
            found.add(f"scenarios[{i}] must be an object", param=f"scenarios[{i}]")
            continue
        kind = scenario.get("type")
        if kind in SCENARIO_TYPES:
            kinds.add(kind)
        else:
            found.add(f"{prefix}type must be one of {', '.join(SCENARIO_TYPES)}", param=prefix + "type")
        item = {"type": kind, "name": found.check(_req, scenario, "name", max_len=64, prefix=prefix)}
        # Whether a URL or an appid is needed depends on the type: neither is asked for while the type is unknown.
        if kind == "website":
            item["url"] = found.check(_website_url, scenario, prefix=prefix)
        elif kind in ("app", "mini_program", "official_account"):
            item["appid"] = found.check(_req, scenario, "appid", max_len=64, prefix=prefix)
        clean.append(item)
    return (clean if len(found) == before else _BAD), kinds


def _website_url(scenario: dict, *, prefix: str) -> str:
    url = _req(scenario, "url", max_len=256, prefix=prefix)
    if not url.startswith(("http://", "https://")):
        raise v.InvalidRequest(f"{prefix}url must start with http:// or https://", param=prefix + "url")
    return url


def _check_stores(found: _Problems, raw_stores: Any, *, store_scenario: bool) -> list[dict[str, Any]]:
    stores = []
    for i, store in enumerate(raw_stores):
        prefix = f"stores[{i}]."
        if not isinstance(store, dict):
            found.add(f"stores[{i}] must be an object", param=f"stores[{i}]")
            continue
        stores.append({
            "store_no": found.check(_req, store, "store_no", max_len=32, prefix=prefix),
            "name": found.check(_req, store, "name", max_len=64, prefix=prefix),
            "area_code": found.check(v.validate_area_code, store.get("area_code", ""), field=prefix + "area_code"),
            "address": found.check(_req, store, "address", max_len=256, prefix=prefix),
        })
    if store_scenario and not raw_stores:
        found.add("stores: an offline store scenario needs at least one store with its address", param="stores")
    numbers = [s["store_no"] for s in stores if s["store_no"] is not _BAD]
    if len(set(numbers)) != len(numbers):
        found.add("stores: store_no must be unique within the merchant", param="stores")
    return [_good(store) for store in stores]


def validate_settlement_account(raw: Any, *, subject_type: str, legal_name: str,
                                legal_person_name: str) -> dict[str, Any]:
    """Check a settlement account on its own (an active merchant's change); raise the first problem."""
    found = _Problems()
    clean = _check_settlement(found, raw, subject_type=subject_type, legal_name=legal_name,
                              legal_person_name=legal_person_name)
    if found:
        raise found[0]
    return clean


def _check_settlement(found: _Problems, raw: Any, *, subject_type: Any, legal_name: Any,
                      legal_person_name: Any) -> dict[str, Any]:
    prefix = "settlement_account."
    if not isinstance(raw, dict):
        found.add("settlement_account must be an object", param="settlement_account")
        return {}
    check = found.check
    account_type = check(_choice, raw, "account_type", AccountType, prefix=prefix)
    # Channel rules (A.13 bank_account_info): enterprises settle to a corporate account in the company's name;
    # small/micro merchants to the legal person's personal account.
    if subject_type == SubjectType.ENTERPRISE and account_type not in (_BAD, AccountType.CORPORATE):
        found.add("settlement_account.account_type: an enterprise settles to a corporate account",
                  param=prefix + "account_type")
        account_type = _BAD
    if subject_type == SubjectType.MICRO and account_type not in (_BAD, AccountType.PERSONAL):
        found.add("settlement_account.account_type: a small/micro merchant settles to a personal account",
                  param=prefix + "account_type")
        account_type = _BAD
    clean = {
        "account_type": account_type,
        "bank_name": check(_req, raw, "bank_name", max_len=64, prefix=prefix),
        "bank_branch": check(_opt, raw, "bank_branch", max_len=128, prefix=prefix),
        "bank_branch_code": check(_branch_code, raw, "bank_branch_code", prefix=prefix),
        "account_number": check(v.validate_account_number, raw.get("account_number", ""),
                                field=prefix + "account_number"),
    }
    holder = clean["account_holder"] = check(_req, raw, "account_holder", max_len=128, prefix=prefix)
    # Whose name the holder must be depends on the account type, and that name must itself be valid to compare.
    if holder is not _BAD and account_type is not _BAD:
        expected = legal_name if account_type == AccountType.CORPORATE else legal_person_name
        if expected is not _BAD and holder != expected:
            which = "the legal name" if account_type == AccountType.CORPORATE else "the legal person's name"
            found.add(f"settlement_account.account_holder must be {which}", param=prefix + "account_holder")
    return _good(clean)


def standing_merchants():
    """Merchants that stand in the way of onboarding the same business or person again: every merchant but a closed
    one and one risk rejected (still ``onboarding``, its application rejected and none open). A closed or rejected
    merchant is history — the business may legitimately come back — while one being drafted, reviewed, contracted,
    active or frozen is the same business onboarded twice (a frozen one especially must not get round its freeze)."""
    rejected = OnboardingApplication.objects.filter(merchant=OuterRef("pk"), state=ApplicationState.REJECTED)
    not_rejected = OnboardingApplication.objects.filter(merchant=OuterRef("pk")).exclude(
        state=ApplicationState.REJECTED)
    return Merchant.objects.exclude(state=MerchantState.CLOSED).exclude(
        Q(state=MerchantState.ONBOARDING) & Exists(rejected) & ~Exists(not_rejected))


def _identity(merchant: dict[str, Any]) -> tuple[str, str] | None:
    """What identifies the business of a record's merchant fields, as (the field naming it, its lookup value): the
    licence number, or for a 小微 merchant (no licence) the digest of its owner's ID number; None when neither is
    there (a field that failed its own check is left out of the record, and compared once it is right)."""
    licence = merchant.get("licence_no") or ""
    id_number = merchant.get("legal_person_id_number") or ""
    if licence:
        return "licence_no", licence
    if merchant.get("subject_type") == SubjectType.MICRO and id_number:
        return "legal_person_id_number", id_number_digest(id_number)
    return None


def check_record_duplicates(*, merchant: dict[str, Any], exclude_merchant_id: int | None = None,
                            partner: Merchant | None = None) -> list[v.InvalidRequest]:
    """The onboarded merchants a record duplicates, as problems naming the field (empty: none). Writes nothing.

    ``merchant`` is a record's normalised merchant fields (``RecordInput.merchant``, or the part of it that passed
    ``check_record``): a business with a licence is identified by its licence number, a 小微 merchant (no licence) by
    its owner's ID number, found through its lookup digest (the number is encrypted). An enterprise's legal person
    may run other businesses, so ID numbers are compared among 小微 merchants only. ``exclude_merchant_id`` is the
    merchant being edited. The one check behind the clerk's form, the batch import and the partner API; a service
    about to write the record calls it through ``refuse_record_duplicates``, which first locks the identity.

    ``partner`` is who asks through the partner API: another partner's merchant (or one onboarded by clerks) is not
    named to it — it learns only that the business is already onboarded (design §5 rule 11). Staff (None) see the
    merchant number; the ID number is masked for everyone.
    """
    identity = _identity(merchant)
    if identity is None:
        return []
    param, value = identity
    standing = standing_merchants()
    if exclude_merchant_id is not None:
        standing = standing.exclude(pk=exclude_merchant_id)
    if param == "licence_no":
        found = standing.filter(licence_no=value)
    else:
        found = standing.filter(subject_type=SubjectType.MICRO, legal_person_id_digest=value)
    existing = found.order_by("created_at", "pk").values("merchant_no", "partner_id").first()
    if existing is None:
        return []
    named = partner is None or existing["partner_id"] == partner.pk
    if param == "licence_no":
        message = (f"already onboarded: merchant {existing['merchant_no']} has this licence number" if named else
                   "a merchant with this licence number is already onboarded")
    else:
        id_number = merchant["legal_person_id_number"]
        message = (f"already onboarded: 小微 merchant {existing['merchant_no']} has this owner ID number "
                   f"({mask_id_number(id_number)})" if named else
                   "a 小微 merchant with this owner ID number is already onboarded")
    return [v.InvalidRequest(f"{param}: {message}", param=param)]


# The lock scope of merchants' identities (licence number, 小微 owner's ID digest): refuse_record_duplicates locks one
# identity; a batch import locks them all at once (lock_record_identities).
IDENTITY_SCOPE = "merchants.identity"


def lock_record_identities() -> None:
    """For a transaction that writes many records (a batch import): every identity locked with one lock until its
    commit, instead of one lock per record (``aggpay.locks.transaction_lock_scope``). Creates of single records wait
    meanwhile; the batch's own records need no further lock."""
    transaction_lock_scope(IDENTITY_SCOPE)


def refuse_record_duplicates(*, merchant: dict[str, Any], exclude_merchant_id: int | None = None,
                             partner: Merchant | None = None) -> None:
    """``check_record_duplicates`` for a service about to write the record: raise its first problem.

    The check and the write must be one step, or two creates of one business sent at once both find nothing and
    both insert. So the record's identity (licence number, or 小微 owner's ID digest) is locked first, for the rest
    of the transaction (``aggpay.locks.transaction_lock``): a second transaction writing the same identity waits
    here until the first commits, then finds its merchant. Call it inside the transaction that writes the record,
    before writing it.
    """
    identity = _identity(merchant)
    if identity is not None:
        transaction_lock(IDENTITY_SCOPE + ":" + ":".join(identity), scope=IDENTITY_SCOPE)
    problems = check_record_duplicates(merchant=merchant, exclude_merchant_id=exclude_merchant_id, partner=partner)
    if problems:
        raise problems[0]


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
