"""One-code-pay services: generating store codes (staff), and the payer's steps — OAuth account, amount, order.

The payer's order goes through ``order_create`` like any API order (issue 5), so routing, risk and the fee snapshot
apply unchanged; the merchant's own payments app is the app of record, so its notify_url hears about it.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal

from django.core import signing
from django.db import transaction

from aggpay.audit import audit_log
from aggpay.errors import InvalidRequest, NotFound, ProductNotAvailable
from channels.models import ChannelAccount
from channels.routing import choose
from merchants.models import Merchant, MerchantApp, Store
from trades.models import Order
from trades.models.store_codes import StoreCode
from trades.services.cashier import PAYER_KEYS, WALLET_PRODUCTS
from trades.services.orders import order_create

MAX_CODES_PER_STORE = 50
MAX_AMOUNT_FEN = 100_000_000  # ¥1,000,000: far above any contract limit; routing applies the real ones
_AMOUNT = re.compile(r"^(\d{1,9})(?:\.(\d{1,2}))?$")
_STATE_SALT = "aggpay.trades.onecode.oauth"
STATE_MAX_AGE = 600  # seconds a payer may take at the wallet's OAuth screen


# --- staff --------------------------------------------------------------------------------------------------
def storecodes_generate(*, merchant: Merchant, store_ids: list[int], per_store: int, actor) -> list[StoreCode]:
    """Generate ``per_store`` new codes for each of the merchant's stores in one batch (audited)."""
    if not 1 <= per_store <= MAX_CODES_PER_STORE:
        raise InvalidRequest(f"between 1 and {MAX_CODES_PER_STORE} codes per store", param="per_store")
    stores = list(Store.objects.filter(merchant=merchant, pk__in=store_ids).order_by("store_no"))
    if not stores or len(stores) != len(set(store_ids)):
        raise InvalidRequest("choose one or more stores of this merchant", param="stores")
    batch = "b_" + secrets.token_hex(8)
    with transaction.atomic():
        codes = StoreCode.objects.bulk_create([
            StoreCode(merchant=merchant, store=store, batch=batch, created_by=actor)
            for store in stores for _ in range(per_store)])
        audit_log(actor=actor, action="storecode.generate", target=merchant,
                  data={"batch": batch, "stores": [s.store_no for s in stores], "count": len(codes)})
    return codes


def storecode_set_active(*, code_id: int, active: bool, actor, reason: str = "") -> StoreCode:
    """Retire (or restore) a code, e.g. a sticker that was stolen or replaced (audited)."""
    with transaction.atomic():
        code = StoreCode.objects.select_for_update().get(pk=code_id)
        if code.active != active:
            code.active = active
            code.save(update_fields=["active"])
            audit_log(actor=actor, action="storecode.activate" if active else "storecode.deactivate",
                      target=code, reason=reason, data={"code": code.code})
    return code


# --- payer --------------------------------------------------------------------------------------------------
def storecode_for_payer(code: str) -> StoreCode:
    found = (StoreCode.objects.select_related("merchant", "store").filter(code=code, active=True).first()
             if code else None)
    if found is None:
        raise NotFound("no such store code", param="code")
    return found


def payments_app(merchant: Merchant) -> MerchantApp | None:
    """The merchant's oldest active app with the payments scope: the app of record for payer-page orders."""
    for app in merchant.apps.filter(active=True).order_by("created_at", "id"):
        if app.has_scope("payments"):
            return app
    return None


def oauth_account(*, merchant: Merchant, wallet: str, amount: int | None = None) -> ChannelAccount | None:
    """The account routing would use for the wallet's JSAPI product: the payer id is only valid at that account
    (a WeChat openid belongs to one appid, §E). Without an amount (store codes), the amount limits are ignored."""
    product = WALLET_PRODUCTS[wallet]
    decision = choose(merchant=merchant, product=product, amount=amount if amount is not None else 1)
    if decision.chosen is not None:
        return ChannelAccount.objects.get(pk=decision.chosen.account_id)
    if amount is None:
        codes = [c["account"] for c in decision.candidates if c["reason"].startswith("amount outside")]
        if codes:
            return ChannelAccount.objects.get(code=codes[0])
    return None


def oauth_state(*, nonce: str, target: str, wallet: str, account_id: int) -> str:
    """The OAuth ``state``: signed, bound to the payer's session nonce and to the page it returns to (CSRF)."""
    return signing.dumps({"n": nonce, "t": target, "w": wallet, "a": account_id}, salt=_STATE_SALT)


def oauth_state_check(*, state: str, nonce: str, target: str) -> dict:
    try:
        data = signing.loads(state, salt=_STATE_SALT, max_age=STATE_MAX_AGE)
    except signing.BadSignature:
        raise InvalidRequest("the wallet sent back an unknown or expired state", param="state") from None
    if not nonce or data.get("n") != nonce or data.get("t") != target:
        raise InvalidRequest("the wallet sent back a state for another page or session", param="state")
    return data


def payer_id_from_code(*, account_id: int, code: str) -> str:
    if not code:
        raise InvalidRequest("the wallet did not return an authorisation code", param="code")
    return ChannelAccount.objects.get(pk=account_id).adapter().oauth_payer_id(code=code)


def parse_amount(text: str) -> int:
    """The payer types yuan ("12.3", "12.30", "12"); we keep integer fen (design §5 rule 1)."""
    match = _AMOUNT.match((text or "").strip())
    if not match:
        raise InvalidRequest("enter an amount in yuan, e.g. 12.50", param="amount")
    fen = int(Decimal(match.group(0)) * 100)
    if fen < 1:
        raise InvalidRequest("the amount must be at least ¥0.01", param="amount")
    if fen > MAX_AMOUNT_FEN:
        raise InvalidRequest("the amount is too large", param="amount")
    return fen


def onecode_pay(*, store_code: StoreCode, wallet: str, payer_id: str, amount: int, client_ip: str = "") -> Order:
    """Create the JSAPI order for a store code through the normal pipeline (order_create)."""
    app = payments_app(store_code.merchant)
    if app is None:
        raise ProductNotAvailable("this merchant cannot take payments here yet", param="code")
    data = {
        # "qr" + 22 random characters: unique per merchant without asking the merchant (merchant-api.md "Orders").
        "out_trade_no": "qr" + secrets.token_hex(11), "amount": amount, "currency": "CNY",
        "product": WALLET_PRODUCTS[wallet], "subject": store_code.store.name[:128],
        "payer": {PAYER_KEYS[wallet]: payer_id}, "store_id": store_code.store.store_no,
        "metadata": {"store_code": store_code.code},
    }
    if client_ip:
        data["client_ip"] = client_ip
    order, _ = order_create(app=app, data=data)
    return order
