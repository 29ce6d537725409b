"""The operations pages for channel configuration, tried as a new ops user would (issue 3 "How it is checked")."""

from __future__ import annotations

import importlib.util
import re

import pytest
from django.urls import reverse

from aggpay.models import AuditLog
from channels.models import (
    CHECKLIST_KEYS,
    ChannelAccount,
    ChannelConfigChange,
    ChannelProduct,
    EvaluationState,
    InterfaceEvaluation,
)
from channels.services.accounts import channel_account_create
from channels.services.demo import demo_channel_accounts_seed
from channels.services.evaluations import interface_evaluation_start
from channels.services.products import channel_product_set
from tests.conftest import STAFF_PASSWORD
from tests.factories import _rsa_pem_pair, channel_config

pytestmark = pytest.mark.django_db

MISSING = [kind for kind in ("wechatpay", "alipay", "bank")
           if importlib.util.find_spec(f"channels.simulators.{kind}") is None]
needs_all_simulators = pytest.mark.skipif(bool(MISSING), reason=f"simulators not written yet: {MISSING}")

# The PEM body lines and symmetric keys: none of them may ever appear in a page.
_PEM_LINE = re.compile(r"^[A-Za-z0-9+/=]{40,}$", re.MULTILINE)


def secret_fragments(account: ChannelAccount) -> list[str]:
    """Every stored secret of the account, plus each base64 line of every PEM block it holds."""
    fragments = []
    for value in account.config.values():
        texts = value if isinstance(value, list) else [value]
        for text in texts:
            if not isinstance(text, str) or not text:
                continue
            if "-----BEGIN" in text:
                fragments += _PEM_LINE.findall(text)
    typed = account.typed_config
    for name in type(account.adapter()).CONFIG_SECRET_FIELDS:
        value = getattr(typed, name)
        if value:
            fragments.append(value)
    return fragments


def assert_no_secret(html: str, accounts) -> None:
    for account in accounts:
        fragments = secret_fragments(account)
        assert len(fragments) >= 3, "the check would be vacuous"
        for fragment in fragments:
            assert fragment not in html, f"a secret of {account.code} is in the page"
    assert "PRIVATE KEY" not in html


@pytest.fixture
def ops(client, staff_member):
    staff_member("operations", username="ops-amy")
    assert client.login(username="ops-amy", password=STAFF_PASSWORD)
    return client


@pytest.fixture
def wechat_account():
    account = channel_account_create(actor="test", kind="wechatpay", code="wx-isv", name="WeChat ISV",
                                     base_url="http://127.0.0.1:9/wechatpay", config=channel_config("wechatpay"))
    channel_product_set(account_id=account.pk, product="wechat.native", actor="test", cost_rate="0.0038",
                        isv_rebate_rate="0.0008", max_amount=5_000_000, daily_cap=None)
    return account


