"""aggpay.masking: PII is masked in pages and logs, keeping only enough to recognise it (design §5 rule 10)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggpay.masking import (
    mask_bank_account,
    mask_email,
    mask_id_number,
    mask_middle,
    mask_name,
    mask_phone,
    mask_secret,
)


def test_it_keeps_the_region_and_the_last_four_of_a_resident_id():
    assert mask_id_number("110101199003071234") == "110101********1234"
    assert mask_id_number("11010119900307123X") == "110101********123X"


def test_it_masks_a_short_id_number_almost_entirely():
    # Not a resident ID (passport, HK/Macau permit): keep one character at each end only.
    assert mask_id_number("E1234567") == "E******7"


def test_it_keeps_only_the_last_four_digits_of_a_bank_account():
    assert mask_bank_account("6222021234567890") == "************7890"


def test_it_masks_the_middle_of_a_mobile_number():
    assert mask_phone("13812345678") == "138****5678"


def test_it_keeps_only_the_family_name():
    assert mask_name("张三丰") == "张**"
    assert mask_name("张") == "*"


def test_it_keeps_the_first_letter_and_the_domain_of_an_email():
    assert mask_email("alice@example.com") == "a****@example.com"
    assert mask_email("not-an-email") == "n***********"


@pytest.mark.parametrize("masker", [mask_id_number, mask_bank_account, mask_phone, mask_name, mask_email])
def test_it_gives_an_empty_string_for_a_missing_value(masker):
    assert masker(None) == ""
    assert masker("") == ""


def test_it_never_shows_a_secret_only_whether_one_is_set():
    assert mask_secret("s3cr3t-value") == "•••••• (set)"
    assert "s3cr3t" not in mask_secret("s3cr3t-value")
    assert mask_secret("") == "(not set)"


def test_a_value_no_longer_than_what_would_be_kept_is_masked_whole():
    assert mask_middle("1234", keep_start=3, keep_end=4) == "****"


@given(
    value=st.text(alphabet="0123456789ABCDEFX", min_size=1, max_size=40),
    keep_start=st.integers(min_value=0, max_value=6),
    keep_end=st.integers(min_value=0, max_value=6),
)
def test_masking_keeps_the_length_and_reveals_at_most_the_kept_characters(value, keep_start, keep_end):
    masked = mask_middle(value, keep_start=keep_start, keep_end=keep_end)
    assert len(masked) == len(value)
    revealed = sum(1 for a, b in zip(masked, value, strict=True) if a != "*" and a == b)
    assert revealed <= keep_start + keep_end
    if len(value) > keep_start + keep_end:
        assert masked[keep_start : len(value) - keep_end] == "*" * (len(value) - keep_start - keep_end)
