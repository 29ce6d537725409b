"""The OpenAPI document refuses what the API refuses (/api/schema/, merchant-api.md: the document "must agree with"
the contract), so a generated client or a schema-driven tester does not send what is bound to be a 400. Bug: the
request bodies allowed any extra property (the API refuses an unknown field, naming it), `payer` any string key
(the API takes `openid`, `buyer_id` or `user_id`, one of them), `client_ip` any string (the API takes an IPv4 or
IPv6 address), and text any character (the API refuses control and bidirectional formatting characters).
"""

from __future__ import annotations

import re

import pytest

from tests.aggpay.test_schema import _schema_document


@pytest.fixture(scope="module")
def schemas() -> dict:
    return _schema_document()["components"]["schemas"]


@pytest.mark.parametrize("component", ["OrderCreateInputRequest", "RefundCreateInputRequest", "PayerInputRequest",
                                       "PartnerMerchantCreateInputRequest", "PartnerStoreInputRequest"])
def test_a_request_body_allows_no_property_it_does_not_list(schemas, component):
    assert schemas[component]["additionalProperties"] is False


def test_payer_lists_the_wallets_keys_and_takes_one(schemas):
    payer_ref = schemas["OrderCreateInputRequest"]["properties"]["payer"]["allOf"][0]["$ref"]
    payer = schemas[payer_ref.rsplit("/", 1)[-1]]
    assert set(payer["properties"]) == {"openid", "buyer_id", "user_id"}
    assert payer["maxProperties"] == 1 and payer["additionalProperties"] is False


def test_client_ip_is_an_ipv4_or_ipv6_address(schemas):
    client_ip = schemas["OrderCreateInputRequest"]["properties"]["client_ip"]
    assert {option["format"] for option in client_ip["anyOf"]} == {"ipv4", "ipv6"}


@pytest.mark.parametrize(("component", "field"), [
    ("OrderCreateInputRequest", "subject"), ("OrderCreateInputRequest", "description"),
    ("OrderCreateInputRequest", "store_id"), ("OrderCreateInputRequest", "terminal_id"),
    ("RefundCreateInputRequest", "reason"), ("PayerInputRequest", "openid"),
])
def test_text_refuses_control_and_bidi_characters_and_a_blank_field_still_takes_empty(schemas, component, field):
    schema = schemas[component]["properties"][field]
    options = schema.get("oneOf", [schema])  # a field that may be blank: its text, or ""
    pattern = next(option["pattern"] for option in options if "pattern" in option)
    assert re.fullmatch(pattern, "龙井 🍵 tea")
    for hidden in ("\u202e", "\u2066", "\u200f", "\n", "\x00", "\x85"):
        assert not re.fullmatch(pattern, f"tea{hidden}txt"), repr(hidden)
    if "oneOf" in schema:  # "" matches exactly one branch, as oneOf asks
        assert sum(1 for o in options if ("pattern" in o and re.fullmatch(o["pattern"], ""))
                   or o.get("maxLength") == 0) == 1
