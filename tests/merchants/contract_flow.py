"""Helpers of the contract lifecycle tests that talk to the simulators: the account's real adapter watched as an
application leaves for the channel, to stage a race through the real call order, and a contract's past moved back.
"""

from __future__ import annotations

import datetime as dt
import threading

from django.db.models import F

from channels.models import ChannelAccount
from merchants.models import Contract, ContractEvent


class WatchedChannel:
    """The account's real adapter, every verb passed through. ``onboarding_submit`` counts the applications that
    left (``submissions``), keeps the latest one (``application``) and runs the test's hooks: ``meanwhile()`` when
    the first one leaves, before the request reaches the channel; ``answered(answer)`` once the channel has stored
    each one, before its answer reaches us. ``onboarding_query`` notes what it was asked by (``queries``: the
    application id and business code of each question). Deliveries in several threads count once each."""

    def __init__(self, *, meanwhile=None, answered=None):
        self.adapter, self.meanwhile, self.answered, self.submissions = None, meanwhile, answered, 0
        self.application, self.queries = None, []
        self._counting = threading.Lock()

    def __getattr__(self, name):
        return getattr(self.adapter, name)

    def onboarding_submit(self, *, application):
        with self._counting:
            self.submissions += 1
            first = self.submissions == 1
        self.application = application
        if self.meanwhile is not None and first:
            self.meanwhile()
        answer = self.adapter.onboarding_submit(application=application)
        if self.answered is not None:
            self.answered(answer)
        return answer

    def onboarding_query(self, *, application_id, business_code=""):
        self.queries.append((application_id, business_code))
        return self.adapter.onboarding_query(application_id=application_id, business_code=business_code)


def watch_the_channel(monkeypatch, *, meanwhile=None, answered=None) -> WatchedChannel:
    """From now on every channel account's adapter is its real one, watched (``WatchedChannel``)."""
    real = ChannelAccount.adapter
    channel = WatchedChannel(meanwhile=meanwhile, answered=answered)

    def adapter(account):
        channel.adapter = real(account)
        return channel

    monkeypatch.setattr(ChannelAccount, "adapter", adapter)
    return channel


def everything_so_far_happened(contract, *, minutes_ago: int) -> None:
    """Move the contract's past (its events, its next poll time) ``minutes_ago`` earlier."""
    earlier = dt.timedelta(minutes=minutes_ago)
    ContractEvent.objects.filter(contract=contract).update(created_at=F("created_at") - earlier)
    Contract.objects.filter(pk=contract.pk).update(next_poll_at=F("next_poll_at") - earlier)
