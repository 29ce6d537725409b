"""直付通 onboarding through the Alipay adapter and simulator (channel-protocols.md B.7)."""

from __future__ import annotations

import datetime as dt
import time
from urllib.parse import urlsplit

import pytest
import requests

from channels.adapters.base import (
    CallbackKind,
    OnboardingState,
    PaymentRequest,
    SubMerchant,
    TradeRef,
    TradeState,
)
from channels.adapters.errors import ChannelError

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def application(adapter, business_code: str, **changes) -> dict:
    """The channel-neutral application (channels/adapters/base_onboarding.py) plus Alipay's ``mcc``."""
    licence_copy = adapter.upload_image(content=PNG + b"licence", filename="licence.png")
    id_front = adapter.upload_image(content=PNG + b"front", filename="front.png")
    data = {
        "business_code": business_code, "subject_type": "enterprise", "legal_name": "杭州茶馆有限公司",
        "short_name": "茶馆", "service_phone": "057188888888", "mcc": "5812",
        "licence": {"number": "91330100MA2XXXXXX1", "valid_from": "2020-01-01", "valid_to": "", "copy": licence_copy},
        "legal_person": {"name": "张三", "id_type": "id_card", "id_number": "330102199001011234",
                         "id_front": id_front, "id_back": id_front},
        "contact": {"type": "legal", "name": "张三", "mobile": "13800000000", "email": "owner@example.com"},
        "settlement_account": {"type": "corporate", "account_name": "杭州茶馆有限公司", "account_number": "6222020202020202",
                               "bank_name": "招商银行", "bank_branch": "招商银行杭州分行", "bank_address_code": "330100"},
        "stores": [{"name": "西湖店", "address_code": "330106", "address": "杭州市西湖区龙井路1号",
                    "entrance_pic": id_front, "indoor_pic": id_front}],
        "scenarios": ["store"], "products": ["alipay.qr", "alipay.barcode", "alipay.jsapi", "wechat.native"],
    }
    data.update(changes)
    return data


def review(server, order_id: str, action: str, reasons=None) -> requests.Response:
    return requests.post(f"{server.base_url}/alipay/_control/applications/{order_id}", timeout=10,
                         json={"action": action, "reasons": reasons or []})


def set_app(server, app_id: str, **values) -> None:
    response = requests.post(f"{server.base_url}/alipay/_control/accounts/{app_id}/settings", json=values, timeout=10)
    assert response.status_code == 200


def test_an_approved_application_yields_an_smid_we_can_take_payments_for(
        local_midday, alipay_adapter, alipay_config, simulator_server, callback_receiver):
    callback_receiver.body = b"success"
    set_app(simulator_server, alipay_config.app_id, message_url=callback_receiver.url)
    submitted = alipay_adapter.onboarding_submit(application=application(alipay_adapter, "AGG-1"))
    assert submitted.state == OnboardingState.AUDITING and submitted.application_id
    assert alipay_adapter.onboarding_query(application_id=submitted.application_id).state == OnboardingState.AUDITING

    assert review(simulator_server, submitted.application_id, "approve").status_code == 200
    done = alipay_adapter.onboarding_query(application_id=submitted.application_id)
    assert done.state == OnboardingState.FINISHED and done.sub_mchid.startswith("2088")

    [message] = callback_receiver.wait_for(1)
    event = alipay_adapter.parse_callback(headers=message["headers"], body=message["body"])
    assert event.kind == CallbackKind.ONBOARDING
    assert (event.data["state"], event.data["sub_mchid"], event.data["application_id"]) == (
        OnboardingState.FINISHED, done.sub_mchid, submitted.application_id)

    # 直付通: the platform names the secondary merchant in the trade (no app_auth_token).
    secondary = SubMerchant(sub_mchid=done.sub_mchid)
    alipay_adapter.create_payment(PaymentRequest(
        product="alipay.barcode", sub_merchant=secondary, out_trade_no="ZFT-1", amount=100, subject="tea",
        notify_url="", expires_at=dt.datetime.now(dt.UTC), auth_code="281234567890123450"))
    assert alipay_adapter.query_payment(TradeRef(sub_merchant=secondary, out_trade_no="ZFT-1")).state == \
        TradeState.SUCCEEDED
    [line] = alipay_adapter.download_bill(bill_date=dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date(),
                                          sub_mchid=done.sub_mchid)
    assert (line.out_trade_no, line.sub_mchid) == ("ZFT-1", done.sub_mchid)


def test_an_unknown_smid_cannot_take_payments(alipay_adapter):
    with pytest.raises(ChannelError) as caught:
        alipay_adapter.query_payment(TradeRef(sub_merchant=SubMerchant(sub_mchid="2088000000000000"),
                                              out_trade_no="x"))
    assert caught.value.code == "merchant_not_found"


def test_a_rejected_application_is_corrected_and_resubmitted(alipay_adapter, alipay_config, simulator_server,
                                                             callback_receiver):
    callback_receiver.body = b"success"
    set_app(simulator_server, alipay_config.app_id, message_url=callback_receiver.url)
    first = alipay_adapter.onboarding_submit(application=application(alipay_adapter, "AGG-2"))
    review(simulator_server, first.application_id, "reject", ["营业执照照片模糊", {"field": "mcc", "reason": "类目不符"}])
    rejected = alipay_adapter.onboarding_query(application_id=first.application_id)
    assert rejected.state == OnboardingState.REJECTED
    assert "营业执照照片模糊" in rejected.message and "mcc: 类目不符" in rejected.rejections[0]["reason"]
    event = alipay_adapter.parse_callback(headers={}, body=callback_receiver.wait_for(1)[0]["body"])
    assert event.data["state"] == OnboardingState.REJECTED and event.data["rejections"]

    second = alipay_adapter.onboarding_submit(application=application(alipay_adapter, "AGG-2", mcc="5814"))
    assert second.application_id != first.application_id
    review(simulator_server, second.application_id, "approve")
    # Asked by our business code, Alipay lists both orders; the latest one decides.
    latest = alipay_adapter.onboarding_query(application_id="", business_code="AGG-2")
    assert (latest.state, latest.application_id) == (OnboardingState.FINISHED, second.application_id)


