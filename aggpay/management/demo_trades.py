"""The demo's trades: a morning at Demo Tea House, made only through the public interfaces.

FOR THE DEMO ONLY (``seed_demo``). The shop's tills and web shop make every order with signed merchant-API calls
(aggpay.api.client, as README.md's example does); payers pay on the channel simulators' payer endpoints (what the
wallet does: ``/_payer/pay``); the shop closes, reverses and refunds through the API. The three troubles a support
agent must see are staged the way a channel causes them, with the simulators' fault rules and account settings
(channels/simulators/core.py "Faults", bank_state.DEFAULT_SETTINGS): a bank that stops answering about one order
(the unknown-outcome queue, design §5 rule 2), a bank that says "closed" while its trade is still open and then
takes the payer's money (a late payment, rule 3, whose automatic refund the bank fails), and a refund the bank
cannot return (the abnormal-refunds queue). Two orders' notify URL refuses for a whole day, so their deliveries
run through the retry ladder to its end (the exhausted-deliveries queue): the delivery service itself attempts
each retry, its clock moved to the retry's due time (``_Shop.a_day_of_retries``). Nothing here writes a row: every
order has its channel calls, callbacks, events, deliveries and audit entries exactly as in real life. This module
only reads the database, to know what exists and to wait until the callbacks and notifications have settled.

Idempotent: a sale whose out_trade_no the merchant already has is skipped, so running the seed again adds nothing
(an interrupted run is completed by the next one).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import requests

from aggpay.api.client import AggpayClient
from aggpay.management import demo

# Payment codes the simulators accept (bank.md §13.2, the bank holds the demo's payment-code traffic): the prefix
# names the wallet (WeChat 10–15, Alipay 25–30, UnionPay 62), the last digit the payer's behaviour — 0–4 paid at
# once, 5 the payer confirms on the phone (paid a few seconds later), 7 insufficient balance, 9 paid but the
# bank's answer is UNKNOWN.
WECHAT_CODE = "134527890123456781"
WECHAT_CODE_2 = "130061234987654323"
WECHAT_CODE_CONFIRMS = "134598761234567895"
WECHAT_CODE_REVERSED = "131122334455667782"
ALIPAY_CODE = "284412345678901232"
ALIPAY_CODE_2 = "286677889900112234"
ALIPAY_CODE_NO_BALANCE = "289988776655443327"
UNIONPAY_CODE = "6212345678901234560"
UNIONPAY_CODE_UNANSWERED = "6212348765432101239"

# A notify URL nothing listens on (the discard port): the shop's old order server, switched off. Its orders'
# notifications fail and wait on the retry ladder (merchant-api.md "Notifications and events"); those of the
# sales marked ``notify_exhausted`` fail on every rung of it, a day of retries, and are exhausted.
REFUSED_NOTIFY_URL = "http://127.0.0.1:9/tea-house/old-notify"

# How long the seed waits for the channels' callbacks and the notifications to settle.
SETTLE_SECONDS = 25.0
# The simulated bank stops answering about the unknown order for this many queries: beyond the whole ladder of
# design §5 rule 2 (1 min, every 10 min to 1 h, hourly to 24 h: ~31 queries), so it stays in the queue until a
# person acts, and answers again after a few of their "ask again"s.
UNANSWERED_QUERIES = 60

STORE = {"store_id": "HZ-WESTLAKE-01", "terminal_id": "POS-02"}


@dataclass(frozen=True)
class Sale:
    """One order of the demo and what happens to it.

    ``then``: ``pay`` (the payer pays), ``leave`` (nobody pays yet), ``close`` (the shop closes it unpaid),
    ``reverse`` (a payment code the till reverses after it was charged), ``unknown`` (the shop closes it while the
    bank does not answer), ``late`` (closed, then paid at the bank anyway), ``refused`` (the payer's wallet refuses
    a payment code). ``refunds``: amounts refunded through the API once paid, in order.
    """

    no: str
    product: str
    amount: int
    subject: str
    then: str = "pay"
    auth_code: str = ""
    refunds: tuple[int, ...] = ()
    refund_reason: str = ""
    abnormal_refund: bool = False  # the bank cannot return its refund (refund_outcome ABNORMAL)
    notify_refused: bool = False  # notify_url = REFUSED_NOTIFY_URL
    notify_exhausted: bool = False  # …and it refuses the whole ladder's retries too: the delivery is exhausted
    extra: dict = field(default_factory=dict)


SALES: tuple[Sale, ...] = (
    # Customers scanning the shop's QR code at the counter (Bank A holds the offline products: it is the cheapest).
    Sale("DEMO-0001", "wechat.native", 1500, "Longjing tea 50 g", refunds=(500,),
         refund_reason="one tin returned unopened"),
    Sale("DEMO-0002", "wechat.native", 3800, "Pu'er cake 357 g"),
    Sale("DEMO-0003", "wechat.native", 880, "Osmanthus oolong, one cup", notify_refused=True,
         notify_exhausted=True),
    Sale("DEMO-0004", "wechat.native", 12800, "Celadon tea set", refunds=(12800,),
         refund_reason="cracked in transit: full refund"),
    Sale("DEMO-0005", "alipay.qr", 2600, "Tieguanyin 100 g"),
    Sale("DEMO-0006", "alipay.qr", 1200, "Jasmine pearls 50 g"),
    Sale("DEMO-0007", "alipay.qr", 6800, "Gift box: West Lake Longjing"),
    Sale("DEMO-0008", "unionpay.qr", 4500, "Da Hong Pao 100 g", refunds=(1000, 1500),
         refund_reason="price adjustment"),
    Sale("DEMO-0009", "unionpay.qr", 2200, "Tea cakes, box of six", notify_refused=True),
    # The till scanning the payer's payment code ("barcode": the wallet is told by the code).
    Sale("DEMO-0010", "barcode", 1600, "Longjing tea 30 g", auth_code=WECHAT_CODE, extra=STORE),
    Sale("DEMO-0011", "barcode", 950, "Milk oolong, one cup", auth_code=WECHAT_CODE_2, extra=STORE),
    Sale("DEMO-0012", "barcode", 2400, "Black tea, Keemun 50 g", auth_code=ALIPAY_CODE, extra=STORE,
         notify_refused=True, notify_exhausted=True),
    Sale("DEMO-0013", "barcode", 700, "Green tea, one pot", auth_code=ALIPAY_CODE_2, extra=STORE),
    Sale("DEMO-0014", "barcode", 5200, "White tea, Baimudan 100 g", auth_code=UNIONPAY_CODE, extra=STORE),
    Sale("DEMO-0015", "barcode", 1800, "Chrysanthemum tea 50 g", auth_code=WECHAT_CODE_CONFIRMS, extra=STORE),
    Sale("DEMO-0016", "barcode", 3300, "Yellow tea, Junshan 50 g", then="refused",
         auth_code=ALIPAY_CODE_NO_BALANCE, extra=STORE),
    Sale("DEMO-0017", "barcode", 1100, "Rang up twice: cancelled", then="reverse", auth_code=WECHAT_CODE_REVERSED,
         extra=STORE),
    Sale("DEMO-0018", "barcode", 2900, "Smoked Lapsang 50 g", auth_code=UNIONPAY_CODE_UNANSWERED, extra=STORE),
    # The web shop and the shop's app (online products: WeChat Pay ISV, Alipay ISV, Bank B).
    Sale("DEMO-0019", "wechat.app", 1990, "Tea of the month: subscription", refunds=(990,),
         refund_reason="first month discount"),
    Sale("DEMO-0020", "wechat.app", 5900, "Tasting course, two people"),
    Sale("DEMO-0021", "alipay.wap", 3500, "Online order #A1021", refunds=(3500,), refund_reason="out of stock"),
    Sale("DEMO-0022", "alipay.wap", 1500, "Online order #A1022"),
    Sale("DEMO-0023", "alipay.jsapi", 4200, "Mini shop order #M23", refunds=(4200,), abnormal_refund=True,
         refund_reason="customer cancelled", extra={"payer": {"buyer_id": "2088102146225135"}}),
    # Orders nobody paid: closed by the shop, still waiting, or worse.
    Sale("DEMO-0024", "wechat.native", 2000, "Longjing tea 50 g", then="close"),
    Sale("DEMO-0025", "alipay.qr", 1500, "Jasmine pearls 50 g", then="close"),
    Sale("DEMO-0026", "unionpay.qr", 900, "Green tea, one pot", then="close"),
    Sale("DEMO-0027", "wechat.native", 3000, "Pu'er, loose 100 g", then="leave", extra={"expire_seconds": 86400}),
    Sale("DEMO-0028", "alipay.qr", 1800, "Oolong sampler", then="leave", extra={"expire_seconds": 86400}),
    Sale("DEMO-0029", "wechat.native", 4600, "Gift box: Pu'er", then="unknown"),
    Sale("DEMO-0030", "alipay.qr", 2500, "Tieguanyin 50 g", then="late"),
)


class DemoTradesError(Exception):
    """The demo traffic could not be made as planned (an answer it did not expect, or callbacks that never came)."""


@dataclass
class DemoTradesReport:
    made: list[str] = field(default_factory=list)  # out_trade_nos made by this run
    existing: list[str] = field(default_factory=list)  # skipped: the merchant has them already
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def planned_numbers() -> list[str]:
    return [sale.no for sale in SALES]


def existing_numbers(merchant) -> set[str]:
    from trades.models import Order

    return set(Order.objects.filter(merchant=merchant, out_trade_no__in=planned_numbers())
               .values_list("out_trade_no", flat=True))


def demo_trades_seed(*, merchant, base_url: str, simulator_root: str, notify_url: str | None = None,
                     settle_seconds: float = SETTLE_SECONDS, say: Callable[[str], None] = lambda line: None,
                     ) -> DemoTradesReport:
    """Make the sales of ``SALES`` the merchant does not have yet, against the aggpay serving ``base_url`` and the
    simulators at ``simulator_root``, and wait (at most ``settle_seconds``) until their callbacks, refunds and
    notifications have settled. ``notify_url``: where the shop's order server listens (default: the app's)."""
    started = time.monotonic()
    report = DemoTradesReport()
    have = existing_numbers(merchant)
    todo = [sale for sale in SALES if sale.no not in have]
    report.existing = [sale.no for sale in SALES if sale.no in have]
    if todo:
        shop = _Shop(base_url=base_url, simulator_root=simulator_root, notify_url=notify_url, say=say)
        shop.run(todo, settle_seconds=settle_seconds)
        report.made, report.notes = [sale.no for sale in todo], shop.notes
    report.seconds = time.monotonic() - started
    return report


# --- the shop, its payers and its channels --------------------------------------------------------------------
class _Shop:
    def __init__(self, *, base_url: str, simulator_root: str, notify_url: str | None, say):
        self.client = AggpayClient(base_url, demo.DEMO_APP_ID, secret=demo.DEMO_APP_SECRET)
        self.root = simulator_root.rstrip("/")
        self.notify_url = notify_url
        self.say = say
        self.notes: list[str] = []
        self.orders: dict[str, dict] = {}  # out_trade_no → the API's order

    # The merchant API ------------------------------------------------------------------------------------------
    def api(self, method: str, path: str, body: dict | None = None, *, expect: tuple[int, ...] = (200, 201)):
        status, _, data = self.client.request(method, path, json=body)
        if status not in expect:
            raise DemoTradesError(f"{method} {path} answered {status}: {data}")
        return data

    def create(self, sale: Sale) -> dict:
        body = {"out_trade_no": sale.no, "amount": sale.amount, "product": sale.product, "subject": sale.subject,
                **sale.extra}
        if sale.auth_code:
            body["auth_code"] = sale.auth_code
        if sale.notify_refused:
            body["notify_url"] = REFUSED_NOTIFY_URL
        elif self.notify_url:
            body["notify_url"] = self.notify_url
        # A payment code the wallet refuses: 502 channel_error carrying the failed order (merchant-api.md "Errors").
        expect = (502,) if sale.then == "refused" else (200, 201)
        data = self.api("POST", "/api/v1/orders", body, expect=expect)
        order = data.get("order", data) if isinstance(data, dict) else data
        self.orders[sale.no] = order
        return order

    # The simulators: the payer's wallet, and the channel's own controls -----------------------------------------
    def sim(self, kind: str, path: str, method: str = "POST", **payload) -> dict:
        response = requests.request(method, f"{self.root}/{kind}{path}", json=payload if method == "POST" else None,
                                    timeout=15)
        if response.status_code >= 300:
            raise DemoTradesError(f"simulator {kind} {path} answered {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else {}

    def pay(self, sale: Sale) -> None:
        """Pay as the payer's wallet does, with what the merchant handed over (pay_params)."""
        order = self.orders[sale.no]
        params = order.get("pay_params") or {}
        if "code_url" in params:  # a QR code: the payer scans it and opens the channel's payer page
            url = params["code_url"]
            kind = self._kind_of(order)
            if kind == "bank":
                self.sim("bank", "/_payer/pay", code=parse_qs(urlsplit(url).query)["code"][0])
            elif kind == "wechatpay":
                self.sim("wechatpay", "/_payer/pay", code_url=url)
            else:
                self.sim("alipay", "/_payer/pay", qr_code=url)
        elif sale.product == "wechat.app":  # the WeChat app opened by the shop's app with the prepay_id
            self.sim("wechatpay", "/_payer/pay", prepay_id=params["prepay_id"])
        elif "wap_url" in params:  # the payer's browser opens Alipay's cashier page, then pays there
            page = requests.get(params["wap_url"], timeout=15)
            if page.status_code != 200:
                raise DemoTradesError(f"Alipay's cashier page answered {page.status_code}")
            app_id = parse_qs(urlsplit(params["wap_url"]).query)["app_id"][0]
            self.sim("alipay", "/_payer/pay", out_trade_no=order["id"], app_id=app_id)
        elif sale.product == "alipay.jsapi":
            kind = self._kind_of(order)
            if kind == "bank":  # the bank's Alipay JS payment: the wallet pays the bank's order
                self.sim("bank", "/_payer/pay", org_no=self._account(order).config["org_no"],
                         out_trade_no=order["id"])
            else:
                self.sim("alipay", "/_payer/pay", trade_no=params["jsapi"]["tradeNO"])
        else:
            raise DemoTradesError(f"the demo cannot pay {sale.product} order {sale.no}")

    def _account(self, order: dict):
        from trades.models import Order

        account = Order.objects.select_related("channel_account").get(pk=order["id"]).channel_account
        if account is None:
            raise DemoTradesError(f"order {order['out_trade_no']} has no channel account")
        return account

    def _kind_of(self, order: dict) -> str:
        return self._account(order).kind

    def bank_settings(self, order: dict, **changes) -> dict:
        """Change the bank account's simulator settings; returns the previous values of those changed."""
        org = self._account(order).config["org_no"]
        before = self.sim("bank", f"/_control/accounts/{org}", method="GET")["settings"]
        self.sim("bank", f"/_control/accounts/{org}/settings", **changes)
        return {key: before[key] for key in changes if key in before}

    def fault(self, order: dict, rule: dict) -> None:
        self.sim(self._kind_of(order), "/_control/faults", **rule)

    # The morning -----------------------------------------------------------------------------------------------
    def run(self, sales: list[Sale], *, settle_seconds: float) -> None:
        deadline = time.monotonic() + settle_seconds
        for sale in sales:
            self._make(sale)
        self.say(f"  {len(sales)} orders made; waiting for the payers and the channels' callbacks")
        self._wait("the payments' callbacks", deadline, lambda: self._unpaid(sales))
        for sale in sales:
            if sale.refunds and not sale.abnormal_refund:
                self._refund(sale)
        for sale in sales:
            if sale.abnormal_refund:
                self._abnormal_refund(sale)
        for sale in sales:
            if sale.then == "late":
                self._late_payment(sale, deadline)
        try:
            self._wait("the refunds and notifications", deadline, lambda: self._unsettled(sales))
        except DemoTradesError as exc:
            # Everything was asked; what is late arrives while the demo runs (the channels call back and retry,
            # the in-process beat queries and resends): no reason to stop the demo.
            self.notes.append(f"not all settled yet ({exc}); the running demo finishes it")
        self.a_day_of_retries([sale for sale in sales if sale.notify_exhausted])

    def _make(self, sale: Sale) -> None:
        order = self.create(sale)
        if sale.then == "pay" and order["state"] == "pending" and sale.product != "barcode":
            self.pay(sale)
        elif sale.then == "pay" and sale.auth_code == UNIONPAY_CODE_UNANSWERED:
            # The bank charged the code but answered "unknown": the till asks aggpay again, which asks the bank.
            self.api("GET", f"/api/v1/orders/{sale.no}")
        elif sale.then == "close":
            self.api("POST", f"/api/v1/orders/{sale.no}/close")
        elif sale.then == "reverse":
            self.api("POST", f"/api/v1/orders/{sale.no}/reverse")
        elif sale.then == "unknown":
            self._unknown(sale)
        elif sale.then == "late":
            self._closed_but_open_at_the_bank(sale)

    def _unknown(self, sale: Sale) -> None:
        """The shop closes the order, and the bank answers neither the query that comes first nor anything after
        (a 503): whether the payer paid is unknown, so the order stays pending on the query ladder — the
        unknown-outcome queue (design §5 rule 2)."""
        order = self.orders[sale.no]
        self._require_bank(sale, order)
        self.fault(order, {"match": {"path": "^/api/pay/(query|close)$", "contains": order["id"]},
                           "fault": "http_503", "times": UNANSWERED_QUERIES})
        closed = self.api("POST", f"/api/v1/orders/{sale.no}/close")
        if closed["state"] != "pending":
            raise DemoTradesError(f"{sale.no}: the close of an unanswered order gave {closed['state']}")

    def _closed_but_open_at_the_bank(self, sale: Sale) -> None:
        """The bank answers the shop's close ORDER_CLOSED (docs/channels/bank.md §6.6, §12: nothing
        left to close) while its trade is in fact still open — a fault rule; aggpay closes the order."""
        order = self.orders[sale.no]
        self._require_bank(sale, order)
        self.fault(order, {"match": {"path": "^/api/pay/close$", "contains": order["id"]},
                           "fault": "business_error", "code": "ORDER_CLOSED", "message": "order closed"})
        closed = self.api("POST", f"/api/v1/orders/{sale.no}/close")
        if closed["state"] != "closed":
            raise DemoTradesError(f"{sale.no}: the close gave {closed['state']}")

    def _late_payment(self, sale: Sale, deadline: float) -> None:
        """…and then the payer, who had the QR code on the phone, pays it: the bank takes the money and calls back.
        A late payment (design §5 rule 3), refunded at once by aggpay; the bank fails that refund (merchant balance
        insufficient), so the late payment waits in support's queue."""
        from trades.models import LatePayment

        order = self.orders[sale.no]
        before = self.bank_settings(order, refund_outcome="FAIL")
        try:
            self.pay(sale)
            self._wait("the late payment's refund to be asked", deadline, lambda: [] if LatePayment.objects.filter(
                order_id=order["id"], refund_attempts__gte=1).exists() else [sale.no])
        finally:
            self.bank_settings(order, **before)

    def a_day_of_retries(self, sales: list[Sale]) -> None:
        """The shop's old order server stays off all day: every retry of the ladder (merchant-api.md "Notifications
        and events": 1 min, 5 min ×2, 10 min ×5, 1 h ×5, 6 h ×3) fails and the delivery is exhausted — support's
        "Exhausted deliveries" queue. The seed cannot wait the day, so it plays it now: the delivery service attempts
        each retry as the worker the beat's sweeper dispatches would, with its clock at the retry's due time, and
        each attempt is a real POST that the notify URL refuses, claimed and recorded by the service. The retries
        are therefore dated over the day after the order. Only the deliveries of orders made by this run."""
        from trades.models import Delivery, DeliveryState
        from trades.services.events import MAX_ATTEMPTS, delivery_attempt

        ids = self._ids(sales)
        if not ids:
            return
        deliveries = Delivery.objects.filter(event__object_type="order", event__object_id__in=ids,
                                             url=REFUSED_NOTIFY_URL, state=DeliveryState.PENDING).order_by("pk")
        exhausted = []
        for delivery in deliveries:
            for _ in range(MAX_ATTEMPTS):
                if delivery.state != DeliveryState.PENDING:
                    break
                attempts = delivery.attempts
                delivery = delivery_attempt(delivery_id=delivery.pk, now=delivery.next_attempt_at)
                if delivery.attempts == attempts:  # in flight elsewhere: the running demo's ladder goes on with it
                    break
            if delivery.state == DeliveryState.EXHAUSTED:
                exhausted.append(ids[delivery.event.object_id])
            else:
                self.notes.append(f"delivery {delivery.pk} to {delivery.url} is {delivery.state} after "
                                  f"{delivery.attempts} attempts, not exhausted; the running demo retries it")
        if exhausted:
            self.say(f"  a day of retries refused by the shop's old notify URL: the notifications of "
                     f"{', '.join(exhausted)} are exhausted")

    def _require_bank(self, sale: Sale, order: dict) -> None:
        kind = self._kind_of(order)
        if kind != "bank":
            raise DemoTradesError(f"{sale.no} was routed to a {kind} account; the demo stages it on a bank's")

    def _refund(self, sale: Sale) -> list[dict]:
        made = []
        for n, amount in enumerate(sale.refunds, start=1):
            made.append(self.api("POST", f"/api/v1/orders/{sale.no}/refunds",
                                 {"out_refund_no": f"{sale.no}-R{n}", "amount": amount,
                                  "reason": sale.refund_reason}))
        return made

    def _abnormal_refund(self, sale: Sale) -> None:
        """The bank accepts the refund and then cannot return the money (the payer's account is closed): ABNORMAL,
        the refund stays pending and is flagged for a person (the abnormal-refunds queue)."""
        order = self.orders[sale.no]
        self._require_bank(sale, order)
        before = self.bank_settings(order, refund_outcome="ABNORMAL")
        try:
            self._refund(sale)  # the bank fixes each refund's outcome when it accepts it
        finally:
            self.bank_settings(order, **before)

    # Waiting for the channels ----------------------------------------------------------------------------------
    def _wait(self, what: str, deadline: float, missing: Callable[[], list[str]]) -> None:
        while True:
            left = missing()
            if not left:
                return
            if time.monotonic() > deadline:
                raise DemoTradesError(f"timed out waiting for {what}: still waiting for {', '.join(left[:8])}")
            time.sleep(0.1)

    def _ids(self, sales: list[Sale]) -> dict[str, str]:
        return {self.orders[sale.no]["id"]: sale.no for sale in sales if sale.no in self.orders}

    def _unpaid(self, sales: list[Sale]) -> list[str]:
        from trades.models import Order

        paid = [sale for sale in sales if sale.then in ("pay", "reverse")]
        ids = self._ids(paid)
        settled = set(Order.objects.filter(pk__in=ids, state__in=("succeeded", "reversed"))
                      .values_list("pk", flat=True))
        return [no for pk, no in ids.items() if pk not in settled]

    def _unsettled(self, sales: list[Sale]) -> list[str]:
        from trades.models import Delivery, DeliveryAttempt, Event, LatePayment, Refund

        ids = self._ids(sales)
        left = list(Refund.objects.filter(order_id__in=ids, state="pending", abnormal=False)
                    .values_list("out_refund_no", flat=True))
        late = [sale for sale in sales if sale.then == "late"]
        for sale in late:
            order_id = self.orders[sale.no]["id"]
            if not LatePayment.objects.filter(order_id=order_id, state="open", refund_attempts__gte=1).exists():
                left.append(f"{sale.no} (late payment)")
        events = Event.objects.filter(merchant__merchant_no=demo.DEMO_MERCHANT_NO)
        if Delivery.objects.filter(event__in=events, attempts=0).exists() or DeliveryAttempt.objects.filter(
                delivery__event__in=events, finished_at__isnull=True).exists():
            left.append("notifications")
        return left


