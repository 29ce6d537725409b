"""Merchant apply (进件), settlement account changes and UnionPay userAuth against the bank simulator
(docs/channels/bank.md §9, §10)."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization

from channels.adapters import bank_onboarding
from channels.adapters.bank import BankAdapter
from channels.adapters.base import CallbackKind, OnboardingState, SubMerchant, TradeState
from channels.adapters.errors import ChannelError
from channels.simulators.bank import provision
from tests.channels.test_bank_helpers import control, form_post, new_bank, pay, payment

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(scope="module")
def bank(simulator_server) -> BankAdapter:
    return new_bank(simulator_server)


@pytest.fixture(scope="module")
def pictures(bank) -> dict[str, str]:
    return {kind: bank.upload_image(filename=f"{kind}.png", content=PNG, file_type=kind)
            for kind in ("LICENSE", "ID_FRONT", "ID_BACK", "STORE_DOOR")}


def application(pictures: dict[str, str], **changes) -> dict:
    """A base_onboarding.OnboardingApplication, as merchants.services will build it."""
    value = {
        "business_code": "AGG" + secrets.token_hex(6).upper(),
        "subject_type": "enterprise",
        "legal_name": "杭州茶馆有限公司",
        "short_name": "茶馆",
        "service_phone": "057188888888",
        "licence": {"number": "91330100MA2XXXXXX1", "address": "杭州市西湖区龙井路1号", "valid_from": "2020-01-01",
                    "valid_to": "", "copy": pictures["LICENSE"]},
        "legal_person": {"name": "张三", "id_type": "id_card", "id_number": "330102199001011234",
                         "valid_from": "2019-01-01", "valid_to": "2039-01-01", "id_front": pictures["ID_FRONT"],
                         "id_back": pictures["ID_BACK"]},
        "contact": {"type": "legal", "name": "张三", "mobile": "13800000000", "email": "owner@example.com"},
        "settlement_account": {"type": "corporate", "account_name": "杭州茶馆有限公司",
                               "account_number": "6222020202020202", "bank_name": "招商银行",
                               "bank_branch": "招商银行杭州分行", "bank_branch_id": "308331012345",
                               "bank_address_code": "330100"},
        "stores": [{"name": "西湖店", "address_code": "330106", "address": "杭州市西湖区龙井路1号",
                    "entrance_pic": pictures["STORE_DOOR"]}],
        "scenarios": ["store"],
        "products": ["wechat.native", "wechat.barcode", "unionpay.qr"],
        "qualification_type": "餐饮",
    }
    value.update(changes)
    return value


def review(bank, application_id: str, action: str, **payload) -> dict:
    resp = control(bank, f"/_control/applications/{application_id}", {"action": action, **payload})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_an_approved_application_opens_a_merchant_that_can_take_its_products(bank, pictures):
    submitted = bank.onboarding_submit(application=application(pictures))
    assert submitted.state == OnboardingState.AUDITING
    assert submitted.application_id.startswith("AP")
    assert not submitted.sub_mchid  # §9.4: no merchant number while auditing
    review(bank, submitted.application_id, "approve")
    done = bank.onboarding_query(application_id=submitted.application_id)
    assert done.state == OnboardingState.FINISHED
    assert len(done.sub_mchid) == 15
    merchant = SubMerchant(sub_mchid=done.sub_mchid, sub_appid="wx8888888888888888")
    request = payment(merchant, "wechat.native")
    bank.create_payment(request)
    assert pay(bank, request.out_trade_no)["trade_state"] == "SUCCESS"
    with pytest.raises(ChannelError) as refused:  # alipay was not requested
        bank.create_payment(payment(merchant, "alipay.qr"))
    assert refused.value.channel_code == "NO_PERMISSION"


def test_a_rejected_application_is_corrected_and_resubmitted_under_the_same_business_code(bank, pictures):
    first = application(pictures)
    submitted = bank.onboarding_submit(application=first)
    review(bank, submitted.application_id, "reject",
           reasons=[{"field": "license.license_no", "reason": "营业执照号与照片不一致"}])
    rejected = bank.onboarding_query(application_id=submitted.application_id)
    assert rejected.state == OnboardingState.REJECTED
    assert rejected.rejections == [{"field": "license.license_no", "reason": "营业执照号与照片不一致"}]
    corrected = {**first, "licence": {**first["licence"], "number": "91330100MA2XXXXXX2"}}
    again = bank.onboarding_submit(application=corrected)
    assert (again.state, again.application_id) == (OnboardingState.AUDITING, submitted.application_id)
    assert again.rejections == []


def test_an_application_under_review_cannot_be_changed_but_can_be_resent(bank, pictures):
    app = application(pictures)
    first = bank.onboarding_submit(application=app)
    assert bank.onboarding_submit(application=app).application_id == first.application_id  # a retry
    with pytest.raises(ChannelError) as refused:
        bank.onboarding_submit(application={**app, "short_name": "新茶馆"})
    assert (refused.value.channel_code, refused.value.permanent) == ("APPLY_IN_REVIEW", False)


def test_signing_shows_a_sign_url_that_the_merchant_uses_to_finish(bank, pictures):
    submitted = bank.onboarding_submit(application=application(pictures))
    review(bank, submitted.application_id, "ask_sign")
    waiting = bank.onboarding_query(application_id=submitted.application_id)
    assert waiting.state == OnboardingState.TO_BE_SIGNED
    assert waiting.sub_mchid and waiting.sign_url
    page = control(bank, "/_payer/sign?" + urlsplit(waiting.sign_url).query, method="GET")
    assert page.status_code == 200 and "杭州茶馆有限公司" in page.text
    assert form_post(bank, "/_payer/sign", {"apply_id": submitted.application_id}).status_code == 200
    assert bank.onboarding_query(application_id=submitted.application_id).state == OnboardingState.FINISHED


def test_account_verification_maps_to_to_be_confirmed(bank, pictures):
    submitted = bank.onboarding_submit(application=application(pictures))
    review(bank, submitted.application_id, "ask_confirm")
    assert bank.onboarding_query(application_id=submitted.application_id).state == OnboardingState.TO_BE_CONFIRMED
    resp = control(bank, f"/_control/applications/{submitted.application_id}", {"action": "ask_confirm"})
    assert resp.status_code == 409  # not from WAIT_VERIFY


def test_automatic_review_notifies_the_result(simulator_server, pictures, callback_receiver):
    bank = new_bank(simulator_server, auto_review={"delay_seconds": 0.2, "outcome": "approve"})
    own = {kind: bank.upload_image(filename="p.png", content=PNG, file_type=kind) for kind in pictures}
    submitted = bank.onboarding_submit(application=application(own, notify_url=callback_receiver.url))
    [delivery] = callback_receiver.wait_for(1, timeout=5)
    event = bank.parse_callback(headers=delivery["headers"], body=delivery["body"])
    assert event.kind == CallbackKind.ONBOARDING
    assert event.data["state"] == OnboardingState.FINISHED
    assert event.data["application_id"] == submitted.application_id
    assert event.data["sub_mchid"]


def test_pictures_of_another_bank_account_are_refused(simulator_server, pictures):
    other = new_bank(simulator_server)
    with pytest.raises(ChannelError) as refused:
        other.onboarding_submit(application=application(pictures))
    assert refused.value.channel_code == "PARAM_ERROR"
    assert "pic" in refused.value.channel_message


def test_the_bank_refuses_sensitive_fields_encrypted_for_another_key(simulator_server, bank, pictures):
    # The adapter always encrypts for its own bank; to see the simulator's check, build the body for another
    # key and send it through the adapter's signed envelope.
    stranger = provision(simulator_server.base_url, name="stranger")
    body = bank_onboarding.apply_body(application(pictures), bank_public_key_pem=_public_of(stranger))
    with pytest.raises(ChannelError) as refused:
        bank._call("/api/merchant/apply", body)
    assert refused.value.channel_code == "DECRYPT_ERROR"
    assert refused.value.channel_message.startswith("legal_person.id_no")


def _public_of(config: dict) -> str:
    key = serialization.load_pem_private_key(config["private_key_pem"].encode(), password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def test_invalid_fields_are_named_in_the_refusal(bank, pictures):
    bad_id = application(pictures)
    bad_id["legal_person"] = {**bad_id["legal_person"], "id_number": "12345"}
    with pytest.raises(ChannelError) as refused:
        bank.onboarding_submit(application=bad_id)
    assert refused.value.channel_message.startswith("legal_person.id_no")
    with pytest.raises(ChannelError) as refused:
        bank.onboarding_submit(application=application(pictures, products=["wechat.app"]))
    assert refused.value.code == "invalid_params"


def test_an_upload_that_is_not_a_picture_is_refused(bank):
    with pytest.raises(ChannelError) as refused:
        bank.upload_image(filename="x.exe", content=b"MZ\x90\x00")
    assert refused.value.channel_code == "FILE_INVALID"


def test_a_settlement_account_change_is_audited_asynchronously(bank, pictures):
    merchant = _opened(bank, pictures)
    account = {"type": "corporate", "account_name": "杭州茶馆有限公司", "account_number": "6222030303030303",
               "bank_name": "工商银行", "request_no": "SMR" + secrets.token_hex(6)}
    started = bank.settlement_modify(sub_mchid=merchant, account=account)
    assert (started.state, started.application_no) == ("auditing", account["request_no"])
    assert bank.settlement_modify(sub_mchid=merchant, account=account).application_no == started.application_no
    modify_id = started.raw["modify_id"]
    assert control(bank, f"/_control/settlements/{modify_id}", {"action": "approve"}).status_code == 200
    done = bank.settlement_modify_query(sub_mchid=merchant, application_no=started.application_no)
    assert done.state == "succeeded"
    assert done.raw["settlement_account"]["account_no"].endswith("0303")
    assert "6222030303030303" not in str(done.raw)  # the bank only shows a mask


def test_a_rejected_settlement_change_says_why(bank, pictures):
    merchant = _opened(bank, pictures)
    started = bank.settlement_modify(sub_mchid=merchant, account={
        "type": "personal", "account_name": "张三", "account_number": "6222040404040404", "bank_name": "农业银行"})
    control(bank, f"/_control/settlements/{started.raw['modify_id']}",
            {"action": "reject", "reasons": [{"reason": "开户名与法人不一致"}]})
    done = bank.settlement_modify_query(sub_mchid=merchant, application_no=started.application_no)
    assert (done.state, done.message) == ("failed", "开户名与法人不一致")


def _opened(bank, pictures) -> str:
    submitted = bank.onboarding_submit(application=application(pictures))
    return review(bank, submitted.application_id, "approve")["mch_no"]


def test_unionpay_user_auth_gives_a_payer_id_once(bank, pictures):
    url = bank.oauth_authorize_url(redirect_uri="https://pay.example.com/c/STORE1?x=1", state="csrf123")
    assert url.startswith(bank.config.user_auth_url + "?version=1.0.0&redirectUrl=")
    resp = control(bank, "/_oauth/userAuth?" + urlsplit(url).query, method="GET")
    assert resp.status_code == 302
    back = urlsplit(resp.headers["Location"])
    query = parse_qs(back.query)
    assert (back.netloc, query["state"], query["x"], query["respCode"]) == \
        ("pay.example.com", ["csrf123"], ["1"], ["00"])
    user_id = bank.oauth_payer_id(code=query["userAuthCode"][0])
    assert user_id.startswith("UP")
    with pytest.raises(ChannelError) as refused:  # single use
        bank.oauth_payer_id(code=query["userAuthCode"][0])
    assert refused.value.channel_code == "USER_AUTH_CODE_INVALID"
    merchant = SubMerchant(sub_mchid=_opened(bank, pictures))
    result = bank.create_payment(payment(merchant, "unionpay.qr", payer_id=user_id))
    assert result.pay_params["redirect_url"]
    assert result.state == TradeState.PENDING
