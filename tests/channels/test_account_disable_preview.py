"""Before ops disable a channel account, its disable form shows what that refuses (design §7 "a preview of what
moves", channels.traffic_preview): for each product the account serves, the merchants no other contract of theirs
would take it for, and at which amounts — asked of routing itself, so that what the form warns of is what the
merchant API then refuses (422 product_not_available). Found on the demo: disabling Bank A left a 25,000-yuan
UnionPay QR order of a merchant with nowhere to go, because Bank B takes at most 20,000 yuan."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from aggpay.api import credentials
from channels.models import ChannelAccount, ChannelProduct
from channels.routing import choose
from merchants.services.merchants import merchant_activate
from tests.conftest import STAFF_PASSWORD
from tests.factories import ChannelAccountFactory, MerchantFactory
from tests.risk.violations import contract_on

pytestmark = pytest.mark.django_db

QR = "unionpay.qr"


@pytest.fixture
def ops(client, staff_member):
    staff_member("operations", username="ops-amy")
    assert client.login(username="ops-amy", password=STAFF_PASSWORD)
    return client


def bank(code: str, *, max_amount: int, cost: str = "0.0020", alipay_max_amount: int = 5_000_000):
    """A bank account taking UnionPay QR payments up to ``max_amount`` fen each, Alipay QR ones up to
    ``alipay_max_amount``."""
    account = ChannelAccountFactory(code=code, kind="bank", name=code.replace("-", " ").title())
    for product, most in ((QR, max_amount), ("alipay.qr", alipay_max_amount)):
        ChannelProduct.objects.create(account=account, product=product, cost_rate=Decimal(cost), max_amount=most)
    return account


def merchant(short_name: str):
    return merchant_activate(merchant_id=MerchantFactory(short_name=short_name).pk, actor=None, reason="test persona")


@pytest.fixture
def banks(tea_house):
    """As on the demo: Bank A takes UnionPay QR payments up to 50,000 yuan, Bank B up to 20,000 (Alipay QR ones up to
    50,000 both). The Tea House has a contract on each; the Noodle Bar only on Bank A, and only for UnionPay QR."""
    bank_a, bank_b = bank("bank-a", max_amount=5_000_000), bank("bank-b", max_amount=2_000_000, cost="0.0025")
    contract_on(bank_a, tea_house, sub_mchid="A-TEA", products=(QR, "alipay.qr"))
    contract_on(bank_b, tea_house, sub_mchid="B-TEA", products=(QR, "alipay.qr"))
    noodles = merchant("Noodle Bar")
    contract_on(bank_a, noodles, sub_mchid="A-NOODLE", products=(QR,))
    return {"a": bank_a, "b": bank_b, "noodles": noodles}


def disable_form(html: str) -> str:
    return re.search(r'<details class="inline-edit" id="disable">(.*?)</details>', html, re.S).group(1)


def product_line(form: str, product: str) -> str:
    return re.search(rf'<li data-product="{re.escape(product)}"(.*?)</li>\s*(?=<li data-product|</ul>\s*</div>)',
                     form, re.S).group(1)


def text(html: str) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def test_the_disable_form_names_each_merchant_left_without_an_account_and_the_amounts(ops, banks, tea_house):
    form = disable_form(ops.get(reverse("channels:account_detail", args=["bank-a"])).content.decode())

    qr = product_line(form, QR)
    assert qr.startswith(" data-refused")
    assert f"Tea House {tea_house.merchant_no} ¥20,000.01–¥50,000.00" in text(qr)
    assert f"Noodle Bar {banks['noodles'].merchant_no} ¥0.01–¥50,000.00" in text(qr)
    warning = text(re.search(r'data-role="refused-warning"[^>]*>(.*?)</div>', form, re.S).group(1))
    assert warning.startswith(f"Disabling it stops {QR}: Tea House ({tea_house.merchant_no}) ¥20,000.01–¥50,000.00; "
                              f"{QR}: Noodle Bar ({banks['noodles'].merchant_no}) ¥0.01–¥50,000.00:")
    assert "422 product_not_available" in warning
    summary = text(re.search(r"<summary>(.*?)</summary>", form, re.S).group(1))
    assert summary == "Disable this account… refuses 2 merchants' orders no other account of theirs takes — see below"


def test_a_product_another_account_takes_for_every_merchant_is_not_flagged(ops, banks):
    """Alipay QR: of Bank A's merchants only the Tea House takes it, and Bank B takes its payments as large as Bank A
    does."""
    form = disable_form(ops.get(reverse("channels:account_detail", args=["bank-a"])).content.decode())

    line = product_line(form, "alipay.qr")
    assert "data-refused" not in line
    assert "1 contract takes these orders here today; another account of each merchant takes them all" in text(line)


def test_what_the_form_warns_of_is_what_routing_refuses_once_the_account_is_disabled(ops, banks, tea_house):
    """The preview is routing's answer, not a copy of its rules: after the disable, a 25,000-yuan payment of the Tea
    House finds no account, a 20,000-yuan one goes to Bank B."""
    assert choose(merchant=tea_house, product=QR, amount=2_500_000).chosen.account_code == "bank-a"

    ops.post(reverse("channels:account_disable", args=["bank-a"]), {"reason": "the bank's gateway is down"})

    assert ChannelAccount.objects.get(code="bank-a").enabled is False
    assert choose(merchant=tea_house, product=QR, amount=2_000_001).chosen is None
    assert choose(merchant=tea_house, product=QR, amount=2_000_000).chosen.account_code == "bank-b"
    assert choose(merchant=banks["noodles"], product=QR, amount=1).chosen is None


def test_a_disabled_account_has_no_preview_to_show(ops, banks):
    ops.post(reverse("channels:account_disable", args=["bank-a"]), {"reason": "the bank's gateway is down"})

    page = ops.get(reverse("channels:account_detail", args=["bank-a"]))

    assert page.context["disable_preview"] is None
    assert 'data-role="disable-preview"' not in page.content.decode()


def test_the_page_reads_routing_once_per_merchant_and_product_whatever_the_bands(ops, banks, tea_house):
    """Five more banks of the Tea House, each with its own limits, cut its UnionPay QR payments into many bands:
    the page costs no more queries for it (routing's rows are read once per merchant and product)."""
    url = reverse("channels:account_detail", args=["bank-a"])
    ops.get(url)  # the session and the permission caches
    credentials.generation_bump()  # routing reads its rows again, as after any change
    with CaptureQueriesContext(connection) as few_bands:
        ops.get(url)
    for i in range(5):
        contract_on(bank(f"bank-x{i}", max_amount=100_000 * (i + 1), alipay_max_amount=100_000 * (i + 1),
                         cost=f"0.003{i}"), tea_house,
                    sub_mchid=f"X{i}-TEA", products=(QR, "alipay.qr"))
    credentials.generation_bump()

    with CaptureQueriesContext(connection) as many_bands:
        response = ops.get(url)

    tea = next(s for product, s in response.context["disable_preview"].stranded if s.contract.merchant == tea_house)
    assert tea.amounts == "¥20,000.01–¥50,000.00"
    assert len(many_bands) == len(few_bands)
