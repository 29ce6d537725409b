"""Staff manage a merchant's API apps (merchants/services/apps.py): issue one (HMAC or RSA), change its notify URL,
rotate its secret, replace its RSA key, deactivate and reactivate it, and make a merchant a partner. Every change is
permission-checked and audited; bad input names the field and writes nothing."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from aggpay.errors import Forbidden, InvalidRequest, InvalidState
from aggpay.models import AuditLog
from merchants.models import Merchant, MerchantApp
from merchants.services.apps import (
    merchant_app_create,
    merchant_app_deactivate,
    merchant_app_issue,
    merchant_app_notify_url_set,
    merchant_app_public_key_replace,
    merchant_app_reactivate,
    merchant_app_secret_rotate,
    merchant_partner_set,
    public_key_fingerprint,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _public_pem(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def other_rsa_public_pem():
    return _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def dsa_public_pem():
    return _public_pem(dsa.generate_private_key(key_size=2048))


@pytest.fixture
def superuser(db):
    return UserFactory(username="root.admin", is_superuser=True)


def _audit(action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=action))


class _WritesNothing:
    """Counts apps, merchants' partner flags and audit rows before and after a refused call."""

    def __enter__(self):
        self.before = self._state()
        return self

    def __exit__(self, *exc):
        assert self._state() == self.before
        return False

    @staticmethod
    def _state():
        return (list(MerchantApp.objects.order_by("pk").values_list("app_id", "secret", "public_key_pem", "notify_url",
                                                                      "active")),
                list(Merchant.objects.order_by("pk").values_list("is_partner", flat=True)),
                AuditLog.objects.count())


# --- issuing -------------------------------------------------------------------------------------------------
def test_it_issues_an_hmac_app_and_hands_its_secret_over_once(tea_house, clerk_wang):
    app, secret = merchant_app_issue(merchant_id=tea_house.pk, actor=clerk_wang, name="shop backend",
                                     scopes=["payments"], sign_type="hmac",
                                     notify_url="https://shop.example.com/aggpay/notify")
    app.refresh_from_db()
    assert secret and app.secret == secret and app.active
    assert (app.name, app.scopes, app.sign_type, app.notify_url) == (
        "shop backend", ["payments"], "hmac", "https://shop.example.com/aggpay/notify")
    # Shown on the answer to the issuing clerk: it is not offered again, only rotated.
    assert app.secret_revealed_at is not None
    created, = _audit("merchants.app.created")
    revealed, = _audit("merchants.app.secret_revealed")
    assert created.actor == revealed.actor == clerk_wang and created.target_id == str(app.pk)
    assert secret not in str(created.data)


def test_it_issues_an_rsa_app_with_the_pasted_key_stored_in_one_spelling(tea_house, clerk_wang, merchant_rsa_keypair):
    pasted = "\r\n".join(merchant_rsa_keypair[1].strip().splitlines()) + "\r\n\r\n"  # as a browser textarea sends it
    app, secret = merchant_app_issue(merchant_id=tea_house.pk, actor=clerk_wang, name="pos", scopes=["payments"],
                                     sign_type="rsa", public_key_pem=pasted)
    app.refresh_from_db()
    assert secret is None and app.secret == "" and app.secret_revealed_at is None
    assert app.public_key_pem == merchant_rsa_keypair[1]
    created, = _audit("merchants.app.created")
    assert created.data["public_key_sha256"] == public_key_fingerprint(merchant_rsa_keypair[1])


def test_it_accepts_a_pkcs1_rsa_public_key_and_stores_it_as_spki(tea_house, clerk_wang, merchant_rsa_keypair):
    key = serialization.load_pem_public_key(merchant_rsa_keypair[1].encode())
    pkcs1 = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1).decode()
    app, _ = merchant_app_issue(merchant_id=tea_house.pk, actor=clerk_wang, name="pos", scopes=["payments"],
                                sign_type="rsa", public_key_pem=pkcs1)
    assert app.public_key_pem == merchant_rsa_keypair[1]


