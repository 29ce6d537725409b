"""Sub-merchant verbs of WechatPayAdapter against the simulator: applyment4sub with OAEP-encrypted fields (A.13),
settlement account changes, complaints (A.14) and snsapi_base OAuth (§E)."""

from __future__ import annotations

import copy
import datetime as dt
import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from channels.adapters import wechatpay_crypto as wx
from channels.adapters.base import OnboardingState
from channels.adapters.errors import ChannelError
from channels.adapters.wechatpay_merchant import applyment_body
from channels.simulators import wechatpay_crypto as sim_crypto
from tests.channels.test_wechatpay_payments import SUB, otn, payment, sim

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def application(adapter) -> dict:
    media = {role: adapter.upload_image(filename=f"{role}.png", content=PNG + role.encode())
             for role in ("licence", "id_front", "id_back", "entrance", "indoor")}
    return {
        "business_code": otn("AGG"), "subject_type": "enterprise", "legal_name": "杭州茶馆有限公司",
        "short_name": "茶馆", "service_phone": "057188888888",
        "licence": {"number": "91330100MA2XXXXXX1", "address": "杭州市西湖区龙井路1号", "valid_from": "2020-01-01",
                    "valid_to": "", "copy": media["licence"]},
        "legal_person": {"name": "张三", "id_type": "id_card", "id_number": "330102199001011234",
                         "id_address": "杭州市西湖区", "valid_from": "2019-01-01", "valid_to": "2039-01-01",
                         "id_front": media["id_front"], "id_back": media["id_back"]},
        "contact": {"type": "legal", "name": "张三", "mobile": "13800000000", "email": "owner@example.com"},
        "settlement_account": {"type": "corporate", "account_name": "杭州茶馆有限公司",
                               "account_number": "6222020202020202", "bank_name": "招商银行",
                               "bank_address_code": "330100"},
        "stores": [{"name": "西湖店", "address_code": "330106", "address": "杭州市西湖区龙井路1号",
                    "entrance_pic": media["entrance"], "indoor_pic": media["indoor"]}],
        "scenarios": ["store"], "products": ["wechat.barcode"], "settlement_rule_id": "716",
    }