def test_the_account_page_shows_ids_and_rates_but_masks_every_secret(ops, wechat_account):
    response = ops.get(reverse("channels:account_detail", args=["wx-isv"]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "1900000100" in html  # sp_mchid: an id, visible
    assert "PUB_KEY_ID_0119000001002024112600000000000001" in html
    assert "•••••• (set)" in html
    assert "0.38%" in html and "0.08%" in html
    assert "50,000.00" in html and "no cap" in html
    assert_no_secret(html, [wechat_account])


def test_the_edit_form_never_sends_a_secret_back(ops, wechat_account):
    response = ops.get(reverse("channels:account_edit", args=["wx-isv"]))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="config__apiv3_key"' in html and 'name="config__private_key_pem"' in html
    assert "1900000100" in html  # non-secret ids are pre-filled
    assert_no_secret(html, [wechat_account])
    # Nor the channel's public key: PEM fields are write-only too.
    assert not _PEM_LINE.search(html)


def test_saving_the_edit_form_with_blank_secrets_keeps_them(ops, wechat_account):
    original = channel_config("wechatpay")

    response = ops.post(reverse("channels:account_edit", args=["wx-isv"]), {
        "name": "WeChat ISV (Hangzhou)", "mode": "isv", "base_url": "http://127.0.0.1:9/wechatpay", "notes": "",
        "config__sp_mchid": "1900000100", "config__sp_appid": "wx8888888888888888",
        "config__serial_no": original["serial_no"], "config__private_key_pem": "", "config__apiv3_key": "",
        "config__wechatpay_public_key_pem": "", "config__wechatpay_public_key_id": original["wechatpay_public_key_id"],
        "reason": "rename",
    })

    assert response.status_code == 302
    account = ChannelAccount.objects.get(code="wx-isv")
    assert account.name == "WeChat ISV (Hangzhou)"
    assert account.config["private_key_pem"] == original["private_key_pem"]
    assert account.config["apiv3_key"] == original["apiv3_key"]


def test_creating_an_account_through_the_form_then_rotating_its_key(ops):
    ours, _ = _rsa_pem_pair("bank:ours")
    _, theirs = _rsa_pem_pair("bank:channel")
    form = {"kind": "bank", "code": "bank-c", "name": "Bank C", "mode": "bank",
            "base_url": "http://127.0.0.1:9/bank", "config__org_no": "ORG9", "config__key_id": "K9",
            "config__private_key_pem": ours, "config__bank_key_id": "BK9", "config__bank_public_key_pem": theirs,
            "config__user_auth_url": "http://127.0.0.1:9/bank/userAuth", "reason": "new bank"}

    response = ops.post(reverse("channels:account_create") + "?kind=bank", form)

    assert response.status_code == 302
    account = ChannelAccount.objects.get(code="bank-c")
    assert account.enabled is False
    # Says what it takes to go on (channels.services.accounts.enable_refusal): not just "enable it".
    page = ops.get(response.url).content.decode()
    assert "created, disabled: it takes traffic once its interface evaluation is live and you enable it" in page
    assert account.typed_config.private_key_pem == ours
    rotated, _ = _rsa_pem_pair("bank:rotated")
    response = ops.post(reverse("channels:account_edit", args=["bank-c"]), {
        **{k: v for k, v in form.items() if k not in ("kind", "code")},
        "config__private_key_pem": rotated, "config__bank_public_key_pem": "", "reason": "rotate our key"})
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.typed_config.private_key_pem == rotated
    assert account.typed_config.bank_public_key_pem == theirs
    assert account.changes.get(action="account.updated").changes == {"config.private_key_pem": "(changed)"}


def test_a_bad_key_in_the_form_is_shown_on_that_field(ops):
    response = ops.post(reverse("channels:account_create") + "?kind=alipay", {
        "kind": "alipay", "code": "ali-2", "name": "Alipay 2", "mode": "isv", "base_url": "http://127.0.0.1:9/alipay",
        "config__app_id": "2021", "config__app_private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        "config__alipay_public_key": _rsa_pem_pair("alipay:channel")[1], "config__sign_type": "RSA2"})

    assert response.status_code == 200
    assert response.context["form"].errors["config__app_private_key"]
    assert not ChannelAccount.objects.filter(code="ali-2").exists()


def test_editing_a_rate_inline_keeps_history_with_the_reason(ops, wechat_account):
    url = reverse("channels:product_edit", args=["wx-isv", "wechat.native"])

    response = ops.post(url, {"cost_rate": "0.30", "isv_rebate_rate": "0.08", "min_amount": "0.01",
                              "max_amount": "50000.00", "daily_cap": "", "enabled": "on",
                              "reason": "negotiated with WeChat"})

    assert response.status_code == 302
    row = ChannelProduct.objects.get(account__code="wx-isv", product="wechat.native")
    assert str(row.cost_rate) == "0.003000"
    change = ChannelConfigChange.objects.get(action="product.updated")
    assert change.changes == {"cost_rate": {"old": "0.003800", "new": "0.003000"}}
    assert change.actor.username == "ops-amy"
    page = ops.get(reverse("channels:account_detail", args=["wx-isv"])).content.decode()
    assert "negotiated with WeChat" in page and "0.30%" in page


def test_a_rate_edit_without_reason_or_out_of_range_is_refused_on_the_field(ops, wechat_account):
    url = reverse("channels:product_edit", args=["wx-isv", "wechat.native"])
    base = {"isv_rebate_rate": "0.08", "min_amount": "0.01", "max_amount": "50000", "enabled": "on"}

    no_reason = ops.post(url, {**base, "cost_rate": "0.30"})
    too_high = ops.post(url, {**base, "cost_rate": "100", "reason": "typo"})
    below_rebate = ops.post(url, {**base, "cost_rate": "0.05", "reason": "cheaper"})

    assert no_reason.status_code == 400 and "reason" in no_reason.context["form"].errors
    assert too_high.status_code == 400 and "cost_rate" in too_high.context["form"].errors
    assert below_rebate.status_code == 400 and "cost_rate" in below_rebate.context["form"].errors
    assert not ChannelConfigChange.objects.filter(action="product.updated").exists()


def test_disable_and_enable_buttons_post_through_the_services(ops, wechat_account, evaluate):
    evaluate(wechat_account)
    ops.post(reverse("channels:account_enable", args=["wx-isv"]), {"reason": "evaluation done"})
    assert ChannelAccount.objects.get(code="wx-isv").enabled is True

    ops.post(reverse("channels:account_disable", args=["wx-isv"]), {"reason": ""})
    assert ChannelAccount.objects.get(code="wx-isv").enabled is True  # no reason, no change

    ops.post(reverse("channels:account_disable", args=["wx-isv"]), {"reason": "channel incident"})
    assert ChannelAccount.objects.get(code="wx-isv").enabled is False
    assert AuditLog.objects.filter(action="channels.account.disabled", actor__username="ops-amy").exists()


def test_completing_an_interface_evaluation_through_the_pages(ops, wechat_account):
    ops.post(reverse("channels:evaluation_start", args=["wx-isv"]))
    evaluation = InterfaceEvaluation.objects.get(account=wechat_account)
    url = reverse("channels:evaluation_detail", args=["wx-isv", evaluation.pk])
    form = {f"{key}_finding": f"checked {key}" for key in CHECKLIST_KEYS}
    form.update({f"{key}_score": "4" for key in CHECKLIST_KEYS})
    form["fees_score"] = "5"

    assert ops.post(url, {**form, "verdict_notes": "good"}).status_code == 302
    page = ops.get(url).content.decode()
    assert "4.1" in page  # (10 × 4 + 5) / 11
    act = reverse("channels:evaluation_transition", args=["wx-isv", evaluation.pk, "approve"])
    assert ops.post(act, {"reason": ""}).status_code == 400
    ops.post(act, {"reason": "fit for purpose"})
    ops.post(reverse("channels:evaluation_transition", args=["wx-isv", evaluation.pk, "start_integrating"]))
    ops.post(reverse("channels:evaluation_transition", args=["wx-isv", evaluation.pk, "go_live"]),
             {"reason": "joint test ok"})

    evaluation.refresh_from_db()
    assert evaluation.state == EvaluationState.LIVE
    assert evaluation.reviewer.username == "ops-amy"
    page = ops.get(url).content.decode()
    assert "evaluation.live" in page and "fit for purpose" in page
    assert 'name="go_live"' not in page and "Save checklist" not in page


def test_an_illegal_transition_from_the_page_changes_nothing(ops, wechat_account):
    evaluation = interface_evaluation_start(account_id=wechat_account.pk, actor="test")

    response = ops.post(reverse("channels:evaluation_transition", args=["wx-isv", evaluation.pk, "go_live"]),
                        {"reason": "skip"}, follow=True)

    assert "cannot go live" in response.content.decode()
    evaluation.refresh_from_db()
    assert evaluation.state == EvaluationState.EVALUATING


@pytest.mark.parametrize("role", ["onboarding_clerk", "finance", "support_agent"])
def test_other_roles_get_403_on_every_page_and_action(client, staff_member, wechat_account, role):
    staff_member(role, username="someone")
    client.login(username="someone", password=STAFF_PASSWORD)
    evaluation = interface_evaluation_start(account_id=wechat_account.pk, actor="test")

    gets = [reverse("channels:account_list"), reverse("channels:account_create") + "?kind=bank",
            reverse("channels:account_detail", args=["wx-isv"]), reverse("channels:account_edit", args=["wx-isv"]),
            reverse("channels:product_edit", args=["wx-isv", "wechat.native"]),
            reverse("channels:evaluation_detail", args=["wx-isv", evaluation.pk])]
    posts = [reverse("channels:account_enable", args=["wx-isv"]),
             reverse("channels:product_edit", args=["wx-isv", "wechat.native"]),
             reverse("channels:evaluation_transition", args=["wx-isv", evaluation.pk, "reject"])]

    for url in gets:
        assert client.get(url).status_code == 403, url
    for url in posts:
        assert client.post(url, {"reason": "x", "cost_rate": "0.1"}).status_code == 403, url
    assert ChannelAccount.objects.get(code="wx-isv").enabled is False
    evaluation.refresh_from_db()
    assert evaluation.state == EvaluationState.EVALUATING


def test_an_anonymous_visitor_is_sent_to_the_login_page(client):
    response = client.get(reverse("channels:account_list"))

    assert response.status_code == 302
    assert response["Location"].startswith("/staff/login/")


@needs_all_simulators
def test_a_new_ops_user_tries_the_demo(ops, admin_client, simulator_server, settings):
    """Issue 3: sees the four accounts, their products and rates and their live evaluations, edits a rate
    (history kept), completes the interface evaluation of an account added after them and enables it, and cannot
    read any stored secret back — in any page or admin page."""
    settings.AGGPAY_SIMULATOR_BASE_URL = simulator_server.base_url
    demo_channel_accounts_seed(simulator_root=simulator_server.base_url)
    demo_accounts = list(ChannelAccount.objects.all())
    bank_c = channel_account_create(actor="test", kind="bank", code="bank-c", name="Bank C",
                                    base_url=f"{simulator_server.base_url}/bank", config=channel_config("bank"))
    accounts = [*demo_accounts, bank_c]
    pages = []

    listing = ops.get(reverse("channels:account_list"))
    pages.append(listing)
    for name in ("WeChat Pay ISV", "Alipay ISV", "Bank A", "Bank B", "Bank C"):
        assert name in listing.content.decode()

    for account in demo_accounts:
        detail = ops.get(reverse("channels:account_detail", args=[account.code]))
        pages += [detail, ops.get(reverse("channels:account_edit", args=[account.code]))]
        assert account.products.count() >= 5
        for row in account.products.all():
            assert row.product in detail.content.decode()
    assert "0.20%" in ops.get(reverse("channels:account_detail", args=["bank-a"])).content.decode()
    assert "0.23%" in ops.get(reverse("channels:account_detail", args=["bank-b"])).content.decode()

    ops.post(reverse("channels:product_edit", args=["bank-b", "unionpay.qr"]), {
        "cost_rate": "0.21", "isv_rebate_rate": "0", "min_amount": "0.01", "max_amount": "20000",
        "daily_cap": "500000", "enabled": "on", "reason": "Bank B matches Bank A"})
    assert str(ChannelProduct.objects.get(account__code="bank-b", product="unionpay.qr").cost_rate) == "0.002100"
    history = ops.get(reverse("channels:account_detail", args=["bank-b"]))
    pages.append(history)
    assert "Bank B matches Bank A" in history.content.decode()

    seeded = InterfaceEvaluation.objects.get(account__code="bank-b")
    live = ops.get(reverse("channels:evaluation_detail", args=["bank-b", seeded.pk]))
    pages.append(live)
    assert seeded.state == EvaluationState.LIVE and "20,000 yuan per transaction" in live.content.decode()

    assert "Cannot be enabled yet" in ops.get(reverse("channels:account_detail", args=["bank-c"])).content.decode()
    ops.post(reverse("channels:evaluation_start", args=["bank-c"]))
    evaluation = InterfaceEvaluation.objects.get(account=bank_c)
    url = reverse("channels:evaluation_detail", args=["bank-c", evaluation.pk])
    form = {f"{key}_finding": f"checked {key}" for key in CHECKLIST_KEYS}
    form.update({f"{key}_score": "3" for key in CHECKLIST_KEYS})
    ops.post(url, form)
    for action, reason in (("approve", "Bank C is fit"), ("start_integrating", ""), ("go_live", "joint tests ok")):
        ops.post(reverse("channels:evaluation_transition", args=["bank-c", evaluation.pk, action]), {"reason": reason})
    evaluation.refresh_from_db()
    assert evaluation.state == EvaluationState.LIVE
    pages.append(ops.get(url))
    ops.post(reverse("channels:account_enable", args=["bank-c"]), {"reason": "Bank C evaluated"})
    assert ChannelAccount.objects.get(code="bank-c").enabled is True

    for model in ("channelaccount", "channelproduct", "interfaceevaluation", "channelconfigchange"):
        pages.append(admin_client.get(reverse(f"admin:channels_{model}_changelist")))
    for account in accounts:
        pages.append(admin_client.get(reverse("admin:channels_channelaccount_change", args=[account.pk])))
    for change in ChannelConfigChange.objects.all()[:30]:
        pages.append(admin_client.get(reverse("admin:channels_channelconfigchange_change", args=[change.pk])))
    pages.append(admin_client.get(reverse("admin:channels_interfaceevaluation_change", args=[evaluation.pk])))
    for audit in AuditLog.objects.filter(action__startswith="channels.")[:20]:
        pages.append(admin_client.get(reverse("admin:aggpay_auditlog_change", args=[audit.pk])))

    for page in pages:
        assert page.status_code == 200, page.wsgi_request.path
        assert_no_secret(page.content.decode(), accounts)


# --- Django admin: it shows, it acts through the services, it never bypasses them ----------------------------


def test_an_admin_product_edit_goes_through_the_service_and_needs_a_reason(admin_client, wechat_account):
    row = ChannelProduct.objects.get(account=wechat_account, product="wechat.native")
    url = reverse("admin:channels_channelproduct_change", args=[row.pk])
    form = {"cost_rate": "0.0030", "isv_rebate_rate": "0.0008", "min_amount": "1", "max_amount": "5000000",
            "daily_cap": "", "enabled": "on"}

    refused = admin_client.post(url, {**form, "reason": ""})
    saved = admin_client.post(url, {**form, "reason": "admin correction"})

    assert refused.status_code == 200 and "reason" in refused.context["adminform"].form.errors
    assert saved.status_code == 302
    row.refresh_from_db()
    assert str(row.cost_rate) == "0.003000"
    change = ChannelConfigChange.objects.get(action="product.updated")
    assert change.reason == "admin correction"
    assert change.changes == {"cost_rate": {"old": "0.003800", "new": "0.003000"}}


def test_an_admin_product_rate_of_one_is_refused_on_the_field(admin_client, wechat_account):
    row = ChannelProduct.objects.get(account=wechat_account, product="wechat.native")

    response = admin_client.post(reverse("admin:channels_channelproduct_change", args=[row.pk]), {
        "cost_rate": "1", "isv_rebate_rate": "0", "min_amount": "1", "max_amount": "5000000", "enabled": "on",
        "reason": "typo"})

    assert "cost_rate" in response.context["adminform"].form.errors
    row.refresh_from_db()
    assert str(row.cost_rate) == "0.003800"


def test_the_admin_enable_action_asks_for_a_reason_then_calls_the_service(admin_client, wechat_account, evaluate):
    evaluate(wechat_account)
    url = reverse("admin:channels_channelaccount_changelist")
    selection = {"action": "enable_accounts", "_selected_action": [wechat_account.pk]}

    asked = admin_client.post(url, selection)
    assert asked.status_code == 200 and b'name="reason"' in asked.content
    assert ChannelAccount.objects.get(pk=wechat_account.pk).enabled is False

    done = admin_client.post(url, {**selection, "apply": "1", "reason": "approved by ops lead"})

    assert done.status_code == 302
    assert ChannelAccount.objects.get(pk=wechat_account.pk).enabled is True
    assert wechat_account.changes.get(action="account.enabled").reason == "approved by ops lead"


def test_admin_evaluation_actions_follow_the_state_machine(admin_client, wechat_account):
    evaluation = interface_evaluation_start(account_id=wechat_account.pk, actor="test")
    url = reverse("admin:channels_interfaceevaluation_changelist")

    admin_client.post(url, {"action": "go_live", "_selected_action": [evaluation.pk], "apply": "1", "reason": ""})
    admin_client.post(url, {"action": "reject", "_selected_action": [evaluation.pk], "apply": "1",
                            "reason": "no partial refunds"})

    evaluation.refresh_from_db()
    assert evaluation.state == EvaluationState.REJECTED
    assert evaluation.verdict_notes == "no partial refunds"
    assert not ChannelConfigChange.objects.filter(action="evaluation.live").exists()


def test_the_admin_account_page_cannot_save_the_row(admin_client, wechat_account):
    url = reverse("admin:channels_channelaccount_change", args=[wechat_account.pk])

    page = admin_client.get(url)
    admin_client.post(url, {"name": "hijacked", "enabled": "on"})

    assert b'name="_save"' not in page.content
    wechat_account.refresh_from_db()
    assert wechat_account.name == "WeChat ISV" and wechat_account.enabled is False


def test_a_product_added_in_the_admin_is_created_by_the_service(admin_client, wechat_account):
    response = admin_client.post(reverse("admin:channels_channelproduct_add"), {
        "account": wechat_account.pk, "product": "wechat.jsapi", "cost_rate": "0.006", "isv_rebate_rate": "0.002",
        "min_amount": "1", "max_amount": "5000000", "daily_cap": "", "enabled": "on", "reason": ""})

    assert response.status_code == 302
    row = ChannelProduct.objects.get(account=wechat_account, product="wechat.jsapi")
    assert ChannelConfigChange.objects.filter(action="product.created", target_id=str(row.pk)).count() == 1
