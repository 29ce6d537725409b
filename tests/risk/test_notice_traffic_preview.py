"""A channel risk notice's page shows, before a risk officer limits the matched contract, what that moves (design §7
"a preview of what moves", risk.traffic_preview): under "Ours", each product with the merchant's contract routing
would choose instead, or — in red, beside the "Limit the contract" option too — that the merchant API will refuse it;
once limited, where its orders go now. Its queries grow by at most one per product."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from aggpay.api import credentials
from channels.models import ChannelProduct
from merchants.models import ContractRate
from risk.models import ChannelRiskNotice
from risk.services.channel_notices import channel_risk_notice_handle, channel_risk_notice_record
from tests.factories import ChannelAccountFactory
from tests.merchants.contract_card import product_line
from tests.risk.violations import TEA_SUB, contract_on

pytestmark = pytest.mark.django_db


@pytest.fixture
def tea_contract(wx, tea_house):
    """The Tea House's WeChat contract takes WeChat QR and payment-code orders, the cheapest way to (0.20%)."""
    return contract_on(wx, tea_house, sub_mchid=TEA_SUB, products=("wechat.native", "wechat.barcode"))


@pytest.fixture
def bank_a(tea_house, tea_contract):
    """Bank A takes the Tea House's WeChat QR orders too, dearer to us, at 0.45% to the merchant; not payment codes."""
    account = ChannelAccountFactory(code="bank-a", kind="bank", name="Bank A")
    contract = contract_on(account, tea_house, sub_mchid="BANKM0001", cost_rate="0.0030")
    ContractRate.objects.filter(contract=contract).update(rate=Decimal("0.0045"))
    return contract


def _notice(wx, record_id="VR-1") -> ChannelRiskNotice:
    return channel_risk_notice_record(account=wx, event_type="VIOLATION.PUNISH", event_id=f"EV-{record_id}",
                                      data={"record_id": record_id, "sub_mchid": TEA_SUB}).notice


def ours(html: str) -> str:
    return re.search(r'<dl class="kv" id="notice-ours">.*?</dl>', html, re.S).group()


def test_it_shows_which_account_takes_each_product_if_the_contract_is_limited(client, wx, bank_a, risk_zhao):
    notice = _notice(wx)
    client.force_login(risk_zhao)

    html = ours(client.get(f"/staff/risk/notices/{notice.pk}/").content.decode())

    assert "If limited" in html
    native = product_line(html, "wechat.native")
    assert "data-refused" not in native
    assert "wechat.native (here 0.38%) ¥0.01–¥50,000.00 → bank-a (Bank A) at 0.45%" in native


def test_it_flags_in_red_a_product_the_merchant_api_would_refuse(client, wx, bank_a, risk_zhao):
    notice = _notice(wx)
    client.force_login(risk_zhao)

    page = client.get(f"/staff/risk/notices/{notice.pk}/").content.decode()

    barcode = product_line(ours(page), "wechat.barcode")
    assert "data-refused" in barcode and "→ none: refused, 422 product_not_available" in barcode
    assert 'data-role="refused" style="color:var(--bad)"' in ours(page)
    beside_the_option = re.search(r'<div class="sub" id="limit-refuses"[^>]*>(.*?)</div>', page, re.S)
    assert beside_the_option and "stops wechat.barcode" in beside_the_option.group(1)
    assert "422 product_not_available" in beside_the_option.group(1)


def test_once_limited_it_says_where_the_contracts_orders_go_now(client, wx, tea_contract, bank_a, risk_zhao):
    notice = _notice(wx)
    channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, action="limit", note="WeChat closed it")
    client.force_login(risk_zhao)

    html = ours(client.get(f"/staff/risk/notices/{notice.pk}/").content.decode())

    assert "Its orders now" in html and "If limited" not in html
    assert "→ bank-a (Bank A) at 0.45%" in product_line(html, "wechat.native")
    assert "data-refused" in product_line(html, "wechat.barcode")


def test_without_the_limit_option_there_is_no_preview_of_a_limit(client, wx, bank_a, risk_zhao):
    notice = _notice(wx)
    channel_risk_notice_handle(notice_id=notice.pk, actor=risk_zhao, note="seen, nothing to do")  # handled
    client.force_login(risk_zhao)

    html = client.get(f"/staff/risk/notices/{notice.pk}/").content.decode()

    assert 'data-role="traffic-preview"' not in html


def _page_queries(client, notice) -> int:
    url = f"/staff/risk/notices/{notice.pk}/"
    client.get(url)  # the session and permissions, read once per client
    credentials.generation_bump()  # as a save does: routing reads its rows again, as after the changes below
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_its_queries_grow_by_at_most_one_per_product(client, wx, tea_house, tea_contract, bank_a, risk_zhao,
                                                     django_assert_max_num_queries):
    """Bound: the page's queries with the two products above, plus one per further product the contract serves —
    none per further contract of the merchant, however their limits cut the amounts. Both counted with routing's
    rows read afresh (a page shown again under the same generation token reads none)."""
    notice = _notice(wx)
    client.force_login(risk_zhao)
    before = _page_queries(client, notice)
    more = ("wechat.h5", "wechat.app", "wechat.jsapi")
    for product in more:
        ChannelProduct.objects.create(account=wx, product=product, cost_rate=Decimal("0.0020"), max_amount=5_000_000)
        ContractRate.objects.create(contract=tea_contract, product=product, rate=Decimal("0.0038"))
    for i in range(6):
        account = ChannelAccountFactory(code=f"bank-{i}", kind="bank")
        for product in ("wechat.native", *more):
            ChannelProduct.objects.create(account=account, product=product, cost_rate=Decimal(f"0.003{i}"),
                                          min_amount=100 * i + 1, max_amount=1000 * (i + 1))
        contract_on(account, tea_house, sub_mchid=f"S-{i}", products=("wechat.native", *more))

    url = f"/staff/risk/notices/{notice.pk}/"
    with django_assert_max_num_queries(before + len(more)):
        html = client.get(url).content.decode()

    assert all(f'data-product="{product}"' in html for product in more)