def act(server, applyment_id: str, action: str, **extra) -> dict:
    answer = sim(server, "POST", f"/_control/applications/{applyment_id}", json={"action": action, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_it_submits_an_application_that_the_channel_can_decrypt_and_follows_its_review(simulator_server,
                                                                                       wechatpay_adapter):
    app = application(wechatpay_adapter)
    submitted = wechatpay_adapter.onboarding_submit(application=app)
    assert submitted.state == OnboardingState.SUBMITTED and submitted.application_id
    state = sim(simulator_server, "GET", f"/_control/accounts/{wechatpay_adapter.config.sp_mchid}")
    assert state.status_code == 200
    auditing = wechatpay_adapter.onboarding_query(application_id=submitted.application_id)
    assert (auditing.state, auditing.sub_mchid) == (OnboardingState.AUDITING, "")
    assert auditing.sign_url.startswith(simulator_server.base_url)

    act(simulator_server, submitted.application_id, "reject",
        reasons=[{"field": "license_copy", "reason": "营业执照照片模糊"}])
    rejected = wechatpay_adapter.onboarding_query(application_id="", business_code=app["business_code"])
    assert rejected.state == OnboardingState.REJECTED
    assert rejected.rejections == [{"field": "license_copy", "reason": "营业执照照片模糊"}]

    again = wechatpay_adapter.onboarding_submit(application=app)  # same business_code overwrites a rejected one
    assert again.application_id == submitted.application_id
    act(simulator_server, submitted.application_id, "ask_confirm")
    assert wechatpay_adapter.onboarding_query(application_id=again.application_id).state == \
        OnboardingState.TO_BE_CONFIRMED
    act(simulator_server, submitted.application_id, "approve")
    to_sign = wechatpay_adapter.onboarding_query(application_id=again.application_id)
    assert to_sign.state == OnboardingState.TO_BE_SIGNED and to_sign.sub_mchid and to_sign.sign_url
    act(simulator_server, submitted.application_id, "approve")
    finished = wechatpay_adapter.onboarding_query(application_id=again.application_id)
    assert (finished.state, finished.sub_mchid) == (OnboardingState.FINISHED, to_sign.sub_mchid)
    settlement = wechatpay_adapter.settlement_query(sub_mchid=finished.sub_mchid)
    assert settlement["account_number"].endswith("0202") and "6222020202020202" not in settlement["account_number"]


def test_the_channel_refuses_fields_encrypted_with_another_key(simulator_server, wechatpay_adapter):
    other = sim_crypto.public_pem(sim_crypto.new_key_pem())  # right key id, wrong key: nothing decrypts
    body = applyment_body(application(wechatpay_adapter), lambda text: wx.oaep_encrypt(other, text))
    serial, _ = wechatpay_adapter.encryption_key()
    with pytest.raises(ChannelError) as caught:
        wechatpay_adapter._call("POST", "/v3/applyment4sub/applyment/", body=body, sensitive_serial=serial)
    assert caught.value.channel_code == "PARAM_ERROR" and "解密失败" in caught.value.channel_message


def test_the_channel_refuses_an_application_naming_another_encryption_key(wechatpay_adapter):
    body = applyment_body(application(wechatpay_adapter),
                          lambda text: wx.oaep_encrypt(wechatpay_adapter.encryption_key()[1], text))
    payload = json.dumps(body).encode()
    resp = wechatpay_adapter._send("POST", wechatpay_adapter._url("/v3/applyment4sub/applyment/"), body=payload,
                                   extra_headers={"Wechatpay-Serial": "PUB_KEY_ID_NOT_THIS_ONE"})
    with pytest.raises(ChannelError) as caught:
        wechatpay_adapter._interpret(resp)  # the refusal itself is signed and verifies
    assert (caught.value.http_status, caught.value.channel_code) == (400, "PARAM_ERROR")
    assert "Wechatpay-Serial" in caught.value.channel_message


def test_the_channel_refuses_pictures_it_never_received(wechatpay_adapter):
    app = application(wechatpay_adapter)
    app["licence"]["copy"] = "V1_not-uploaded"
    with pytest.raises(ChannelError) as caught:
        wechatpay_adapter.onboarding_submit(application=app)
    assert "license_copy" in caught.value.channel_message


def test_it_names_the_missing_field_before_submitting(wechatpay_adapter):
    app = application(wechatpay_adapter)
    broken = copy.deepcopy(app)
    del broken["settlement_account"]["account_number"]
    with pytest.raises(ChannelError, match="settlement_account.account_number") as caught:
        wechatpay_adapter.onboarding_submit(application=broken)
    assert caught.value.code == "invalid_params"


def test_an_application_is_reviewed_automatically_after_the_configured_delay(simulator_server,
                                                                             fresh_wechatpay_adapter):
    adapter = fresh_wechatpay_adapter
    sim(simulator_server, "POST", f"/_control/accounts/{adapter.config.sp_mchid}/settings",
        json={"auto_review": {"delay_seconds": 0, "outcome": "finish"}})
    submitted = adapter.onboarding_submit(application=application(adapter))
    result = adapter.onboarding_query(application_id=submitted.application_id)
    assert result.state == OnboardingState.FINISHED and result.sub_mchid
    # FINISHED registers the sub-merchant: it may trade even where the channel checks sub_mchids.
    sim(simulator_server, "POST", f"/_control/accounts/{adapter.config.sp_mchid}/settings",
        json={"strict_sub_mchid": True})
    from channels.adapters.base import SubMerchant
    assert adapter.create_payment(payment("wechat.native", sub_merchant=SubMerchant(sub_mchid=result.sub_mchid)))


@pytest.mark.parametrize(("outcome", "state"), [("approve", "succeeded"), ("reject", "failed")])
def test_it_changes_a_settlement_account_asynchronously(simulator_server, wechatpay_adapter, outcome, state):
    account = {"type": "personal", "account_name": "张三", "account_number": "6214830000001234",
               "bank_name": "招商银行", "bank_address_code": "330100"}
    change = wechatpay_adapter.settlement_modify(sub_mchid=SUB.sub_mchid, account=account)
    assert change.state == "auditing" and change.application_no
    sim(simulator_server, "POST", f"/_control/settlements/{change.application_no}",
        json={"sp_mchid": wechatpay_adapter.config.sp_mchid, "action": outcome, "reason": "户名不符"})
    result = wechatpay_adapter.settlement_modify_query(sub_mchid=SUB.sub_mchid, application_no=change.application_no)
    assert result.state == state
    assert result.raw["account_number"] == "62**********1234"
    assert result.message == ("户名不符" if outcome == "reject" else "")


def test_it_lists_complaints_with_the_payers_phone_decrypted_and_answers_them(local_midday, simulator_server,
                                                                             fresh_wechatpay_adapter):
    adapter = fresh_wechatpay_adapter
    request = payment("wechat.barcode", auth_code="134567890123456781")
    adapter.create_payment(request)
    created = sim(simulator_server, "POST", "/_control/complaints", json={
        "sp_mchid": adapter.config.sp_mchid, "sub_mchid": SUB.sub_mchid, "out_trade_no": request.out_trade_no,
        "payer_phone": "13912345678", "detail": "茶叶不新鲜"}).json()
    sim(simulator_server, "POST", "/_control/complaints", json={"sp_mchid": adapter.config.sp_mchid,
                                                                "sub_mchid": "1600000777"})
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    assert len(adapter.complaints_list(begin=today - dt.timedelta(days=3), end=today)) == 2
    [complaint] = adapter.complaints_list(begin=today - dt.timedelta(days=3), end=today, sub_mchid=SUB.sub_mchid)
    assert (complaint["complaint_id"], complaint["payer_phone"], complaint["complaint_state"]) == (
        created["complaint_id"], "13912345678", "PENDING")
    assert complaint["complaint_order_info"][0]["out_trade_no"] == request.out_trade_no
    adapter.complaint_respond(complaint_id=complaint["complaint_id"], sub_mchid=SUB.sub_mchid, content="已联系用户换货")
    adapter.complaint_complete(complaint_id=complaint["complaint_id"], sub_mchid=SUB.sub_mchid)
    [done] = adapter.complaints_list(begin=today, end=today, sub_mchid=SUB.sub_mchid)
    assert done["complaint_state"] == "PROCESSED"
    with pytest.raises(ChannelError) as caught:
        adapter.complaint_respond(complaint_id=complaint["complaint_id"], sub_mchid="1600000777", content="x")
    assert caught.value.channel_code == "PARAM_ERROR"


def test_it_learns_the_payers_openid_through_snsapi_base(simulator_server, wechatpay_adapter):
    url = wechatpay_adapter.oauth_authorize_url(redirect_uri="https://pay.example/cashier?c=1", state="csrf123")
    assert url.endswith("#wechat_redirect") and "scope=snsapi_base" in url
    session = requests.Session()
    session.trust_env = False
    redirect = session.get(url.split("#")[0], allow_redirects=False, timeout=10)
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["Location"])
    query = parse_qs(location.query)
    assert (location.netloc, query["c"], query["state"]) == ("pay.example", ["1"], ["csrf123"])
    openid = wechatpay_adapter.oauth_payer_id(code=query["code"][0])
    assert openid.startswith("o") and len(openid) == 28
    again = session.get(url.split("#")[0], allow_redirects=False, timeout=10)
    second_code = parse_qs(urlsplit(again.headers["Location"]).query)["code"][0]
    assert wechatpay_adapter.oauth_payer_id(code=second_code) == openid  # the same payer, the same openid
    with pytest.raises(ChannelError) as caught:
        wechatpay_adapter.oauth_payer_id(code=query["code"][0])
    assert caught.value.channel_code == "40163"  # code been used
