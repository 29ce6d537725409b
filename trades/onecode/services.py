"""One-code-pay services: generating store codes (staff), and the payer's steps — OAuth account, amount, order.

The payer's order goes through ``order_create`` like any API order (issue 5), so routing, risk and the fee snapshot
apply unchanged; the merchant's own payments app is the app of record, so its notify_url hears about it.

A double submit of the amount form (double tap, back and resubmit, a slow network's retry) must not make two
orders. Each render of the form carries a one-time *attempt* token: a random id signed for this store code and this
payer's session. The order's out_trade_no is derived from the attempt id, so a second submit of the same form lands
on the (merchant, out_trade_no) unique constraint and gets the first order back (design §5 rule 5); a new page load
is a new attempt, so two genuine purchases are still two orders.
"""

from __future__ import annotations

import re
import secrets
from decimal import Decimal

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse

from aggpay.audit import audit_log
from aggpay.errors import IdempotencyConflict, InvalidRequest, NotFound, ProductNotAvailable
from aggpay.money import format_yuan
from channels.models import ChannelAccount, ChannelProduct
from channels.routing import choose
from merchants.models import Contract, ContractState, Merchant, MerchantApp, Store
from trades.models import Order
from trades.models.store_codes import StoreCode
from trades.services.cashier import OAUTH_PAYER_ID_KIND, PAYER_KEYS, WALLET_PRODUCTS
from trades.services.orders import order_create

MAX_CODES_PER_STORE = 50
MAX_AMOUNT_FEN = 100_000_000  # ¥1,000,000: far above any contract limit; routing applies the real ones
_CODE = re.compile(r"[A-Za-z0-9]{1,24}")  # trades.models.store_codes.new_store_code, within the column's length
_AMOUNT = re.compile(r"^(\d{1,9})(?:\.(\d{1,2}))?$")
_STATE_SALT = "aggpay.trades.onecode.oauth"
STATE_MAX_AGE = 600  # seconds a payer may take at the wallet's OAuth screen
_ATTEMPT_SALT = "aggpay.trades.onecode.attempt"
_ATTEMPT_ID = re.compile(r"^[0-9a-f]{22}$")
ATTEMPT_MAX_AGE = 3600  # seconds an amount form stays valid: under the order's 2 h expiry, so a replay finds it live
_RETURN_SALT = "aggpay.trades.onecode.return"
# The wallets whose hand-off leaves our pay page for the channel's own page: a UnionPay JS payment redirects to the
# bank's cashier (docs/channels/bank.md §6.2, pay_info.redirect_url), which sends the payer's browser to the trade's
# ``front_url`` (the order's return_url) once paid — without one the payer was left on the bank's page. WeChat's and
# Alipay's JSAPI sheets open over our page, which stays and shows the result itself.
RETURNING_WALLETS = frozenset({"unionpay"})


# --- staff --------------------------------------------------------------------------------------------------
def storecodes_generate(*, merchant: Merchant, store_ids: list[int], per_store: int, actor) -> list[StoreCode]:
    """Generate ``per_store`` new codes for each of the merchant's stores in one batch (audited)."""
    if not 1 <= per_store <= MAX_CODES_PER_STORE:
        raise InvalidRequest(f"between 1 and {MAX_CODES_PER_STORE} codes per store", param="per_store")
    stores = list(Store.objects.filter(merchant=merchant, pk__in=store_ids).order_by("store_no"))
    if not stores or len(stores) != len(set(store_ids)):
        raise InvalidRequest("choose one or more stores of this merchant", param="stores")
    batch = "b_" + secrets.token_hex(8)
    # A staff user, or a system label (the demo seed's): the audit row names either, the code only a user.
    created_by = actor if getattr(actor, "pk", None) else None
    with transaction.atomic():
        codes = StoreCode.objects.bulk_create([
            StoreCode(merchant=merchant, store=store, batch=batch, created_by=created_by)
            for store in stores for _ in range(per_store)])
        audit_log(actor=actor, action="storecode.generate", target=merchant,
                  data={"batch": batch, "stores": [s.store_no for s in stores], "count": len(codes)})
    return codes