@pytest.mark.parametrize("kind, message", [
    ("rsa1024", "at least 2048 bits (this one has 1024)"),
    ("ec", "must be an RSA key"),
    ("dsa2048", "must be an RSA key"),
    ("private", "is a PRIVATE key"),
    ("garbage", "is not a PEM public key"),
    ("empty", "is required for an RSA app"),
])
def test_it_refuses_a_key_that_is_not_an_rsa_public_key_of_2048_bits(tea_house, clerk_wang, dsa_public_pem, kind,
                                                                     message):
    pem = {
        "rsa1024": lambda: _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        "ec": lambda: _public_pem(ec.generate_private_key(ec.SECP256R1())),
        "dsa2048": lambda: dsa_public_pem,
        "private": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode(),
        "garbage": lambda: "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n",
        "empty": lambda: "  ",
    }[kind]()
    with _WritesNothing(), pytest.raises(InvalidRequest) as refused:
        merchant_app_issue(merchant_id=tea_house.pk, actor=clerk_wang, name="pos", scopes=["payments"],
                           sign_type="rsa", public_key_pem=pem)
    assert refused.value.param == "public_key_pem" and message in refused.value.message
    assert "PRIVATE KEY-----" not in refused.value.message  # a pasted private key is never echoed


def test_the_low_level_create_refuses_a_dsa_key_too(tea_house, dsa_public_pem):
    """merchant_app_create (activation, demo seed) checked only the key's size: a 2048-bit DSA key passed as RSA."""
    with pytest.raises(InvalidRequest) as refused:
        merchant_app_create(merchant=tea_house, actor=None, scopes=["payments"], sign_type="rsa",
                            public_key_pem=dsa_public_pem)
    assert refused.value.param == "public_key_pem"
    assert not MerchantApp.objects.filter(sign_type="rsa").exists()


@pytest.mark.parametrize("url", ["ftp://shop.example.com/notify", "javascript:alert(1)", "shop.example.com/notify",
                                 "https://" + "a" * 510 + ".com"])
def test_it_refuses_a_notify_url_that_is_not_http(tea_house, clerk_wang, url):
    with _WritesNothing(), pytest.raises(InvalidRequest) as refused:
        merchant_app_issue(merchant_id=tea_house.pk, actor=clerk_wang, name="shop", scopes=["payments"],
                           sign_type="hmac", notify_url=url)
    assert refused.value.param == "notify_url"


@pytest.mark.parametrize("field, kwargs", [
    ("name", {"name": "  "}),
    ("name", {"name": "x" * 65}),
    ("scopes", {"scopes": []}),
    ("scopes", {"scopes": ["payments", "refunds"]}),
    ("sign_type", {"sign_type": "md5"}),
])
def test_it_refuses_a_missing_or_unknown_field_by_name(tea_house, clerk_wang, field, kwargs):
    arguments = {"name": "shop", "scopes": ["payments"], "sign_type": "hmac", **kwargs}
    with _WritesNothing(), pytest.raises(InvalidRequest) as refused:
        merchant_app_issue(merchant_id=tea_house.pk, actor=clerk_wang, **arguments)
    assert refused.value.param == field


def test_the_onboarding_scope_is_only_for_partners(tea_house, westlake_agency, clerk_wang):
    with _WritesNothing(), pytest.raises(InvalidRequest) as refused:
        merchant_app_issue(merchant_id=tea_house.pk, actor=clerk_wang, name="agent", scopes=["onboarding"],
                           sign_type="hmac")
    assert refused.value.param == "scopes" and "is not one" in refused.value.message
    app, _ = merchant_app_issue(merchant_id=westlake_agency.pk, actor=clerk_wang, name="agent",
                                scopes=["onboarding", "payments"], sign_type="hmac")
    assert app.scopes == ["onboarding", "payments"]


def test_a_closed_merchant_gets_no_new_app(tea_house, clerk_wang):
    Merchant.objects.filter(pk=tea_house.pk).update(state="closed")  # no close service yet
    with _WritesNothing(), pytest.raises(InvalidState):
        merchant_app_issue(merchant_id=tea_house.pk, actor=clerk_wang, name="shop", scopes=["payments"],
                           sign_type="hmac")


