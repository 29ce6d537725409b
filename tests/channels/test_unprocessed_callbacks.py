"""Operations' queue of callbacks we did not process (channels.unprocessed): a notice kept with outcome ``error`` (the
account's adapter could not be built — commit a94c1cb — or a handler failed for a moment; the channel retries) or
``ignored`` (verified, no handler for its kind; acknowledged) shows here, so ops see an account silently dropping
notices. Processed ones (applied, duplicate) and refused ones (risk's queue) do not. Bodies are shown masked and
cut short (design §5 rule 10). The queue opens on the open ones (not handled, not applied on a retry); marking them
handled is tests/channels/test_unprocessed_callbacks_handling.py."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels.models import CallbackOutcome, ChannelAccount, ChannelCallback
from tests.conftest import STAFF_PASSWORD
from tests.factories import ChannelAccountFactory, channel_config

pytestmark = pytest.mark.django_db

QUEUE = "/staff/channels/callbacks/unprocessed/"
PHONE, OPENID = "13812345678", "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
# A notice whose tail lies past the excerpt: it must never reach the page.
TAIL = "TAIL-PAST-THE-EXCERPT-" + "z" * 16
BANK_BODY = ('{"notify_id": "N2026", "trade_state": "SUCCESS", "payer_phone": "' + PHONE + '", "sign": "c2lnbmF0dXJl'
             'LXZhbHVl", "memo": "' + "x" * 400 + '", "tail": "' + TAIL + '"}').encode()


def _row(account, outcome, *, minutes_ago=0, kind="payment", event_id="", message="", body="{}"):
    return ChannelCallback.objects.create(
        account=account, outcome=outcome, kind=kind, event_id=event_id, message=message, body=body,
        received_at=timezone.now() - dt.timedelta(minutes=minutes_ago))


@pytest.fixture
def ops(staff_member):
    return staff_member("operations")


@pytest.fixture
def callbacks(client, local_midday):
    """Every outcome on a working WeChat Pay account, and a notice posted to a bank account whose stored config no
    longer loads (kept as ``error`` by channels.callbacks); received minutes and days before local noon (the date
    filter counts local days)."""
    wx = ChannelAccountFactory(code="wx-main", kind="wechatpay")
    bank = ChannelAccountFactory(code="bank-broken", kind="bank")
    broken = channel_config("bank")
    del broken["org_no"]
    ChannelAccount.objects.filter(pk=bank.pk).update(config=broken)
    assert client.post(f"/callbacks/{bank.code}/", data=BANK_BODY, content_type="application/json").status_code \
        == 500
    (unbuildable,) = ChannelCallback.objects.filter(account=bank)
    rows = {
        "unbuildable": unbuildable,
        "applied": _row(wx, CallbackOutcome.APPLIED, minutes_ago=50, event_id="EV-A", message="order paid"),
        "duplicate": _row(wx, CallbackOutcome.DUPLICATE, minutes_ago=45, event_id="EV-A"),
        "rejected": _row(wx, CallbackOutcome.REJECTED, minutes_ago=40, message="amount 1 differs"),
        "ignored": _row(wx, CallbackOutcome.IGNORED, minutes_ago=30, kind="complaint", event_id="EV-C",
                        message="no handler for complaint callbacks yet"),
        "retried": _row(wx, CallbackOutcome.ERROR, minutes_ago=20, event_id="EV-R",
                        message="the order is being changed: try again"),
        "retry_applied": _row(wx, CallbackOutcome.APPLIED, minutes_ago=10, event_id="EV-R"),
        "failing": _row(wx, CallbackOutcome.ERROR, minutes_ago=5, kind="refund", event_id="EV-F",
                        message="channel timed out"),
        # Two days ago, for the date filter.
        "old": _row(wx, CallbackOutcome.IGNORED, minutes_ago=2 * 24 * 60, kind="violation", event_id="EV-V"),
    }
    return {"wx": wx, "bank": bank, **rows}


def _ids(response) -> list[int]:
    assert response.status_code == 200
    return [int(pk) for pk in re.findall(r'<tr data-callback="(\d+)"', response.content.decode())]


def _html_row(response, callback) -> str:
    html = response.content.decode()
    start = html.index(f'<tr data-callback="{callback.pk}"')
    return html[start:html.index("</tr>", start)]


def test_it_lists_only_the_callbacks_we_did_not_process_newest_first(client, ops, callbacks):
    client.force_login(ops)

    response = client.get(QUEUE, {"state": "all"})

    c = callbacks
    assert _ids(response) == [c[k].pk for k in ("unbuildable", "failing", "retried", "ignored", "old")]
    unbuildable = _html_row(response, c["unbuildable"])
    assert 'data-outcome="error"' in unbuildable and "bank-broken" in unbuildable
    assert "cannot be built" in unbuildable and "adapter could not be built" in unbuildable
    ignored = _html_row(response, c["ignored"])
    assert 'data-outcome="ignored"' in ignored and "complaint" in ignored and "no handler" in ignored
    # The error the channel's retry then applied says so; the one still failing does not.
    assert "data-settled" in _html_row(response, c["retried"])
    assert "data-settled" not in _html_row(response, c["failing"])


def test_it_opens_on_the_open_ones_leaving_out_those_a_retry_applied(client, ops, callbacks):
    # channels.unprocessed: an error the channel's retry then applied needs nobody, so it leaves the open list by
    # itself; ignored ones are never retried and an unbuildable account's error cannot be matched: they stay.
    client.force_login(ops)

    c = callbacks
    assert _ids(client.get(QUEUE)) == [c[k].pk for k in ("unbuildable", "failing", "ignored", "old")]


def test_it_counts_the_open_ones_per_account_and_outcome(client, ops, callbacks):
    client.force_login(ops)

    response = client.get(QUEUE)

    counts = response.context["counts"]
    assert (counts["all"], counts["last_day"]) == (4, 3)
    assert {t["key"]: t["n"] for t in counts["outcomes"]} == {"error": 2, "ignored": 2}
    assert {t.code: (t.error, t.ignored) for t in counts["accounts"]} == {"bank-broken": (1, 0), "wx-main": (1, 2)}
    assert {t["key"]: t["n"] for t in response.context["tabs"]} == {"open": 4, "settled": 1, "handled": 0, "all": 5}


def test_its_filters_narrow_the_list(client, ops, callbacks):
    client.force_login(ops)
    c = callbacks

    def ids(**params):
        return _ids(client.get(QUEUE, params))

    assert ids(account="bank-broken") == [c["unbuildable"].pk]
    assert ids(outcome="ignored") == [c["ignored"].pk, c["old"].pk]
    assert ids(account="wx-main", outcome="error") == [c["failing"].pk]
    assert ids(account="wx-main", outcome="error", state="all") == [c["failing"].pk, c["retried"].pk]
    assert ids(state="settled") == [c["retried"].pk]
    assert c["retried"].pk not in ids(state="open")
    today = timezone.localdate()
    assert c["old"].pk not in ids(date_from=today.isoformat())
    assert ids(date_to=(today - dt.timedelta(days=1)).isoformat()) == [c["old"].pk]
    # An account that does not exist is an error on the field, not an empty list that looks like "all is well".
    response = client.get(QUEUE, {"account": "no-such-account", "outcome": "ignored"})
    assert response.context["form"].errors["account"]
    assert _ids(response) == [c["ignored"].pk, c["old"].pk]
    # So is a state that does not exist: the queue still opens on the open ones.
    assert ids(state="bogus") == ids()


def test_the_last_day_there_is_as_the_end_of_the_range_lists_up_to_now(client, ops, callbacks):
    # 9999-12-31 is a date the field accepts; the day after it is none (it was an OverflowError, a 500).
    client.force_login(ops)

    assert _ids(client.get(QUEUE, {"date_to": "9999-12-31"})) == _ids(client.get(QUEUE))


def test_the_account_page_counts_its_open_callbacks_not_processed_and_links_to_that_list(client, ops, callbacks):
    # The number beside the link is what the link lists: the account's open ones (the queue opens on those), not
    # the error a retry applied nor one an operator marked handled.
    from channels.services.callback_handling import callback_record_mark_handled

    callback_record_mark_handled(record_ids=[callbacks["old"].pk], actor=ops, note="looked: a test notice")
    client.force_login(ops)

    html = client.get("/staff/channels/wx-main/").content.decode()

    link = re.search(r'<a href="([^"]*/callbacks/unprocessed/[^"]*)">See its', html).group(1).replace("&amp;", "&")
    assert link == "/staff/channels/callbacks/unprocessed/?account=wx-main&state=open"
    listed = _ids(client.get(link))
    assert listed == [callbacks["failing"].pk, callbacks["ignored"].pk]
    assert f'data-count="{len(listed)}"' in html
    assert 'id="unprocessed-link"' in client.get("/staff/channels/").content.decode()


def test_it_shows_the_body_masked_and_cut_short_and_no_stored_secret(client, ops, callbacks):
    wx = callbacks["wx"]
    apiv3_key = wx.config["apiv3_key"]
    pem_line = wx.config["private_key_pem"].splitlines()[1]
    # An exception's text may quote a value it refused; a notice may carry a payer's id.
    leaky = _row(wx, CallbackOutcome.ERROR, event_id="EV-L", message=f"apiv3_key {apiv3_key!r} refused",
                 body='{"id": "EV-L", "payer": {"sp_openid": "' + OPENID + '"}, "k": "' + pem_line + '"}')
    client.force_login(ops)

    response = client.get(QUEUE)

    html = response.content.decode()
    bank_row = _html_row(response, callbacks["unbuildable"])
    assert "N2026" in bank_row  # the excerpt is there…
    assert TAIL not in html  # … but never the whole notice
    for secret in (PHONE, "c2lnbmF0dXJlLXZhbHVl", OPENID, apiv3_key, pem_line):
        assert secret not in html
    assert "apiv3_key" in _html_row(response, leaky)  # the message itself is still shown
    broken_pem = callbacks["bank"].config["private_key_pem"].splitlines()
    assert not [line for line in broken_pem[1:-1] if line in html]


@pytest.mark.parametrize("who", ["risk", "no_callback_permission", "no_section"])
def test_someone_without_the_operations_channel_permissions_gets_403(client, staff_member, django_user_model,
                                                                     callbacks, who):
    if who == "risk":  # may read callbacks, but is not operations
        user = staff_member("risk_officer")
    else:
        user = django_user_model.objects.create_user("half", password=STAFF_PASSWORD, is_staff=True)
        perms = {"access_operations", "view_channelaccount", "view_channelcallback"}
        perms.discard("view_channelcallback" if who == "no_callback_permission" else "access_operations")
        user.user_permissions.set(Permission.objects.filter(codename__in=perms))
    client.force_login(user)

    response = client.get(QUEUE)

    assert response.status_code == 403
    assert str(callbacks["unbuildable"].pk) not in re.findall(r'data-callback="(\d+)"', response.content.decode())


def test_the_account_page_hides_the_link_from_someone_who_may_not_read_callbacks(client, django_user_model,
                                                                                  callbacks):
    user = django_user_model.objects.create_user("accounts-only", password=STAFF_PASSWORD, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in={"access_operations", "view_channelaccount"}))
    client.force_login(user)

    html = client.get("/staff/channels/wx-main/").content.decode()

    assert "/callbacks/unprocessed/" not in html


def _queries(client, params=None) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(QUEUE, params or {}).status_code == 200
    return len(queries.captured_queries)


@pytest.mark.parametrize("params", [{}, {"outcome": "error", "date_from": "today", "state": "all"}])
def test_its_query_count_does_not_grow_with_the_rows_or_accounts(client, ops, callbacks, params):
    if params.get("date_from") == "today":
        params = {**params, "date_from": timezone.localdate().isoformat()}
    client.force_login(ops)
    few = _queries(client, params)
    for n in range(12):
        account = ChannelAccountFactory(code=f"bank-{n}", kind="bank")
        _row(account, CallbackOutcome.ERROR, event_id=f"EV-{n}", body='{"sign": "x"}')
        _row(account, CallbackOutcome.IGNORED, kind="complaint", event_id=f"EV-I{n}")
        _row(account, CallbackOutcome.ERROR, event_id=f"EV-R{n}")
        _row(account, CallbackOutcome.APPLIED, event_id=f"EV-R{n}")  # the retry that applied the one before

    many = _queries(client, params)

    assert len(_ids(client.get(QUEUE))) == 25  # a full page
    assert many == few


def _tab_counts(response) -> dict[str, int]:
    return {state: int(n) for state, n in re.findall(r'data-state="(\w+)">[^<]*<span class="n[^"]*">(\d+)</span>',
                                                      response.content.decode())}


@pytest.mark.parametrize("params", [
    {"account": "wx-main"},
    {"outcome": "ignored"},
    {"account": "wx-main", "outcome": "error"},
    {"date_from": 0},  # days ago
    {"date_to": 1},
    {"account": "bank-broken", "state": "handled"},
])
def test_with_filters_each_tab_counts_what_clicking_it_lists(client, ops, callbacks, params):
    # "Handled 1" above a list the filters emptied read as one gone missing: a tab's number is the list it opens,
    # the other filters as they are. The panels above stay the whole queue's open ones.
    from channels.services.callback_handling import callback_record_mark_handled

    callback_record_mark_handled(record_ids=[callbacks["old"].pk], actor=ops, note="looked: a test notice")
    today = timezone.localdate()
    params = {k: (today - dt.timedelta(days=v)).isoformat() if k.startswith("date_") else v
              for k, v in params.items()}
    client.force_login(ops)

    response = client.get(QUEUE, params)

    tabs = _tab_counts(response)
    assert list(tabs) == ["open", "settled", "handled", "all"]
    assert tabs == {state: len(_ids(client.get(QUEUE, {**params, "state": state}))) for state in tabs}
    assert response.context["counts"]["all"] == 3  # unbuildable, failing, ignored: whatever the filters


def test_the_home_tile_count_is_the_queue_it_would_link_to(client, ops, callbacks):
    # channels.unprocessed.open_count, for the operations home page: the open ones, older days' included (one left
    # open since yesterday is still to look at), not those a retry applied.
    from channels import unprocessed

    client.force_login(ops)
    listed = _ids(client.get(QUEUE, {"state": "open"}))

    assert unprocessed.open_count() == len(listed) == 4
    assert callbacks["retried"].pk not in listed and callbacks["old"].pk in listed


def test_operations_home_shows_the_open_callbacks_not_processed_and_links_to_them(client, ops, callbacks):
    from channels import unprocessed

    client.force_login(ops)
    home = client.get("/staff/").content.decode()

    assert "Callbacks not processed, open" in home
    assert f'href="{unprocessed.queue_url(state="open")}"' in home