def storecode_set_active(*, code_id: int, active: bool, actor, reason: str = "") -> StoreCode:
    """Retire (or restore) a code, e.g. a sticker that was stolen or replaced (audited).

    Retiring needs a reason: from then on the sticker's payers are told the code is not valid, and whoever asks
    later (the shop, support) reads why in the audit row — which names the merchant and the store as well as the code,
    so the log finds it by any of them."""
    reason = (reason or "").strip()
    with transaction.atomic():
        code = (StoreCode.objects.select_for_update(of=("self",)).select_related("merchant", "store")
                .filter(pk=code_id).first())
        if code is None:  # a stale page or a typed URL: the staff page answers 404, not a server error
            raise NotFound("no such store code", param="code_id")
        if code.active != active:
            if not active and not reason:
                raise InvalidRequest("a reason is required to retire a code: say why (e.g. the sticker was stolen "
                                     "or replaced)", param="reason")
            code.active = active
            code.save(update_fields=["active"])
            audit_log(actor=actor, action="storecode.activate" if active else "storecode.deactivate",
                      target=code, reason=reason,
                      data={"code": code.code, "merchant_no": code.merchant.merchant_no,
                            "merchant": code.merchant.short_name, "store_no": code.store.store_no})
    return code


# --- payer --------------------------------------------------------------------------------------------------
def storecode_for_payer(code: str) -> StoreCode:
    # Only what new_store_code makes is looked up: the path is anyone's to type, and a NUL byte in it made
    # PostgreSQL refuse the query — the public page answered 500 instead of "not valid".
    found = (StoreCode.objects.select_related("merchant", "store").filter(code=code, active=True).first()
             if _CODE.fullmatch(code or "") else None)
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
    """The account the payer's order will go to, and so the account whose payer ids the order may carry: the id is
    only valid there (a WeChat openid belongs to one appid, channel-protocols.md §E), and ``onecode_pay`` /
    ``order_cashier_pay`` route with ``only_account_id`` set to it. Its OAuth is ``oauth_via``'s: an account the
    wallet's payers cannot be logged in for (a bank without our WeChat or Alipay app for it) is passed over.

    With an amount (a cashier order): the account routing picks for that amount, or the next it ranks. Without one
    (a store code, whose amount the payer types later): of the accounts routing would take for *some* amount, the one
    with the widest limits (the highest maximum, then the lowest minimum), then routing's own priority (cheapest,
    oldest contract). So the payer can pay any amount some account can take, unless the accounts' ranges do not nest;
    then the amount page names the account's limits (``onecode_pay``)."""
    product = WALLET_PRODUCTS[wallet]
    decision = choose(merchant=merchant, product=product, amount=amount if amount is not None else 1)
    if amount is not None:
        ranked = ([decision.chosen] if decision.chosen is not None else []) + [c for c, _ in decision.others or []]
        for candidate in ranked:
            account = ChannelAccount.objects.get(pk=candidate.account_id)
            if oauth_via(merchant=merchant, account=account, wallet=wallet) is not None:
                return account
        return None
    codes = [c["account"] for c in decision.candidates if c["eligible"] or c["reason"].startswith("amount outside")]
    if not codes:
        return None
    order = {code: i for i, code in enumerate(codes)}  # candidates come in contract order (the oldest first)
    offers = [p for p in ChannelProduct.objects.select_related("account").filter(account__code__in=codes,
                                                                                 product=product)
              if oauth_via(merchant=merchant, account=p.account, wallet=wallet) is not None]
    best = min(offers, key=lambda p: (-p.max_amount, p.min_amount, p.cost_rate - p.isv_rebate_rate,
                                      order[p.account.code]), default=None)
    return best.account if best is not None else None