# --- changing an app -----------------------------------------------------------------------------------------
def test_it_sets_and_clears_the_notify_url(tea_house_app, clerk_wang):
    app = merchant_app_notify_url_set(app_id=tea_house_app.app_id, actor=clerk_wang,
                                      notify_url=" https://tea.example.com/notify ")
    assert MerchantApp.objects.get(pk=app.pk).notify_url == "https://tea.example.com/notify"
    merchant_app_notify_url_set(app_id=tea_house_app.app_id, actor=clerk_wang, notify_url="")
    assert MerchantApp.objects.get(pk=app.pk).notify_url == ""
    first, cleared = reversed(_audit("merchants.app.notify_url_changed"))
    assert first.data == {"from": "http://127.0.0.1:9/notify", "to": "https://tea.example.com/notify",
                          "deliveries_moved": 0}
    assert cleared.data["to"] == "" and cleared.actor == clerk_wang
    with _WritesNothing(), pytest.raises(InvalidRequest) as refused:
        merchant_app_notify_url_set(app_id=tea_house_app.app_id, actor=clerk_wang, notify_url="mailto:a@b.cn")
    assert refused.value.param == "notify_url"


def test_it_rotates_an_hmac_secret_and_hands_the_new_one_over_once(tea_house_app, clerk_wang):
    old = tea_house_app.secret
    app, secret = merchant_app_secret_rotate(app_id=tea_house_app.app_id, actor=clerk_wang, reason="leaked in a log")
    app.refresh_from_db()
    assert secret != old and app.secret == secret and app.secret_revealed_at is not None
    rotated, = _audit("merchants.app.secret_rotated")
    assert rotated.reason == "leaked in a log" and rotated.actor == clerk_wang and secret not in str(rotated.data)
    assert len(_audit("merchants.app.secret_revealed")) == 1


def test_an_rsa_app_has_no_secret_to_rotate(tea_house_rsa_app, clerk_wang):
    with _WritesNothing(), pytest.raises(InvalidState) as refused:
        merchant_app_secret_rotate(app_id=tea_house_rsa_app.app_id, actor=clerk_wang)
    assert "replace its public key" in refused.value.message


def test_it_replaces_an_rsa_public_key(tea_house_rsa_app, clerk_wang, merchant_rsa_keypair, other_rsa_public_pem):
    merchant_app_public_key_replace(app_id=tea_house_rsa_app.app_id, actor=clerk_wang,
                                    public_key_pem=other_rsa_public_pem, reason="yearly key change")
    assert MerchantApp.objects.get(pk=tea_house_rsa_app.pk).public_key_pem == other_rsa_public_pem
    replaced, = _audit("merchants.app.public_key_replaced")
    assert replaced.data == {"from_sha256": public_key_fingerprint(merchant_rsa_keypair[1]),
                             "to_sha256": public_key_fingerprint(other_rsa_public_pem)}
    with _WritesNothing(), pytest.raises(InvalidRequest) as same:
        merchant_app_public_key_replace(app_id=tea_house_rsa_app.app_id, actor=clerk_wang,
                                        public_key_pem=other_rsa_public_pem)
    assert same.value.param == "public_key_pem" and "already registered" in same.value.message


def test_an_hmac_app_gets_no_public_key(tea_house_app, clerk_wang, other_rsa_public_pem):
    with _WritesNothing(), pytest.raises(InvalidState):
        merchant_app_public_key_replace(app_id=tea_house_app.app_id, actor=clerk_wang,
                                        public_key_pem=other_rsa_public_pem)


def test_a_bad_replacement_key_names_the_field_and_keeps_the_old_one(tea_house_rsa_app, clerk_wang):
    weak = _public_pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with _WritesNothing(), pytest.raises(InvalidRequest) as refused:
        merchant_app_public_key_replace(app_id=tea_house_rsa_app.app_id, actor=clerk_wang, public_key_pem=weak)
    assert refused.value.param == "public_key_pem"


def test_it_deactivates_and_reactivates_an_app(tea_house_app, clerk_wang):
    merchant_app_deactivate(app_id=tea_house_app.app_id, actor=clerk_wang, reason="merchant asked")
    assert not MerchantApp.objects.get(pk=tea_house_app.pk).active
    with _WritesNothing(), pytest.raises(InvalidState):
        merchant_app_deactivate(app_id=tea_house_app.app_id, actor=clerk_wang)
    merchant_app_reactivate(app_id=tea_house_app.app_id, actor=clerk_wang)
    assert MerchantApp.objects.get(pk=tea_house_app.pk).active
    with _WritesNothing(), pytest.raises(InvalidState):
        merchant_app_reactivate(app_id=tea_house_app.app_id, actor=clerk_wang)
    deactivated, = _audit("merchants.app.deactivated")
    assert deactivated.reason == "merchant asked" and len(_audit("merchants.app.reactivated")) == 1


