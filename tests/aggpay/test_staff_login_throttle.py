"""Password guessing on the sign-in pages is slowed (aggpay/staff/login_throttle.py): failures are counted per user
name and per client address in the project cache, a name or address that reaches its limit is refused for a while
with one message that does not say whether the name exists, each lock is audited without the typed name or the
full address, and /admin/login/ shares the counters with /staff/login/."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.test import override_settings

from aggpay.models import AuditLog
from aggpay.staff.login_throttle import cache_keys
from tests.conftest import STAFF_PASSWORD

pytestmark = pytest.mark.django_db

# Documentation addresses (RFC 5737): nothing else in the suite signs in from them.
HOME, ELSEWHERE = "203.0.113.7", "198.51.100.9"
LOCKED = "Too many failed sign-in attempts"
LIMITS = override_settings(AGGPAY_LOGIN_MAX_FAILURES_PER_USERNAME=3, AGGPAY_LOGIN_MAX_FAILURES_PER_ADDRESS=100,
                           AGGPAY_LOGIN_FAILURE_WINDOW_SECONDS=60, AGGPAY_LOGIN_LOCKOUT_SECONDS=60)


@pytest.fixture(autouse=True)
def forget_counters():
    """The counters live in the shared cache for minutes: removed after each test, so the next (or a rerun of the
    suite) starts clean."""
    yield
    names = ["sam", "nobody-here", "zoe", "guess-1", "guess-2", "guess-3"]
    scopes = [("username", name) for name in names] + [("address", address) for address in (HOME, ELSEWHERE)]
    cache.delete_many([key for scope in scopes for key in cache_keys(*scope)])


def sign_in(client, username, password, *, address=HOME, path="/staff/login/"):
    return client.post(path, {"username": username, "password": password, "next": "/staff/"}, REMOTE_ADDR=address)


def fail(client, username, times, **kwargs):
    for _ in range(times):
        response = sign_in(client, username, "wrong password", **kwargs)
        assert response.status_code == 200 and LOCKED not in response.content.decode()


@LIMITS
def test_a_user_name_that_reaches_its_limit_is_refused_even_with_the_right_password(client, staff_member):
    staff_member("support_agent", username="sam")
    fail(client, "sam", 3)

    response = sign_in(client, "sam", STAFF_PASSWORD)

    assert response.status_code == 200
    assert "Too many failed sign-in attempts. Wait 1 minute and try again." in response.content.decode()
    assert client.get("/staff/").status_code == 302  # not signed in


@LIMITS
def test_a_lock_says_the_same_whether_the_name_exists_or_not(client, staff_member):
    staff_member("support_agent", username="sam")
    fail(client, "sam", 3)
    fail(client, "nobody-here", 3, address=ELSEWHERE)

    known = sign_in(client, "sam", "wrong password")
    unknown = sign_in(client, "nobody-here", "wrong password", address=ELSEWHERE)

    assert LOCKED in known.content.decode()
    assert known.context["form"].errors == unknown.context["form"].errors


@LIMITS
def test_the_lock_is_per_user_name(client, staff_member):
    staff_member("support_agent", username="sam")
    staff_member("finance", username="zoe")
    fail(client, "sam", 3)

    assert LOCKED in sign_in(client, "SAM ", STAFF_PASSWORD, address=ELSEWHERE).content.decode()  # from anywhere
    assert sign_in(client, "zoe", STAFF_PASSWORD).status_code == 302  # the same address, another name


@override_settings(AGGPAY_LOGIN_MAX_FAILURES_PER_USERNAME=100, AGGPAY_LOGIN_MAX_FAILURES_PER_ADDRESS=3,
                   AGGPAY_LOGIN_LOCKOUT_SECONDS=60)
def test_the_lock_is_per_client_address_whatever_names_it_tries(client, staff_member):
    staff_member("support_agent", username="sam")
    for name in ("guess-1", "guess-2", "guess-3"):
        fail(client, name, 1)

    assert LOCKED in sign_in(client, "sam", STAFF_PASSWORD).content.decode()
    assert sign_in(client, "sam", STAFF_PASSWORD, address=ELSEWHERE).status_code == 302


@override_settings(AGGPAY_LOGIN_MAX_FAILURES_PER_USERNAME=2, AGGPAY_LOGIN_LOCKOUT_SECONDS=1)
def test_the_lock_ends_after_the_lockout(client, staff_member):
    staff_member("support_agent", username="sam")
    fail(client, "sam", 2)
    assert LOCKED in sign_in(client, "sam", STAFF_PASSWORD).content.decode()

    time.sleep(1.5)

    assert sign_in(client, "sam", STAFF_PASSWORD).status_code == 302


@LIMITS
def test_a_successful_sign_in_clears_the_names_failures(client, staff_member):
    staff_member("support_agent", username="sam")
    fail(client, "sam", 2)
    assert sign_in(client, "sam", STAFF_PASSWORD).status_code == 302
    client.post("/staff/logout/")

    fail(client, "sam", 2)  # two more: four in the window, but only two since the success

    assert sign_in(client, "sam", STAFF_PASSWORD).status_code == 302


@LIMITS
def test_a_sign_in_without_a_password_does_not_clear_the_names_failures(client, staff_member):
    staff_member("support_agent", username="sam")
    fail(client, "sam", 2)
    assert sign_in(client, "sam", "").status_code == 200  # "This field is required", no password checked

    fail(client, "sam", 1)

    assert LOCKED in sign_in(client, "sam", STAFF_PASSWORD).content.decode()


@LIMITS
def test_the_admin_login_counts_and_refuses_with_the_staff_login(client, staff_member):
    staff_member("admin", username="sam")
    fail(client, "sam", 2, path="/admin/login/")
    fail(client, "sam", 1)

    admin = sign_in(client, "sam", STAFF_PASSWORD, path="/admin/login/")
    staff = sign_in(client, "sam", STAFF_PASSWORD)

    assert admin.status_code == 200 and LOCKED in admin.content.decode()
    assert staff.status_code == 200 and LOCKED in staff.content.decode()
    assert client.get("/admin/").status_code == 302


@LIMITS
def test_each_lock_writes_one_audit_row_without_the_typed_name_or_the_full_address(client, staff_member):
    staff_member("support_agent", username="sam")
    fail(client, "sam", 3)
    sign_in(client, "sam", "wrong password")  # refused while locked: no second row

    rows = AuditLog.objects.filter(action="aggpay.staff.login_locked")
    assert rows.count() == 1
    row = rows.get()
    assert row.data["scope"] == "username" and row.data["failures"] == 3
    assert row.data["username"] == "s**" and row.data["address"] == "203.0.113.*"
    assert "sam" not in str(row.data) + row.reason and HOME not in str(row.data) + row.reason


@override_settings(AGGPAY_LOGIN_MAX_FAILURES_PER_USERNAME=100, AGGPAY_LOGIN_MAX_FAILURES_PER_ADDRESS=2,
                   AGGPAY_LOGIN_LOCKOUT_SECONDS=60, AGGPAY_CLIENT_ADDRESS_HEADER="X-Forwarded-For")
def test_behind_a_proxy_the_address_is_the_last_one_the_proxy_appended(client, staff_member):
    staff_member("support_agent", username="sam")
    for forged in ("10.0.0.1", "10.0.0.2"):  # a client choosing the first entries does not escape its count
        client.post("/staff/login/", {"username": "guess-1", "password": "x"}, REMOTE_ADDR="10.9.9.9",
                    headers={"X-Forwarded-For": f"{forged}, {HOME}"})

    through_proxy = client.post("/staff/login/", {"username": "sam", "password": STAFF_PASSWORD},
                                REMOTE_ADDR="10.9.9.9", headers={"X-Forwarded-For": HOME})
    other_client = client.post("/staff/login/", {"username": "sam", "password": STAFF_PASSWORD},
                               REMOTE_ADDR="10.9.9.9", headers={"X-Forwarded-For": ELSEWHERE})

    assert LOCKED in through_proxy.content.decode()
    assert other_client.status_code == 302
