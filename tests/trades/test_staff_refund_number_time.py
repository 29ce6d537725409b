"""A refund support makes is numbered ``staff-<local time>-<random>``: the merchant reads that number beside its own
refunds, in its own (aggpay's, Asia/Shanghai) time — a UTC stamp read 8 hours early (a security trial's
``staff-20261128004344-…`` for a refund made at 08:43)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import time_machine

from trades.services.staff import staff_out_refund_no


def test_a_staff_refund_number_carries_the_local_time():
    at = dt.datetime(2026, 11, 28, 8, 43, 44, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
    with time_machine.travel(at, tick=False):
        number = staff_out_refund_no()
    assert number.startswith("staff-20261128084344-"), number
