"""The Alipay simulator's gateway plumbing: reading a call, checking it as Alipay does, rendering signed answers.

B.1: one path (``/gateway.do``), GET or POST, params from the query string and the form body merged (the official
SDK puts common params in the query and ``biz_content`` in the body; fzlee's SDK sends everything as GET).
B.3: the answer is ``{"<method>_response":{…},"sign":"…"}`` with the response object FIRST and the signature over
its exact text; business failures are signed too. Only answers to an unknown app_id go out unsigned (there is no
app key to sign with).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from channels.simulators import alipay_keys as keys
from channels.simulators.core import SimRequest, SimResponse

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
GATEWAY_MSGS = {
    "20000": "Service Currently Unavailable",
    "20001": "Insufficient Token Permissions",
    "40001": "Missing Required Arguments",
    "40002": "Invalid Arguments",
    "40004": "Business Failed",
    "40006": "Insufficient Permissions",
}


class AlipayFault(Exception):
    """Raised by a method handler: answer with this code/sub_code (signed, in the method's response key)."""

    def __init__(self, sub_code: str, sub_msg: str = "", *, code: str = "40004", extra: dict | None = None):
        super().__init__(f"{code} {sub_code} {sub_msg}")
        self.code, self.sub_code, self.sub_msg, self.extra = code, sub_code, sub_msg, extra or {}

    def inner(self) -> dict[str, Any]:
        return {"code": self.code, "msg": GATEWAY_MSGS.get(self.code, "Business Failed"), "sub_code": self.sub_code,
                "sub_msg": self.sub_msg, **self.extra}


@dataclass
class Call:
    """One verified gateway call."""

    request: SimRequest
    params: dict[str, str]
    app: dict[str, Any]
    biz: dict[str, Any] = field(default_factory=dict)
    merchant: dict[str, Any] | None = None  # resolved from app_auth_token (B.6)
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def method(self) -> str:
        return self.params["method"]


def ok(**fields: Any) -> dict[str, Any]:
    return {"code": "10000", "msg": "Success", **fields}


def read_params(request: SimRequest) -> tuple[dict[str, str], dict[str, bytes]]:
    """Query ∪ body params (form-encoded or multipart) and uploaded files. Raises ValueError if unreadable."""
    params = dict(parse_qsl(request.query_string, keep_blank_values=True, encoding="utf-8", errors="strict"))
    files: dict[str, bytes] = {}
    content_type = request.header("content-type").lower()
    if request.body and content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + request.header("content-type").encode("latin-1") + b"\r\n\r\n" + request.body)
        if not message.is_multipart():
            raise ValueError("bad multipart body")
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not name:
                continue
            payload = part.get_payload(decode=True) or b""
            if part.get_filename():
                files[name] = payload
            else:
                params[name] = payload.decode("utf-8")
    elif request.body:
        text = request.body.decode("utf-8")
        charset = dict(parse_qsl(text, keep_blank_values=True, encoding="latin-1")).get("charset", "utf-8")
        encoding = "gbk" if charset.lower() in ("gbk", "gb2312") else "utf-8"
        params.update(parse_qsl(text, keep_blank_values=True, encoding=encoding, errors="strict"))
    return params, files


def check_common(params: dict[str, str], app: dict | None) -> AlipayFault | None:
    """B.1/B.3 gateway checks before the signature: presence and form of the common params."""
    for name, sub_code in (("method", "isv.missing-method"), ("app_id", "isv.missing-app-id"),
                           ("sign", "isv.missing-signature"), ("sign_type", "isv.missing-signature-type"),
                           ("timestamp", "isv.missing-timestamp"), ("version", "isv.missing-version")):
        if not params.get(name):
            return AlipayFault(sub_code, f"缺少{name}参数", code="40001")
    if app is None:
        return AlipayFault("isv.invalid-app-id", "无效的AppID参数", code="40002")
    if params["sign_type"] != "RSA2":
        return AlipayFault("isv.invalid-signature-type", "无效的签名类型", code="40002")
    try:
        dt.datetime.strptime(params["timestamp"], TIME_FORMAT)
    except ValueError:
        return AlipayFault("isv.invalid-timestamp", "非法的时间戳参数", code="40002")
    if not keys.verify(app["app_public_key"], keys.request_content(params), params["sign"]):
        return AlipayFault("isv.invalid-signature", "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配",
                           code="40002")
    return None


def response_key(method: str | None) -> str:
    return method.replace(".", "_") + "_response" if method else "error_response"


def answer(method: str | None, inner: dict[str, Any], app: dict | None) -> SimResponse:
    """A SimResponse carrying the unsigned payload; AlipaySimulator.finalize renders and signs it."""
    response = SimResponse(200, b"", {"Content-Type": "text/html;charset=utf-8"})
    response.alipay_payload = {"key": response_key(method), "inner": inner, "app": app}
    return response


def render(payload: dict[str, Any], *, tamper: bool = False) -> bytes:
    """B.3 layout: the response object first, then ``sign`` over its exact JSON text."""
    inner_text = json.dumps(payload["inner"], ensure_ascii=False, separators=(",", ":"))
    body = '{"' + payload["key"] + '":' + inner_text
    app = payload["app"]
    if app is not None:
        content = inner_text + ("tampered" if tamper else "")
        body += ',"sign":"' + keys.sign(app["alipay_private_key"], content) + '"'
    return (body + "}").encode("utf-8")
