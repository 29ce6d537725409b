"""What the channels' picture uploads take for onboarding, as the simulators enforce it and the adapters declare it.

WeChat Pay's media upload (A.13, /v3/merchant/media/upload): JPG, BMP or PNG, at most 2M, the meta filename ending in
one of them — https://pay.weixin.qq.com/docs/partner/apis/contracted-merchant-application/upload.html.
Alipay's ant.merchant.expand.indirect.image.upload (B.7): image_type bmp/jpg/jpeg/png/gif, at most 10M
(EXCEED_MAX_SIZE), content it cannot read is INVALID_IMAGE_FORMAT —
https://opendocs.alipay.com/solution/d0814d9c_ant.merchant.expand.indirect.image.upload.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests

from channels.adapters.alipay import AlipayAdapter
from channels.adapters.errors import ChannelError
from channels.adapters.wechatpay import WechatPayAdapter
from tests.channels.test_alipay_simulator import common, gateway, inner_of, signed
from tests.merchants.records import jpeg_bytes, pdf_bytes, png_bytes

MiB = 1024 * 1024


def _refusal(call) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        call()
    return caught.value


# --- WeChat Pay ---------------------------------------------------------------------------------------------------
def test_wechat_media_upload_takes_a_jpeg_and_a_png_of_2_mb(wechatpay_adapter):
    assert wechatpay_adapter.upload_image(filename="licence.jpg", content=jpeg_bytes("licence"))
    assert wechatpay_adapter.upload_image(filename="front.png", content=png_bytes("front", size=2 * MiB))


@pytest.mark.parametrize("filename", ["licence.pdf", "licence.jpg"])
def test_wechat_media_upload_refuses_a_pdf_by_its_content_whatever_its_name(wechatpay_adapter, filename):
    refused = _refusal(lambda: wechatpay_adapter.upload_image(filename=filename, content=pdf_bytes("licence")))
    assert (refused.http_status, refused.channel_code, refused.code, refused.permanent) == (
        400, "PARAM_ERROR", "invalid_params", True)
    assert "只支持JPG、BMP、PNG格式" in refused.channel_message  # refused for what it is, not for a mangled upload


def test_wechat_media_upload_keeps_a_files_own_last_newline(wechatpay_adapter):
    # A file ending in CR/LF arrived without them: its sha256 no longer matched the meta (PARAM_ERROR).
    assert wechatpay_adapter.upload_image(filename="front.png", content=png_bytes("front") + b"\r\n")


def test_wechat_media_upload_refuses_a_picture_over_2_mb_saying_so(wechatpay_adapter):
    big = png_bytes("front", size=2 * MiB + 1)
    assert len(big) > 2 * MiB
    refused = _refusal(lambda: wechatpay_adapter.upload_image(filename="front.png", content=big))
    assert (refused.http_status, refused.channel_code) == (400, "PARAM_ERROR")
    assert "2M" in refused.channel_message


def test_wechat_media_upload_refuses_a_filename_without_a_picture_suffix(wechatpay_adapter):
    refused = _refusal(lambda: wechatpay_adapter.upload_image(filename="licence", content=png_bytes("licence")))
    assert refused.channel_code == "PARAM_ERROR" and "后缀" in refused.channel_message


# --- Alipay -------------------------------------------------------------------------------------------------------
def _image_upload(config, server, *, image_type: str, content: bytes, filename: str) -> dict:
    """A signed ant.merchant.expand.indirect.image.upload as the official SDK sends it: common params and
    image_type in the query, the picture as a multipart file part."""
    params = signed(config, common(config, "ant.merchant.expand.indirect.image.upload", image_type=image_type))
    answer = requests.post(gateway(server) + "?" + urlencode(params), timeout=30,
                           files={"image_content": (filename, content, "application/octet-stream")})
    return inner_of(config, answer.text, "ant_merchant_expand_indirect_image_upload_response")


def test_alipay_image_upload_refuses_a_pdf_declared_as_a_jpg_by_its_content(alipay_config, simulator_server):
    inner = _image_upload(alipay_config, simulator_server, image_type="jpg", content=pdf_bytes("licence"),
                          filename="licence.jpg")
    assert (inner["code"], inner["sub_code"]) == ("40004", "INVALID_IMAGE_FORMAT")
    inner = _image_upload(alipay_config, simulator_server, image_type="png", content=png_bytes("licence"),
                          filename="licence.png")
    assert inner["code"] == "10000" and inner["image_id"]


def test_alipay_image_upload_refuses_a_picture_over_10_mb(alipay_adapter):
    refused = _refusal(lambda: alipay_adapter.upload_image(content=png_bytes("front", size=10 * MiB + 1),
                                                           filename="front.png"))
    assert (refused.channel_code, refused.permanent) == ("EXCEED_MAX_SIZE", True)


@pytest.mark.parametrize("filename", ["licence.jpg", "licence"])
def test_the_alipay_adapter_declares_the_type_of_the_content_not_of_the_name(alipay_adapter, simulator_server,
                                                                               filename):
    image_id = alipay_adapter.upload_image(content=png_bytes("licence"), filename=filename)
    stored = simulator_server.app.apps["alipay"].store.get("alipay:images", image_id)
    assert (stored["image_type"], stored["content_kind"]) == ("png", "png")


def test_the_alipay_adapter_refuses_a_pdf_itself_naming_the_file(alipay_adapter):
    refused = _refusal(lambda: alipay_adapter.upload_image(content=pdf_bytes("licence"), filename="licence.pdf"))
    assert refused.code == "invalid_params" and "licence.pdf" in refused.message


# --- what the adapters declare (one place for the rule: onboarding asks them before risk review) ---------------
def test_the_adapters_declare_what_their_picture_upload_takes():
    assert dict(WechatPayAdapter.accepted_documents) == {"image/jpeg": 2 * MiB, "image/png": 2 * MiB,
                                                         "image/bmp": 2 * MiB}
    assert dict(AlipayAdapter.accepted_documents) == {"image/jpeg": 10 * MiB, "image/png": 10 * MiB,
                                                      "image/bmp": 10 * MiB, "image/gif": 10 * MiB}