def test_an_app_of_a_closed_merchant_stays_inactive(tea_house_app, clerk_wang):
    merchant_app_deactivate(app_id=tea_house_app.app_id, actor=clerk_wang)
    Merchant.objects.filter(pk=tea_house_app.merchant_id).update(state="closed")  # no close service yet
    with _WritesNothing(), pytest.raises(InvalidState):
        merchant_app_reactivate(app_id=tea_house_app.app_id, actor=clerk_wang)


# --- partners ------------------------------------------------------------------------------------------------
def test_a_superuser_makes_a_merchant_a_partner_and_back(tea_house, superuser):
    merchant_partner_set(merchant_id=tea_house.pk, actor=superuser, is_partner=True, reason="agent agreement A-17")
    assert Merchant.objects.get(pk=tea_house.pk).is_partner
    with _WritesNothing(), pytest.raises(InvalidState):
        merchant_partner_set(merchant_id=tea_house.pk, actor=superuser, is_partner=True, reason="again")
    merchant_partner_set(merchant_id=tea_house.pk, actor=superuser, is_partner=False, reason="agreement ended")
    assert not Merchant.objects.get(pk=tea_house.pk).is_partner
    made, = _audit("merchants.merchant.partner_set")
    assert made.reason == "agent agreement A-17" and made.actor == superuser
    assert _audit("merchants.merchant.partner_unset")[0].reason == "agreement ended"


def test_making_a_partner_needs_a_reason(tea_house, superuser):
    with _WritesNothing(), pytest.raises(InvalidRequest) as refused:
        merchant_partner_set(merchant_id=tea_house.pk, actor=superuser, is_partner=True, reason=" ")
    assert refused.value.param == "reason"


def test_a_staff_member_granted_the_partner_permission_makes_a_partner(tea_house):
    from django.contrib.auth.models import Permission

    manager = UserFactory(username="bd.manager")
    manager.user_permissions.add(Permission.objects.get(codename="designate_partner",
                                                        content_type__app_label="merchants"))
    merchant_partner_set(merchant_id=tea_house.pk, actor=manager, is_partner=True, reason="agent agreement A-18")
    assert Merchant.objects.get(pk=tea_house.pk).is_partner


# --- permissions ---------------------------------------------------------------------------------------------
def test_clerks_may_not_make_partners(tea_house, clerk_wang):
    with _WritesNothing(), pytest.raises(Forbidden):
        merchant_partner_set(merchant_id=tea_house.pk, actor=clerk_wang, is_partner=True, reason="because")


def _every_change(actor, *, merchant, hmac_app, rsa_app, public_key_pem):
    return [
        lambda: merchant_app_issue(merchant_id=merchant.pk, actor=actor, name="x", scopes=["payments"],
                                   sign_type="hmac"),
        lambda: merchant_app_notify_url_set(app_id=hmac_app.app_id, actor=actor, notify_url="https://x.example.com/"),
        lambda: merchant_app_secret_rotate(app_id=hmac_app.app_id, actor=actor),
        lambda: merchant_app_public_key_replace(app_id=rsa_app.app_id, actor=actor, public_key_pem=public_key_pem),
        lambda: merchant_app_deactivate(app_id=hmac_app.app_id, actor=actor),
        lambda: merchant_app_reactivate(app_id=hmac_app.app_id, actor=actor),
        lambda: merchant_partner_set(merchant_id=merchant.pk, actor=actor, is_partner=True, reason="r"),
    ]


@pytest.mark.parametrize("role", ["risk_officer", "support_agent", "operations", "finance", "admin"])
def test_only_clerks_change_apps(tea_house, tea_house_app, tea_house_rsa_app, staff_member, other_rsa_public_pem,
                                 role):
    actor = staff_member(role)
    changes = _every_change(actor, merchant=tea_house, hmac_app=tea_house_app, rsa_app=tea_house_rsa_app,
                            public_key_pem=other_rsa_public_pem)
    if role == "risk_officer":  # risk designates partners (aggpay.roles; tests/aggpay/test_demo_partner.py)
        changes = changes[:-1]
    for call in changes:
        with _WritesNothing(), pytest.raises(Forbidden):
            call()
