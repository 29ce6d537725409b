"""A refused account form never sends back the credentials just pasted into it (design §8: secrets encrypted at
rest, masked in pages; channels.forms): the ops user pastes them again, and every other field is kept."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from channels.models import ChannelAccount
from channels.services.accounts import channel_account_create
from tests.conftest import STAFF_PASSWORD
from tests.factories import _rsa_pem_pair, channel_config

pytestmark = pytest.mark.django_db

_PEM_LINE = re.compile(r"^[A-Za-z0-9+/=]{40,}$", re.MULTILINE)

# Per kind: the ids and settings a refused form keeps, and the secrets (each adapter's CONFIG_SECRET_FIELDS) it
# must not echo. The private keys are fresh, so they can only be in the page if the page echoes the post.
_PASTED_KEY = _rsa_pem_pair("pasted:ours")[0]
FIELDS = {
    "wechatpay": {
        "kept": {"sp_mchid": "1900000777", "sp_appid": "wx7777777777777777",
                 "serial_no": "7157F09EFDC096DE15EBE81A47057A7232F1B8E7",
                 "wechatpay_public_key_id": "PUB_KEY_ID_0119000001002024112600000000000777"},
        "secret": {"private_key_pem": _PASTED_KEY, "apiv3_key": "pastedApiV3Key0123456789abcdefXY",
                   "apiv2_key": "pastedApiV2Key0123456789abcdefXY", "sp_appsecret": "pasted-app-secret-4711"},
    },
    "alipay": {
        "kept": {"app_id": "2021000000000777", "isv_pid": "2088000000000777", "sign_type": "RSA2"},
        "secret": {"app_private_key": _PASTED_KEY, "aes_key": "pastedAesKey0123456789=="},
    },
    "bank": {
        "kept": {"org_no": "ORG0777", "key_id": "K0777", "bank_key_id": "BK0777"},
        "secret": {"private_key_pem": _PASTED_KEY},
    },
}


def _fragments(secrets: dict[str, str]) -> list[str]:
    """Each secret's text, and each base64 line of a pasted PEM key (a page may wrap or escape the block)."""
    fragments = []
    for value in secrets.values():
        fragments += _PEM_LINE.findall(value) if "-----BEGIN" in value else [value]
    return fragments


def _assert_secrets_not_shown_and_the_rest_kept(response, kind: str, *, name: str, base_url: str) -> None:
    html = response.content.decode()
    assert response.status_code == 200  # refused, the form shown again, on the field at fault
    assert list(response.context["form"].errors) == (["base_url"] if name else ["name"])
    fragments = _fragments(FIELDS[kind]["secret"])
    assert len(fragments) >= len(FIELDS[kind]["secret"])
    for fragment in fragments:
        assert fragment not in html, "a pasted secret is in the refused form's page"
    assert "PRIVATE KEY" not in html
    for value in [*FIELDS[kind]["kept"].values(), base_url] + ([name] if name else []):
        assert f'value="{value}"' in html


def _post_data(kind: str, *, name: str, base_url: str, extra: dict) -> dict:
    _, theirs = _rsa_pem_pair(f"{kind}:channel")
    public = {"wechatpay": "wechatpay_public_key_pem", "alipay": "alipay_public_key", "bank": "bank_public_key_pem"}
    config = {**FIELDS[kind]["kept"], **FIELDS[kind]["secret"], public[kind]: theirs}
    return {"name": name, "mode": "bank" if kind == "bank" else "isv", "base_url": base_url, "notes": "",
            **{f"config__{key}": value for key, value in config.items()}, **extra}


@pytest.fixture
def ops(client, staff_member):
    staff_member("operations", username="ops-amy")
    assert client.login(username="ops-amy", password=STAFF_PASSWORD)
    return client


# Refused by the form (a blank name) or by the service after the form passed (a base_url that is not http(s)).
REFUSALS = [pytest.param("", "http://127.0.0.1:9/channel", id="form"),
            pytest.param("Channel 7", "ftp://127.0.0.1/channel", id="service")]


@pytest.mark.parametrize("kind", ["wechatpay", "alipay", "bank"])
@pytest.mark.parametrize(("name", "base_url"), REFUSALS)
def test_a_refused_create_form_does_not_show_the_pasted_secrets_back(ops, kind, name, base_url):
    data = _post_data(kind, name=name, base_url=base_url, extra={"kind": kind, "code": f"{kind}-7", "reason": "new"})

    response = ops.post(reverse("channels:account_create") + f"?kind={kind}", data)

    _assert_secrets_not_shown_and_the_rest_kept(response, kind, name=name, base_url=base_url)
    assert not ChannelAccount.objects.filter(code=f"{kind}-7").exists()
    assert f'value="{kind}-7"' in response.content.decode()  # the code too


@pytest.mark.parametrize("kind", ["wechatpay", "alipay", "bank"])
@pytest.mark.parametrize(("name", "base_url"), REFUSALS)
def test_a_refused_edit_form_does_not_show_the_pasted_secrets_back(ops, kind, name, base_url):
    channel_account_create(actor="test", kind=kind, code=f"{kind}-7", name="Before", config=channel_config(kind),
                           base_url="http://127.0.0.1:9/before")
    data = _post_data(kind, name=name, base_url=base_url, extra={"reason": "rotate the keys"})

    response = ops.post(reverse("channels:account_edit", args=[f"{kind}-7"]), data)

    _assert_secrets_not_shown_and_the_rest_kept(response, kind, name=name, base_url=base_url)
    account = ChannelAccount.objects.get(code=f"{kind}-7")  # nothing of the refused post was saved
    assert account.name == "Before"
    assert all(account.config.get(key) != value for key, value in FIELDS[kind]["secret"].items())
    # The page says why the key fields are empty.
    assert "paste it again" in response.content.decode()
