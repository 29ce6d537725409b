"""What a payer's phone — or anyone typing URLs — can send the store-code pages (merchant-api.md "Payer-facing
pages"): whatever the path holds, the answer is a page that says the code is not valid, never a server error."""

from __future__ import annotations

import pytest

from tests.trades.onecode_flow import UA_WECHAT

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("code", ["abc%00def", "%00", "x" * 300, "S%C3%BCd-code", "a.b"])
@pytest.mark.parametrize(("suffix", "status"), [("", 404), ("/pay", 404), ("/oauth?state=x&code=y", 400)])
def test_a_store_code_path_that_cannot_be_a_code_gets_the_not_valid_page(client, code, suffix, status):
    # A NUL byte reached PostgreSQL, which refuses it in a text parameter: the public page answered 500.
    answer = client.get(f"/c/{code}{suffix}", HTTP_USER_AGENT=UA_WECHAT)
    assert answer.status_code == status
    assert "This code is not valid" in answer.content.decode() or "no such store code" in answer.content.decode()