def test_a_repeated_submission_under_review_is_the_same_order(alipay_adapter):
    first = alipay_adapter.onboarding_submit(application=application(alipay_adapter, "AGG-3"))
    again = alipay_adapter.onboarding_submit(application=application(alipay_adapter, "AGG-3"))
    assert again.application_id == first.application_id


def test_an_application_needing_the_merchants_confirmation_shows_the_sign_link(alipay_adapter, simulator_server):
    submitted = alipay_adapter.onboarding_submit(application=application(alipay_adapter, "AGG-4"))
    review(simulator_server, submitted.application_id, "ask_sign")
    waiting = alipay_adapter.onboarding_query(application_id=submitted.application_id)
    assert waiting.state == OnboardingState.TO_BE_SIGNED
    assert urlsplit(waiting.sign_url).path.endswith("/alipay/_payer/sign")
    assert requests.post(waiting.sign_url, timeout=10).status_code == 200  # the merchant confirms in Alipay
    assert alipay_adapter.onboarding_query(application_id=submitted.application_id).state == OnboardingState.FINISHED


def test_zft_has_no_account_verification_step(alipay_adapter, simulator_server):
    submitted = alipay_adapter.onboarding_submit(application=application(alipay_adapter, "AGG-5"))
    refused = review(simulator_server, submitted.application_id, "ask_confirm")
    assert refused.status_code == 400 and "ask_confirm" in refused.json()["error"]


def test_the_simulator_reviews_by_itself_after_the_configured_delay(alipay_adapter, alipay_config, simulator_server):
    set_app(simulator_server, alipay_config.app_id, auto_review={"delay_seconds": 0.2, "outcome": "reject",
                                                                  "reasons": ["法人证件过期"]})
    submitted = alipay_adapter.onboarding_submit(application=application(alipay_adapter, "AGG-6"))
    time.sleep(0.5)
    result = alipay_adapter.onboarding_query(application_id=submitted.application_id)
    assert (result.state, result.message) == (OnboardingState.REJECTED, "法人证件过期")


def test_a_micro_merchant_is_certified_by_the_id_card(alipay_adapter, simulator_server):
    data = application(alipay_adapter, "AGG-7", subject_type="micro", licence={})
    submitted = alipay_adapter.onboarding_submit(application=data)
    review(simulator_server, submitted.application_id, "approve")
    assert alipay_adapter.onboarding_query(application_id=submitted.application_id).state == OnboardingState.FINISHED


@pytest.mark.parametrize(("changes", "missing"), [
    ({"mcc": ""}, "mcc"), ({"settlement_account": {}}, "settlement_account"),
    ({"products": ["wechat.native"]}, "Alipay product"), ({"subject_type": "alien"}, "subject_type"),
])
def test_an_application_lacking_what_alipay_needs_is_refused_before_sending(alipay_adapter, changes, missing):
    with pytest.raises(ChannelError) as caught:
        alipay_adapter.onboarding_submit(application={**application(alipay_adapter, "AGG-8"), **changes})
    assert caught.value.code == "invalid_params" and missing in caught.value.message


def test_an_unknown_order_is_not_found(alipay_adapter):
    with pytest.raises(ChannelError) as caught:
        alipay_adapter.onboarding_query(application_id="20990101000000000000")
    assert caught.value.code == "order_not_found"


def test_a_settlement_account_change_completes_asynchronously(alipay_adapter, simulator_server):
    submitted = alipay_adapter.onboarding_submit(application=application(alipay_adapter, "AGG-9"))
    review(simulator_server, submitted.application_id, "approve")
    smid = alipay_adapter.onboarding_query(application_id=submitted.application_id).sub_mchid
    account = {"type": "personal", "account_name": "张三", "account_number": "6217000000000001", "bank_name": "建设银行"}

    change = alipay_adapter.settlement_modify(sub_mchid=smid, account=account)
    assert change.state == "auditing" and change.application_no
    assert alipay_adapter.settlement_modify_query(sub_mchid=smid, application_no=change.application_no).state == \
        "auditing"
    review(simulator_server, change.application_no, "approve")
    assert alipay_adapter.settlement_modify_query(sub_mchid=smid, application_no=change.application_no).state == \
        "succeeded"

    refused = alipay_adapter.settlement_modify(sub_mchid=smid, account=account)
    review(simulator_server, refused.application_no, "reject", ["账户名与主体不符"])
    failed = alipay_adapter.settlement_modify_query(sub_mchid=smid, application_no=refused.application_no)
    assert (failed.state, failed.message) == ("failed", "账户名与主体不符")


def test_an_image_upload_needs_a_picture_type(alipay_adapter):
    with pytest.raises(ChannelError) as caught:
        alipay_adapter.upload_image(content=b"MZ\x90\x00", filename="setup.exe")
    assert caught.value.code == "invalid_params"
