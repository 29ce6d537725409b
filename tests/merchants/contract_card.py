"""Reading the merchant page's contract cards and the limit preview, for the tests of contract limits (tests/merchants
and tests/risk): the page's URL, one contract's card, its limit form, a preview line, the visible text."""

from __future__ import annotations

import re


def page(merchant) -> str:
    return f"/staff/merchants/{merchant.merchant_no}/"


def card(html: str, contract) -> str:
    match = re.search(rf'<section class="card contract-card" id="contract-{contract.pk}".*?</section>', html, re.S)
    assert match, f"no card for contract {contract.pk}"
    return match.group()


def limit_form(card_html: str) -> str:
    match = re.search(r'<details [^>]*data-role="limit-form".*?</details>', card_html, re.S)
    assert match, "no limit form"
    return match.group()


def text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def product_line(html: str, product: str) -> str:
    """One product's line of a limit preview (risk.traffic_preview): its flag attributes, then its text."""
    match = re.search(rf'<li data-product="{re.escape(product)}"(?P<flag>[^>]*)>(?P<body>.*?)</li>', html, re.S)
    assert match, f"no preview line for {product}"
    return match.group("flag") + text(match.group("body"))
