"""WeChat Pay crypto against the golden vectors of channel-protocols.md (A.4 AES-GCM, A.11 v2 MD5/HMAC) and the
A.2/A.3 message rules. Pure functions: no simulator, no database."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from channels.adapters import wechatpay_crypto as wx


@pytest.fixture(scope="module")
def key_pair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private_pem, public_pem


def test_it_decrypts_the_aes_gcm_golden_vector_of_a4():
    plain = wx.aes_gcm_decrypt(
        apiv3_key="0123456789abcdef0123456789ABCDEF", nonce="abcdef123456", associated_data="transaction",
        ciphertext="vQ30yAt5SgW/v3K4lbh7Fh7H1E/TR/4fr++ywceruNcgpFU5ZgWM5ZHhcxdln52ZbZtsMVGvbslEaFH3ASn5l3hc8EfRVrQ=")
    assert plain == b'{"out_trade_no":"T20240101001","trade_state":"SUCCESS"}'


def test_it_encrypts_to_the_same_golden_ciphertext():
    ciphertext = wx.aes_gcm_encrypt(apiv3_key="0123456789abcdef0123456789ABCDEF", nonce="abcdef123456",
                                    associated_data="transaction",
                                    plaintext=b'{"out_trade_no":"T20240101001","trade_state":"SUCCESS"}')
    assert ciphertext == ("vQ30yAt5SgW/v3K4lbh7Fh7H1E/TR/4fr++ywceruNcgpFU5ZgWM5ZHhcxdln52ZbZtsMVGvbslEaFH3ASn5l3hc8"
                          "EfRVrQ=")


def test_it_refuses_the_golden_ciphertext_under_other_associated_data():
    with pytest.raises(wx.CryptoError, match="does not decrypt"):
        wx.aes_gcm_decrypt(
            apiv3_key="0123456789abcdef0123456789ABCDEF", nonce="abcdef123456", associated_data="refund",
            ciphertext="vQ30yAt5SgW/v3K4lbh7Fh7H1E/TR/4fr++ywceruNcgpFU5ZgWM5ZHhcxdln52ZbZtsMVGvbslEaFH3ASn5l3hc8EfRVrQ=")


V2_PARAMS = {"appid": "wxd930ea5d5a258f4f", "mch_id": "10000100", "device_info": "1000", "body": "test",
             "nonce_str": "ibuaiVcKdpRxkhJA"}
V2_KEY = "192006250b4c09247ec02edce69f6a2d"


def test_it_builds_the_v2_string_to_sign_of_a11():
    assert wx.v2_sign_string(V2_PARAMS, V2_KEY) == (
        "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
        "&key=192006250b4c09247ec02edce69f6a2d")


def test_it_signs_the_v2_golden_vector_with_md5():
    assert wx.v2_sign(V2_PARAMS, V2_KEY, "MD5") == "9A0A8659F005D6984697E2CA0A9CF3B7"


def test_it_signs_the_v2_golden_vector_with_hmac_sha256():
    assert wx.v2_sign(V2_PARAMS, V2_KEY, "HMAC-SHA256") == (
        "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6")


def test_it_ignores_empty_values_and_the_sign_itself_when_signing_v2():
    noisy = {**V2_PARAMS, "attach": "", "sign": "WHATEVER"}
    assert wx.v2_sign(noisy, V2_KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"


def test_it_verifies_a_v2_xml_round_trip_and_rejects_a_changed_field():
    params = {**V2_PARAMS, "sign_type": "HMAC-SHA256"}
    params["sign"] = wx.v2_sign(params, V2_KEY, "HMAC-SHA256")
    parsed = wx.v2_from_xml(wx.v2_to_xml(params))
    assert parsed == params
    assert wx.v2_verify(parsed, V2_KEY)
    assert not wx.v2_verify({**parsed, "body": "tampered"}, V2_KEY)
    assert not wx.v2_verify(parsed, "0" * 32)


def test_it_refuses_v2_xml_with_a_dtd():
    with pytest.raises(wx.CryptoError, match="DTD"):
        wx.v2_from_xml(b'<!DOCTYPE x [<!ENTITY a "b">]><xml><a>&a;</a></xml>')


def test_it_signs_requests_over_the_five_line_message_of_a2(key_pair):
    private_pem, public_pem = key_pair
    header = wx.authorization(mchid="1900000100", serial_no="ABC123", private_key_pem=private_pem, method="GET",
                              target="/v3/pay/partner/transactions/out-trade-no/T1?sp_mchid=1&sub_mchid=2",
                              body=b"", timestamp="1554208460", nonce="593BEC0C930BF1AFEB40B4A08C8FB242")
    assert header.startswith('WECHATPAY2-SHA256-RSA2048 mchid="1900000100",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242"')
    signature = header.split('signature="')[1].rstrip('"')
    message = (b"GET\n/v3/pay/partner/transactions/out-trade-no/T1?sp_mchid=1&sub_mchid=2\n1554208460\n"
               b"593BEC0C930BF1AFEB40B4A08C8FB242\n\n")
    key = serialization.load_pem_public_key(public_pem.encode())
    key.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())  # raises if wrong


def _signed_headers(private_pem, body, *, timestamp=None, signature=None, serial="PUB_KEY_ID_TEST", kind=wx.SCHEME):
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = "N" * 32
    return {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce, "Wechatpay-Serial": serial,
            "Wechatpay-Signature": signature or wx.rsa_sign(private_pem, wx.answer_message(ts, nonce, body)),
            "Wechatpay-Signature-Type": kind}


def test_it_verifies_an_answer_over_timestamp_nonce_and_body(key_pair):
    private_pem, public_pem = key_pair
    headers = _signed_headers(private_pem, b'{"a":1}')
    wx.check_answer_signature(headers=headers, body=b'{"a":1}', keys={"PUB_KEY_ID_TEST": public_pem})
    with pytest.raises(wx.CryptoError, match="does not verify"):
        wx.check_answer_signature(headers=headers, body=b'{"a":2}', keys={"PUB_KEY_ID_TEST": public_pem})


def test_it_verifies_an_empty_204_body_as_an_empty_line(key_pair):
    private_pem, public_pem = key_pair
    headers = _signed_headers(private_pem, b"")
    message = f"{headers['Wechatpay-Timestamp']}\n{headers['Wechatpay-Nonce']}\n\n".encode()
    assert wx.rsa_verify(wx.public_key(public_pem), message, headers["Wechatpay-Signature"])
    wx.check_answer_signature(headers=headers, body=b"", keys={"PUB_KEY_ID_TEST": public_pem})


@pytest.mark.parametrize("skew", [-301, 301, 3600])
def test_it_rejects_answers_outside_the_five_minute_window(key_pair, skew):
    private_pem, public_pem = key_pair
    headers = _signed_headers(private_pem, b"{}", timestamp=int(time.time()) + skew)
    with pytest.raises(wx.CryptoError, match="5-minute"):
        wx.check_answer_signature(headers=headers, body=b"{}", keys={"PUB_KEY_ID_TEST": public_pem})


def test_it_rejects_a_signtest_probe_even_before_checking_the_key(key_pair):
    private_pem, public_pem = key_pair
    headers = _signed_headers(private_pem, b"{}", signature="WECHATPAY/SIGNTEST/" + "A" * 40)
    with pytest.raises(wx.CryptoError, match="SIGNTEST"):
        wx.check_answer_signature(headers=headers, body=b"{}", keys={"PUB_KEY_ID_TEST": public_pem})


def test_it_rejects_an_unknown_signature_type_and_an_unknown_serial(key_pair):
    private_pem, public_pem = key_pair
    with pytest.raises(wx.CryptoError, match="Signature-Type"):
        wx.check_answer_signature(headers=_signed_headers(private_pem, b"{}", kind="WECHATPAY2-SM2-WITH-SM3"),
                                  body=b"{}", keys={"PUB_KEY_ID_TEST": public_pem})
    with pytest.raises(wx.CryptoError, match="unknown Wechatpay-Serial"):
        wx.check_answer_signature(headers=_signed_headers(private_pem, b"{}", serial="PUB_KEY_ID_OTHER"),
                                  body=b"{}", keys={"PUB_KEY_ID_TEST": public_pem})


def test_it_round_trips_sensitive_fields_with_rsa_oaep_sha1(key_pair):
    private_pem, public_pem = key_pair
    ciphertext = wx.oaep_encrypt(public_pem, "6222020202020202")
    assert ciphertext != wx.oaep_encrypt(public_pem, "6222020202020202")  # OAEP is randomised
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    assert key.decrypt(base64.b64decode(ciphertext), oaep) == b"6222020202020202"
    assert wx.oaep_decrypt(private_pem, ciphertext) == "6222020202020202"
