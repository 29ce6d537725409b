"""Finance reads trades (its role holds trades.view_*, design §8: fees, bills, statements): its section links to the
trade search like support's and operations', and the trade pages' heading names no section — it would claim Support
for a finance user."""

from __future__ import annotations

import re

import pytest

from aggpay.roles import staff_sections

pytestmark = pytest.mark.django_db


def heading(html: str) -> str:
    match = re.search(r'<div class="page-title">(.*?)</div>', html, re.S)
    assert match, "no page title"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


def test_the_finance_section_links_to_the_trades(staff_member):
    (finance,) = staff_sections(staff_member("finance"))

    assert finance["slug"] == "finance"
    assert {"label": "Trades", "url": "/staff/trades/"} in finance["links"]


def test_a_finance_user_opens_the_trades_from_its_own_section_and_the_heading_claims_no_other(client,
                                                                                             staff_member):
    client.force_login(staff_member("finance"))

    response = client.get("/staff/trades/")

    assert response.status_code == 200
    (section,) = response.context["staff_nav"]
    assert section["slug"] == "finance"
    assert [link["label"] for link in section["links"] if link["active"]] == ["Trades"]
    assert heading(response.content.decode()) == "Trades 交易"
    assert "Support" not in heading(response.content.decode())


@pytest.mark.parametrize("role", ["support_agent", "operations"])
def test_support_and_operations_see_the_same_heading(client, staff_member, role):
    client.force_login(staff_member(role))

    assert heading(client.get("/staff/trades/").content.decode()) == "Trades 交易"