def oauth_via(*, merchant: Merchant, account: ChannelAccount, wallet: str) -> ChannelAccount | None:
    """The account whose OAuth learns the id of ``wallet``'s payer for an order going to ``account``; None if none.

    WeChat Pay's and Alipay's ISV accounts log their own payers in (§E). A bank's userAuth (docs/channels/bank.md
    §10) logs in UnionPay payers only: a WeChat payer's id must be an openid under the appid the bank order carries
    (the contract's ``sub_appid``, bank.md §6.2; an openid is valid for one appid only, §E), learnt through WeChat
    OAuth under that appid — our WeChat Pay ISV account whose ``sp_appid`` it is; an Alipay payer's buyer id comes
    from our Alipay app's OAuth (Alipay's user id is not per app, §E). Without such an account the bank cannot take
    that wallet's payers: a WeChat payer sent to UnionPay's login page gets nowhere, and its id is no openid."""
    if account.kind != "bank" or wallet == "unionpay":
        return account
    isv_accounts = ChannelAccount.objects.filter(enabled=True).order_by("created_at", "pk")
    if wallet == "alipay":
        return isv_accounts.filter(kind="alipay").first()
    sub_appid = _contract_sub_appid(merchant=merchant, account=account)
    if not sub_appid:
        return None
    return next((wechat for wechat in isv_accounts.filter(kind="wechatpay")
                 if (wechat.config or {}).get("sp_appid") == sub_appid), None)


def _contract_sub_appid(*, merchant: Merchant, account: ChannelAccount) -> str:
    """The appid the merchant's contract at ``account`` names (its active contract's, else its latest one's: a cashier
    order routed there before the contract was suspended is still its payer's to open)."""
    contracts = Contract.objects.filter(merchant=merchant, channel_account=account)
    contract = (contracts.filter(state=ContractState.ACTIVE).order_by("-created_at", "-pk").first()
                or contracts.order_by("-created_at", "-pk").first())
    return contract.sub_appid if contract is not None else ""


def account_takes(*, merchant: Merchant, wallet: str, account_id: int, amount: int) -> bool:
    """Whether routing would send ``amount`` in ``wallet`` to ``account_id`` (the account a payer id came from)."""
    product = WALLET_PRODUCTS[wallet]
    return choose(merchant=merchant, product=product, amount=amount, only_account_id=account_id).chosen is not None


def amount_limits_message(*, account_id: int, wallet: str, amount: int) -> str:
    """What the payer is told when the account that knows them cannot take the amount typed: its limits, or that
    it takes nothing right now (disabled, contract suspended since the payer's OAuth)."""
    offer = ChannelProduct.objects.filter(account_id=account_id, product=WALLET_PRODUCTS[wallet]).first()
    # No payer page takes more than MAX_AMOUNT_FEN (parse_amount), whatever the account's own maximum.
    highest = min(offer.max_amount, MAX_AMOUNT_FEN) if offer is not None else 0
    if offer is None or not offer.enabled or offer.min_amount <= amount <= highest:
        return "这家店暂时无法用此钱包收款。This shop cannot take payments from this wallet right now."
    low, high = format_yuan(offer.min_amount), format_yuan(highest)
    return (f"此金额超出本店单笔收款范围（¥{low}–¥{high}）。"
            f"This shop takes ¥{low} to ¥{high} per payment from this wallet; enter an amount in that range.")


def oauth_state(*, nonce: str, target: str, wallet: str, account_id: int, oauth_account_id: int | None = None) -> str:
    """The OAuth ``state``: signed, bound to the payer's session nonce and to the page it returns to (CSRF).

    ``account_id`` is the account the payer's order goes to; ``oauth_account_id`` the one whose OAuth the payer is
    sent through (``oauth_via``: the bank's, or our WeChat / Alipay app's for a bank's wallet payers)."""
    return signing.dumps({"n": nonce, "t": target, "w": wallet, "a": account_id,
                          "o": oauth_account_id if oauth_account_id is not None else account_id}, salt=_STATE_SALT)


def oauth_state_check(*, state: str, nonce: str, target: str) -> dict:
    try:
        data = signing.loads(state, salt=_STATE_SALT, max_age=STATE_MAX_AGE)
    except signing.BadSignature:
        raise InvalidRequest("the wallet sent back an unknown or expired state", param="state") from None
    if not nonce or data.get("n") != nonce or data.get("t") != target:
        raise InvalidRequest("the wallet sent back a state for another page or session", param="state")
    return data


