"""A payment code tells which wallet it belongs to (issue 5)."""

from __future__ import annotations

import pytest

from aggpay.errors import InvalidRequest
from trades.products import barcode_product


@pytest.mark.parametrize(("code", "product"), [
    ("134567890123456789", "wechat.barcode"),
    ("101234567890123456", "wechat.barcode"),
    ("2812345678901234", "alipay.barcode"),
    ("301234567890123456789012", "alipay.barcode"),
    ("6212345678901234567", "unionpay.barcode"),
])
def test_it_detects_the_wallet_from_the_payment_code(code, product):
    assert barcode_product(code) == product


@pytest.mark.parametrize("code", ["", "16123456789012345", "1345678901234567890", "31123456789012345",
                                  "621234567890123456", "abc", "2412345678901234"])
def test_it_refuses_codes_of_no_wallet_naming_the_field(code):
    with pytest.raises(InvalidRequest) as excinfo:
        barcode_product(code)
    assert excinfo.value.param == "auth_code"


# "13" then 16 full-width digits, "28" then 14 Arabic-Indic ones, "62" then 17 Devanagari ones: each is a digit to
# Python's \d, and none is a code any wallet prints.
NON_ASCII_CODES = ["13" + "１" * 16, "28" + "٣" * 14, "62" + "७" * 17]


@pytest.mark.parametrize("code", NON_ASCII_CODES)
def test_it_refuses_codes_in_digits_other_than_ascii(code):
    with pytest.raises(InvalidRequest) as excinfo:
        barcode_product(code)
    assert excinfo.value.param == "auth_code"


@pytest.mark.parametrize("code", NON_ASCII_CODES)
def test_the_api_refuses_an_auth_code_in_digits_other_than_ascii_naming_it(code):
    from trades.api.orders import OrderCreateInputSerializer

    serializer = OrderCreateInputSerializer(data={"out_trade_no": "T100001", "amount": 100, "product": "barcode",
                                                  "subject": "tea", "auth_code": code})
    assert not serializer.is_valid()
    assert "auth_code" in serializer.errors
