"""Risk's queue of channel risk notices (/staff/risk/notices/, risk.views): the new notices first with their counts by
kind and by account, the filters, one notice with its free text masked (design §5 rule 10), the handle form
(an action and a required note), the tile on the risk officer's home; other roles are refused."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aggpay.models import AuditLog
from merchants.models import Contract, ContractState
from risk.models import ChannelRiskNotice
from risk.services.channel_notices import channel_risk_notice_handle, channel_risk_notice_record
from tests.risk.violations import TEA_SUB, contract_on, wechat_account

pytestmark = pytest.mark.django_db

QUEUE = "/staff/risk/notices/"
ID_NUMBER, PHONE = "110101199003071234", "13812345678"


def _record(account, record_id, *, event="PUNISH", sub_mchid=TEA_SUB, minutes_ago=0, **data):
    notice = channel_risk_notice_record(
        account=account, event_type=f"VIOLATION.{event}", event_id=f"EV-{record_id}",
        received_at=timezone.now() - dt.timedelta(minutes=minutes_ago),
        data={"record_id": record_id, "sub_mchid": sub_mchid, "company_name": "杭州茶馆有限公司", **data}).notice
    return notice


@pytest.fixture
def desk(tea_house, risk_zhao, local_midday):
    """Two WeChat accounts; Tea House contracted on the first. Notices of each kind, one unmatched, one handled;
    staged minutes and days before local noon (the date filters count local days)."""
    wx, wx2 = wechat_account("wx-main"), wechat_account("wx-second")
    contract = contract_on(wx, tea_house, sub_mchid=TEA_SUB)
    notices = {
        "handled": _record(wx, "VR-H", minutes_ago=1),  # the newest, but handled: after the new ones
        "punish": _record(wx, "VR-P", minutes_ago=10, punish_description=f"法人身份证 {ID_NUMBER}，电话 {PHONE}"),
        "intercept": _record(wx, "VR-I", event="INTERCEPT", minutes_ago=20),
        "unmatched": _record(wx2, "VR-U", sub_mchid="1900009999", minutes_ago=30),
        "appeal": _record(wx, "VR-A", event="APPEAL", minutes_ago=60 * 48),
    }
    channel_risk_notice_handle(notice_id=notices["handled"].pk, actor=risk_zhao, note="seen")
    return {"wx": wx, "wx2": wx2, "contract": contract, **notices}


def _ids(response) -> list[int]:
    assert response.status_code == 200
    return [int(pk) for pk in re.findall(r'<tr data-notice="(\d+)"', response.content.decode())]


def test_the_queue_opens_on_the_new_notices_newest_first_with_counts(client, desk, risk_zhao):
    client.force_login(risk_zhao)

    response = client.get(QUEUE)

    d = desk
    assert _ids(response) == [d[k].pk for k in ("punish", "intercept", "unmatched", "appeal")]
    counts = response.context["counts"]
    assert (counts["new"], counts["handled"], counts["unmatched"]) == (4, 1, 1)
    assert {t["key"]: t["n"] for t in counts["kinds"]} == {"punish": 2, "intercept": 1, "appeal": 1}
    assert [(t.code, t.new, t.total) for t in counts["accounts"]] == [("wx-main", 3, 4), ("wx-second", 1, 1)]
    html = response.content.decode()
    assert "no contract of ours" in html and "杭州茶馆有限公司" in html


def test_all_puts_the_new_notices_before_the_handled_ones(client, desk, risk_zhao):
    client.force_login(risk_zhao)

    assert _ids(client.get(QUEUE, {"state": "all"}))[-1] == desk["handled"].pk
    assert _ids(client.get(QUEUE, {"state": "handled"})) == [desk["handled"].pk]


@pytest.mark.parametrize(("params", "expected"), [
    ({"kind": "intercept"}, ["intercept"]),
    ({"account": "wx-second"}, ["unmatched"]),
    ({"match": "unmatched"}, ["unmatched"]),
    ({"match": "matched", "kind": "punish"}, ["punish"]),
    ({"q": "VR-A"}, ["appeal"]),
    ({"q": "1900009999"}, ["unmatched"]),
    ({"date_to": 1}, ["appeal"]),  # days ago
    ({"state": "all", "kind": "punish"}, ["punish", "unmatched", "handled"]),
])
def test_the_filters_narrow_the_queue(client, desk, risk_zhao, params, expected):
    params = {k: (timezone.localdate() - dt.timedelta(days=v)).isoformat() if k == "date_to" else v
              for k, v in params.items()}
    client.force_login(risk_zhao)

    assert _ids(client.get(QUEUE, params)) == [desk[k].pk for k in expected]


def _tab_counts(response) -> dict[str, int]:
    return {state: int(n) for state, n in re.findall(r'data-state="(\w+)">[^<]*<span class="n[^"]*">(\d+)</span>',
                                                      response.content.decode())}


@pytest.mark.parametrize("params", [
    {"kind": "intercept"},
    {"account": "wx-main"},
    {"match": "unmatched"},
    {"q": "VR-H"},
    {"date_from": 0},  # days ago
    {"kind": "punish", "state": "handled"},
])
def test_with_filters_each_tab_counts_what_clicking_it_lists(client, desk, risk_zhao, params):
    # "Handled 1" above a list the filters emptied read as one gone missing: a tab's number is the list it opens,
    # the other filters as they are. The panels above stay the whole queue's.
    params = {k: (timezone.localdate() - dt.timedelta(days=v)).isoformat() if k == "date_from" else v
              for k, v in params.items()}
    client.force_login(risk_zhao)

    response = client.get(QUEUE, params)

    tabs = _tab_counts(response)
    assert list(tabs) == ["new", "handled"]  # "All" has no number
    assert tabs == {state: len(_ids(client.get(QUEUE, {**params, "state": state}))) for state in tabs}
    counts = response.context["counts"]
    assert (counts["new"], counts["handled"]) == (4, 1)


def _queries(client, params) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(QUEUE, params).status_code == 200
    return len(queries.captured_queries)


@pytest.mark.parametrize("params", [{}, {"kind": "punish", "match": "matched", "q": "茶馆", "state": "all"}])
def test_the_queues_query_count_does_not_grow_with_the_notices_or_accounts(client, desk, risk_zhao, params):
    client.force_login(risk_zhao)
    few = _queries(client, params)
    for n in range(13):
        account = wechat_account(f"wx-{n}")
        _record(account, f"VR-N{n}")
        _record(desk["wx"], f"VR-M{n}", event="INTERCEPT")
        channel_risk_notice_handle(notice_id=_record(desk["wx"], f"VR-K{n}").pk, actor=risk_zhao, note="seen")

    many = _queries(client, params)

    assert len(_ids(client.get(QUEUE))) == 25  # a full page
    assert many == few


def test_a_bad_filter_is_shown_and_the_others_still_apply(client, desk, risk_zhao):
    client.force_login(risk_zhao)

    response = client.get(QUEUE, {"kind": "bogus", "account": "wx-second"})

    assert _ids(response) == [desk["unmatched"].pk]
    assert response.context["form"].errors["kind"]


def test_a_notice_shows_what_the_channel_said_with_personal_data_masked(client, desk, risk_zhao):
    client.force_login(risk_zhao)

    html = client.get(f"{QUEUE}{desk['punish'].pk}/").content.decode()

    assert "杭州茶馆有限公司" in html and "VR-P" in html
    assert ID_NUMBER not in html and PHONE not in html
    assert "110101********1234" in html and "138****5678" in html
    assert 'id="handle-form"' in html
    assert re.search(r'name="action" value="limit"', html) and re.search(r'name="action" value="freeze"', html)
    assert 'value="lift"' not in html  # the contract is active: there is no limit to lift


def test_an_unmatched_notice_offers_only_noting(client, desk, risk_zhao):
    client.force_login(risk_zhao)

    html = client.get(f"{QUEUE}{desk['unmatched'].pk}/").content.decode()

    assert 'value="none"' in html and 'value="limit"' not in html and 'value="freeze"' not in html


def test_handling_with_limit_from_the_page_limits_the_contract(client, desk, risk_zhao):
    client.force_login(risk_zhao)
    notice = desk["punish"]

    response = client.post(f"{QUEUE}{notice.pk}/handle/", {"action": "limit", "note": "payments closed by WeChat"})

    assert response.status_code == 302 and response.url == f"{QUEUE}{notice.pk}/"
    assert Contract.objects.get(pk=desk["contract"].pk).state == ContractState.LIMITED
    notice.refresh_from_db()
    assert (notice.state, notice.handled_action, notice.handled_by) == ("handled", "limit", risk_zhao)
    html = client.get(response.url).content.decode()
    assert "payments closed by WeChat" in html and 'id="handle-form"' not in html


def test_handling_without_a_note_is_refused_and_changes_nothing(client, desk, risk_zhao):
    client.force_login(risk_zhao)
    notice = desk["punish"]

    response = client.post(f"{QUEUE}{notice.pk}/handle/", {"action": "limit", "note": ""})

    assert response.status_code == 400 and response.context["form"].errors["note"]
    assert ChannelRiskNotice.objects.get(pk=notice.pk).state == "new"
    assert Contract.objects.get(pk=desk["contract"].pk).state == ContractState.ACTIVE
    assert not AuditLog.objects.filter(action="risk.channel_notice.handled", target_id=str(notice.pk)).exists()


def test_the_risk_officers_home_counts_the_new_notices_and_opens_exactly_them(client, desk, risk_zhao):
    client.force_login(risk_zhao)

    sections = client.get("/staff/").context["sections"]
    (tile,) = [q for s in sections for q in s["queues"] if q.label == "Channel risk notices to handle"]

    assert (tile.count, tile.tone) == (4, "bad")
    assert len(client.get(tile.url).context["rows"]) == 4
    risk_links = [link["url"] for s in sections if s["slug"] == "risk" for link in s["links"]]
    assert QUEUE in risk_links


@pytest.mark.parametrize("role", ["support_agent", "operations", "finance"])
def test_other_roles_are_refused_every_page_and_the_handling(client, desk, staff_member, role):
    client.force_login(staff_member(role))
    notice = desk["punish"]

    assert client.get(QUEUE).status_code == 403
    assert client.get(f"{QUEUE}{notice.pk}/").status_code == 403
    assert client.post(f"{QUEUE}{notice.pk}/handle/", {"action": "limit", "note": "x"}).status_code == 403
    assert ChannelRiskNotice.objects.get(pk=notice.pk).state == "new"
    assert Contract.objects.get(pk=desk["contract"].pk).state == ContractState.ACTIVE
    tiles = [q.label for s in client.get("/staff/").context["sections"] for q in s["queues"]]
    assert "Channel risk notices to handle" not in tiles


def test_the_page_offers_lifting_only_on_a_notice_about_the_record_the_limit_was_set_for(client, desk, risk_zhao):
    client.force_login(risk_zhao)
    d = desk
    client.post(f"{QUEUE}{d['punish'].pk}/handle/", {"action": "limit", "note": "payments closed by WeChat"})
    own_appeal = _record(d["wx"], "VR-P", event="APPEAL")  # an update of the appeal against VR-P

    other = client.get(f"{QUEUE}{d['intercept'].pk}/").content.decode()
    own = client.get(f"{QUEUE}{own_appeal.pk}/").content.decode()
    refused = client.post(f"{QUEUE}{d['intercept'].pk}/handle/", {"action": "lift", "note": "intercepts ended"})

    assert 'value="lift"' not in other and 'value="lift"' in own
    assert re.search(r'id="limit">limited by zhao.risk on [\d-]+ [\d:]+ for record <span class="mono">VR-P</span>'
                     r" — not this notice's to lift", other)
    assert refused.status_code == 400 and refused.context["form"].errors["action"]
    assert Contract.objects.get(pk=d["contract"].pk).state == ContractState.LIMITED
    assert ChannelRiskNotice.objects.get(pk=d["intercept"].pk).state == "new"


@pytest.mark.parametrize(("written", "masked"), [
    ("卡号 6222 0212 3456 7890 123。", "卡号 ***************0123。"),
    ("银行卡6222-0212-3456-7890", "银行卡************7890"),
    ("联系电话 138-1234-5678", "联系电话 138****5678"),
    ("联系电话 138 1234 5678", "联系电话 138****5678"),
    ("联系电话+8613812345678", "联系电话+86138****5678"),
    ("联系电话 +86 13812345678", "联系电话 +86 138****5678"),
])
def test_card_numbers_and_mobiles_as_people_write_them_are_masked_too(client, desk, risk_zhao, written, masked):
    notice = _record(desk["wx"], "VR-M", risk_description=written)
    client.force_login(risk_zhao)

    html = client.get(f"{QUEUE}{notice.pk}/").content.decode()

    assert f'<dd id="risk-description" class="notice-text">{masked}</dd>' in html


def test_the_last_day_there_is_as_the_end_of_the_range_lists_up_to_now(client, desk, risk_zhao):
    client.force_login(risk_zhao)

    assert _ids(client.get(QUEUE, {"date_to": "9999-12-31"})) == _ids(client.get(QUEUE))