def payer_id_from_code(*, account_id: int, code: str) -> str:
    """The payer id for an OAuth ``code``, asked of the account whose OAuth issued it (the state's ``o``)."""
    if not code:
        raise InvalidRequest("the wallet did not return an authorisation code", param="code")
    return ChannelAccount.objects.get(pk=account_id).adapter().oauth_payer_id(code=code)


def parse_amount(text: str, *, account_id: int | None = None, wallet: str = "") -> int:
    """The payer types yuan ("12.3", "12.30", "12"); we keep integer fen (design §5 rule 1).

    With the account the payer's id came from (and the wallet), an amount too large is refused with that account's
    limits, as onecode_pay refuses one the account cannot take (amount_limits_message): the payer reads one range
    whether they typed ¥1,000,000 or ¥99,999,999."""
    match = _AMOUNT.match((text or "").strip())
    if not match:
        raise InvalidRequest("请输入以元为单位的金额，如 12.50。Enter an amount in yuan, e.g. 12.50.", param="amount")
    fen = int(Decimal(match.group(0)) * 100)
    if fen < 1:
        raise InvalidRequest("金额至少为 ¥0.01。The amount must be at least ¥0.01.", param="amount")
    if fen > MAX_AMOUNT_FEN:
        if account_id is not None and wallet in WALLET_PRODUCTS:
            raise InvalidRequest(amount_limits_message(account_id=account_id, wallet=wallet, amount=fen),
                                 param="amount")
        limit = format_yuan(MAX_AMOUNT_FEN)
        raise InvalidRequest(f"金额不能超过 ¥{limit}。The amount may be at most ¥{limit}.", param="amount")
    return fen


def attempt_token(*, store_code: StoreCode, nonce: str) -> str:
    """A fresh one-time token for one render of the amount form: ``<attempt id>:<timestamp>:<signature>``.

    The store code and the session nonce are in the salt, not the payload: the token works only on this code's
    page in this payer's browser, and shows neither."""
    return signing.TimestampSigner(salt=_attempt_salt(store_code, nonce)).sign(secrets.token_hex(11))


def attempt_check(*, token: str, store_code: StoreCode, nonce: str) -> str:
    """The attempt id of a submitted form; InvalidRequest (param ``attempt``) if forged, foreign or expired."""
    signer = signing.TimestampSigner(salt=_attempt_salt(store_code, nonce))
    try:
        attempt = signer.unsign(token or "", max_age=ATTEMPT_MAX_AGE) if nonce else ""
    except signing.SignatureExpired:
        raise InvalidRequest("付款页面已过期，请核对金额后再次点击付款。"
                             "This payment page has expired; check the amount and press Pay again.",
                             param="attempt") from None
    except signing.BadSignature:
        attempt = ""
    if not _ATTEMPT_ID.match(attempt):
        raise InvalidRequest("此付款表单在此无效，请核对金额后再次点击付款。"
                             "This payment form is not valid here; check the amount and press Pay again.",
                             param="attempt")
    return attempt


def _attempt_salt(store_code: StoreCode, nonce: str) -> str:
    return f"{_ATTEMPT_SALT}:{store_code.code}:{nonce}"


