"""A trade page's routing record says how its account was chosen in the words its chosen candidate's reason uses
(issue 5 "Staff pages", design §7). A support agent's trial read "Chosen by priority" above "chosen: lowest net cost":
the record's layer ("priority") was shown as it is stored, while channels.routing ranks by net cost."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.trades.test_staff_workbench import _order
from trades.models import Order


def _chosen_by(html: str) -> str:
    return re.search(r"<dt>Chosen by</dt><dd[^>]*>([^<]*)</dd>", html).group(1)


def test_an_order_routed_by_net_cost_says_it_was_chosen_by_lowest_net_cost_as_its_candidate_does(shop, client,
                                                                                                   agent):
    status, _, created = shop.client.request("POST", "/api/v1/orders", json={
        "out_trade_no": "ROUTE-WORDS-1", "amount": 800, "product": "wechat.native", "subject": "tea"})
    assert status == 201, created
    order = Order.objects.get(pk=created["id"])
    assert order.routing["layer"] == "priority"

    html = client.get(reverse("trades:detail", args=[order.pk])).content.decode()

    assert _chosen_by(html).startswith("lowest net cost")
    assert "chosen: lowest net cost" in html  # the chosen candidate's own reason, below
    assert ">priority<" not in html


@pytest.mark.django_db
@pytest.mark.parametrize(("layer", "words"), [
    ("failover", "failover: the next lowest net cost, after the first choice refused"),
    ("cashier", "not chosen yet: the payer picks a wallet at the cashier"),
    ("rule", "rule"),  # a layer the page has no words for yet is shown as recorded
])
def test_each_routing_layer_is_said_in_words(tea_house, client, agent, layer, words):
    order = _order(tea_house, f"ROUTE-{layer}", routing={"layer": layer, "chosen": None, "candidates": []})

    html = client.get(reverse("trades:detail", args=[order.pk])).content.decode()

    assert _chosen_by(html) == words
