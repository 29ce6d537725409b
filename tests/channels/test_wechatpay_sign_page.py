"""WeChat Pay's simulated sign page (the ``sign_url`` of A.13, channels/simulators/wechatpay_merchant.py): the super
admin who opens it can confirm and sign with its button — as on the bank simulator's — not only through
``POST /_control/applications/<id> {"action": "finish"}`` (docs/api.md "Partner onboarding")."""

from __future__ import annotations

from urllib.parse import urlsplit

from channels.adapters.base import OnboardingState
from tests.channels.test_wechatpay_merchant import act, application
from tests.channels.test_wechatpay_payments import sim


def test_the_sign_pages_button_finishes_the_application(simulator_server, wechatpay_adapter):
    submitted = wechatpay_adapter.onboarding_submit(application=application(wechatpay_adapter))
    act(simulator_server, submitted.application_id, "ask_sign")
    to_sign = wechatpay_adapter.onboarding_query(application_id=submitted.application_id)
    assert to_sign.state == OnboardingState.TO_BE_SIGNED

    assert urlsplit(to_sign.sign_url).path.endswith("/wechatpay/_payer/sign")
    page = sim(simulator_server, "GET", "/_payer/sign?" + urlsplit(to_sign.sign_url).query)
    assert page.status_code == 200 and "<button>" in page.text and "<form method=post>" in page.text
    signed = sim(simulator_server, "POST", "/_payer/sign", data={"applyment_id": submitted.application_id})

    assert signed.status_code == 200, signed.text
    assert "<button>" not in signed.text  # nothing left to sign
    finished = wechatpay_adapter.onboarding_query(application_id=submitted.application_id)
    assert (finished.state, finished.sub_mchid) == (OnboardingState.FINISHED, to_sign.sub_mchid)


def test_signing_a_finished_application_again_is_refused(simulator_server, wechatpay_adapter):
    submitted = wechatpay_adapter.onboarding_submit(application=application(wechatpay_adapter))
    act(simulator_server, submitted.application_id, "finish")
    again = sim(simulator_server, "POST", "/_payer/sign", data={"applyment_id": submitted.application_id})
    assert again.status_code == 409