def onecode_pay(*, store_code: StoreCode, attempt: str, nonce: str, wallet: str, payer_id: str, amount: int,
                account_id: int, client_ip: str = "") -> Order:
    """Create the JSAPI order for one submit of a store code's amount form through the normal pipeline
    (order_create); a repeated submit of the same form returns the order the first one made.

    ``attempt`` is the form's token (attempt_token), checked here before anything is written. The same form sent
    again with another amount (the payer went back and changed it) raises IdempotencyConflict (param ``amount``)
    with the earlier order's id in ``extra``: the payer is told, and a fresh form makes the new amount a new order.

    ``account_id`` is the account whose OAuth issued ``payer_id`` (oauth_account): the order is routed there only,
    with the usual eligibility, limits, rates and fee snapshot. If that account cannot take the amount, the payer
    gets ProductNotAvailable (param ``amount``) naming its limits, before anything is written.
    """
    attempt_id = attempt_check(token=attempt, store_code=store_code, nonce=nonce)
    app = payments_app(store_code.merchant)
    if app is None:
        raise ProductNotAvailable("该商户暂不能在此收款。This shop cannot take payments here yet.", param="code")
    product, payer = WALLET_PRODUCTS[wallet], {PAYER_KEYS[wallet]: payer_id}
    # "qr" + the 22 hex characters of the attempt id: unique per merchant without asking the merchant
    # (merchant-api.md "Orders"), and the same for every submit of one form.
    out_trade_no = "qr" + attempt_id
    existing = _attempt_order(store_code, out_trade_no)
    if existing is not None:  # the usual double submit: no second risk check or routing for it
        return _same_attempt(existing, amount=amount, product=product, payer=payer)
    data = {
        "out_trade_no": out_trade_no, "amount": amount, "currency": "CNY",
        "product": product, "subject": store_code.store.name[:128],
        "payer": payer, "store_id": store_code.store.store_no,
        "metadata": {"store_code": store_code.code},
    }
    if client_ip:
        data["client_ip"] = client_ip
    if wallet in RETURNING_WALLETS:
        data["return_url"] = payer_return_url(store_code=store_code, out_trade_no=out_trade_no)
    try:
        order, _ = order_create(app=app, data=data, only_account_id=account_id, payer_id_kind=OAUTH_PAYER_ID_KIND)
    except ProductNotAvailable:
        raise ProductNotAvailable(amount_limits_message(account_id=account_id, wallet=wallet, amount=amount),
                                  param="amount") from None
    except IdempotencyConflict:
        # A concurrent submit of the same form won the INSERT with other parameters: which ones decides.
        existing = _attempt_order(store_code, out_trade_no)
        if existing is None:
            raise
        return _same_attempt(existing, amount=amount, product=product, payer=payer)
    return order


def payer_return_url(*, store_code: StoreCode, out_trade_no: str) -> str:
    """Where the channel's own page sends the payer of a store code's order back to (RETURNING_WALLETS): our page
    that finds the order and shows its result. Made before the order exists — the result page's token is the order
    id's, which the INSERT makes — so it names the order by its out_trade_no, signed: nobody can walk other orders.
    On our public host, like the QR's URL."""
    ref = signing.Signer(salt=f"{_RETURN_SALT}:{store_code.code}").sign(out_trade_no)
    path = reverse("onecode:scan-return", args=[store_code.code, ref])
    return settings.AGGPAY_PUBLIC_BASE_URL.rstrip("/") + path


def order_for_return(*, code: str, ref: str) -> Order | None:
    """The order a payer_return_url names; None if forged or unknown. The code may have been retired since the
    payer paid: the payment is still theirs to see."""
    if not _CODE.fullmatch(code or ""):
        return None
    try:
        out_trade_no = signing.Signer(salt=f"{_RETURN_SALT}:{code}").unsign(ref or "")
    except signing.BadSignature:
        return None
    store_code = StoreCode.objects.filter(code=code).first()
    return _attempt_order(store_code, out_trade_no) if store_code is not None else None


def _attempt_order(store_code: StoreCode, out_trade_no: str) -> Order | None:
    return Order.objects.filter(merchant=store_code.merchant, out_trade_no=out_trade_no).first()


def _same_attempt(order: Order, *, amount: int, product: str, payer: dict) -> Order:
    """The order an earlier submit of this form made, if this submit asks for the same payment.

    Compared on what the payer chose (amount, wallet, payer id), not order_create's whole fingerprint: a retry over
    another network has another client IP and is still the same payment."""
    if order.amount != amount:
        raise IdempotencyConflict(
            f"此表单已提交过 ¥{format_yuan(order.amount)} 的付款；再次点击付款将作为新的一笔支付 ¥{format_yuan(amount)}。"
            f"This form was already submitted for ¥{format_yuan(order.amount)}; "
            f"press Pay again to pay ¥{format_yuan(amount)} as a new payment.",
            param="amount", extra={"order_id": order.pk})
    if order.channel_product != product or order.payer != payer:
        raise IdempotencyConflict("此付款表单已被其他钱包使用，请再次点击付款。"
                                  "This payment form was already used by another wallet; press Pay again.",
                                  param="attempt")
    return order