# --- serving aggpay and the shop's order server while the traffic runs ----------------------------------------
class PortInUse(Exception):
    pass


@contextlib.contextmanager
def serving(base_url: str) -> Iterator[str]:
    """Serve this process's aggpay (its API, the channels' callbacks and the in-process simulators at /_sim/) on
    ``base_url``'s host and port in background threads, as ``runserver`` would, until the block ends.

    The demo's channel accounts call back to AGGPAY_PUBLIC_BASE_URL and the adapters reach the simulators under it,
    so the seed, which runs before runserver, serves the same address itself. Threaded: a create calls the bank
    simulator, whose callback comes back while other requests are in flight. Raises PortInUse when the port is
    taken."""
    from django.core.servers.basehttp import (
        ThreadedWSGIServer,
        WSGIRequestHandler,
        get_internal_wsgi_application,
    )

    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
            pass

    try:
        server = ThreadedWSGIServer((host, port), QuietHandler, allow_reuse_address=True)
    except OSError as exc:
        raise PortInUse(f"{host}:{port} is in use ({exc.strerror})") from exc
    server.set_app(get_internal_wsgi_application())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="aggpay-demo-seed-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def shop_order_server(notify_url: str) -> Iterator[bool]:
    """The shop's order server, acknowledging aggpay's notifications on ``notify_url`` while the demo's trades are
    made (as README.md's "Take a payment" script does). Yields False, and does nothing, when that port is taken:
    the notifications then go to whatever listens there."""

    class Acknowledge(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the stdlib's naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, format, *args):  # noqa: A002
            pass

    parts = urlsplit(notify_url)
    try:
        server = ThreadingHTTPServer((parts.hostname or "127.0.0.1", parts.port or 80), Acknowledge)
    except OSError:
        yield False
        return
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield True
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """The traffic's log lines would bury the seed's summary: every channel call (INFO), the late payment
    (WARNING), and the answers the demo stages on purpose — the refused payment code's 502 and the bank's 503s are
    logged as errors by django.request. Anything the demo did not expect still stops it (DemoTradesError names
    the answer); CRITICAL lines still show."""
    previous = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(previous)
