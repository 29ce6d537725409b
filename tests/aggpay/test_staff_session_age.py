"""Staff sessions end after AGGPAY_SESSION_IDLE_SECONDS without a request (renewed by each request) and, however
busy, AGGPAY_SESSION_MAX_AGE_SECONDS after their sign-in (aggpay/settings.py, aggpay/staff/session_age.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import override_settings
from django.utils import timezone

from aggpay.staff.session_age import SIGNED_IN_AT
from tests.conftest import STAFF_PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, staff_member):
    staff_member("support_agent", username="sam")
    assert client.post("/staff/login/", {"username": "sam", "password": STAFF_PASSWORD}).status_code == 302
    return client


def session_row(client) -> Session:
    return Session.objects.get(session_key=client.session.session_key)


def test_the_default_idle_limit_is_fifteen_minutes_and_the_absolute_one_twelve_hours():
    assert settings.SESSION_COOKIE_AGE == 15 * 60
    assert settings.AGGPAY_SESSION_MAX_AGE_SECONDS == 12 * 3600


def test_a_staff_session_expires_after_the_idle_period_not_two_weeks(signed_in):
    assert signed_in.get("/staff/support/").status_code == 200

    expires_in = session_row(signed_in).expire_date - timezone.now()

    assert timedelta(minutes=14) < expires_in <= timedelta(minutes=15)


def test_each_request_renews_the_idle_period(signed_in):
    row = session_row(signed_in)
    Session.objects.filter(pk=row.pk).update(expire_date=timezone.now() + timedelta(minutes=1))  # 14 quiet minutes

    assert signed_in.get("/staff/support/").status_code == 200

    assert session_row(signed_in).expire_date - timezone.now() > timedelta(minutes=14)


def test_an_idle_session_past_its_expiry_is_sent_to_sign_in(signed_in):
    Session.objects.filter(pk=session_row(signed_in).pk).update(expire_date=timezone.now() - timedelta(seconds=1))

    response = signed_in.get("/staff/support/")

    assert response.status_code == 302 and response["Location"].startswith("/staff/login/")


def _signed_in_ago(client, seconds: int) -> None:
    session = client.session
    session[SIGNED_IN_AT] -= seconds
    session.save()


@override_settings(AGGPAY_SESSION_MAX_AGE_SECONDS=3600)
def test_a_busy_session_ends_at_its_absolute_age(signed_in):
    _signed_in_ago(signed_in, 3500)
    assert signed_in.get("/staff/support/").status_code == 200

    _signed_in_ago(signed_in, 200)  # 3700 s after sign-in, active all along
    response = signed_in.get("/staff/support/")

    assert response.status_code == 302 and response["Location"].startswith("/staff/login/")
    assert signed_in.get("/staff/support/").status_code == 302  # the session is gone, not just this page


def test_the_admin_pages_end_with_the_session_too(client, staff_member):
    client.force_login(staff_member("admin"))
    assert client.get("/admin/").status_code == 200
    _signed_in_ago(client, settings.AGGPAY_SESSION_MAX_AGE_SECONDS + 1)

    assert client.get("/admin/").status_code == 302


def test_a_session_without_a_sign_in_time_is_ended(signed_in):
    session = signed_in.session
    del session[SIGNED_IN_AT]  # made before the absolute age was checked
    session.save()

    assert signed_in.get("/staff/support/").status_code == 302
