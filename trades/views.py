"""The support/ops trade workbench (issue 5 "Staff pages"), mounted at /staff/trades/: search by any number, the
trade page with its single timeline, staff actions, and the queues.

Every page needs ``trades.view_order`` (design §5 rule 11); each POST also needs its action's permission and goes
through a service (trades.services.staff, trades.services.events), which checks the permission again and audits.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from aggpay.errors import ApplicationError, ChannelRefused
from aggpay.money import MoneyError, format_yuan, plain_yuan_to_fen
from aggpay.querystring import query_without
from aggpay.roles import permission_required_403
from channels.forms import account_filter_choices
from merchants.models import Merchant
from trades import workbench
from trades.models import Delivery, DeliveryState, LatePayment, Order, OrderState, SyncState
from trades.products import API_PRODUCTS
from trades.services import staff as staff_services
from trades.services.events import deliveries_resend
from trades.services.late import (
    BY_HAND_OUTCOMES,
    late_payment_can_refund_again,
    late_payment_can_settle_by_hand,
)

# The choices the forms offer (value, label), in the services' own words.
LATE_OUTCOMES = list(BY_HAND_OUTCOMES.items())
ABNORMAL_OUTCOMES = list(staff_services.ABNORMAL_OUTCOMES.items())
CHANNEL_SAID = list(staff_services.CHANNEL_SAID.items())

PAGE_SIZE = 25
VIEW = "trades.view_order"
REFUND = "trades.refund_order"
RESEND = "trades.resend_delivery"


# --- forms ----------------------------------------------------------------------------------------------------
def day_start_after(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min)


# What a person may type around an amount in yuan: a currency sign or word, thousands separators, spaces.
AMOUNT_DECORATIONS = re.compile(r"(?i)^(?:¥|rmb|cny)|(?:元|yuan|rmb|cny)$|[,\s]")


class TradeSearchForm(forms.Form):
    q = forms.CharField(required=False, label="Number, merchant or store", max_length=64,
                        widget=forms.TextInput(attrs={"type": "search", "autofocus": True,
                                                      "placeholder": "ord_…, ref_…, out_trade_no, channel, wallet or "
                                                                     "refund no, store code, merchant or store"}))
    # A caller says "I paid 23.50": the amount as they say it, exact (the order's amount, not a refund's).
    amount = forms.CharField(required=False, label="Amount (yuan)", max_length=24,
                             widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "23.50"}))
    store = forms.CharField(required=False, label="Store", max_length=64,
                            widget=forms.TextInput(attrs={"placeholder": "store code, number or name"}))
    state = forms.ChoiceField(required=False, choices=[("", "any state"), *OrderState.choices])
    # A list, not free text: a product typed in another case, or a part of one, found nothing and said nothing.
    product = forms.ChoiceField(required=False, choices=[("", "any product"), *((p, p) for p in API_PRODUCTS)])
    channel_account = forms.ChoiceField(required=False, label="Channel account")
    sync_state = forms.ChoiceField(required=False, label="Sync", choices=[("", "any"), *SyncState.choices])
    # Created from … to, local time (TIME_ZONE): a day, or a time of it ("about 9:10": 09:00 to 09:20). A time
    # without a date is on the other end's date, else today.
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(
        attrs={"type": "date", "aria-label": "created from (date)"}))
    time_from = forms.TimeField(required=False, label="From time", widget=forms.TimeInput(
        attrs={"type": "time", "aria-label": "created from (time of day)"}, format="%H:%M"))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(
        attrs={"type": "date", "aria-label": "created to (date)"}))
    time_to = forms.TimeField(required=False, label="To time", widget=forms.TimeInput(
        attrs={"type": "time", "aria-label": "created to (time of day), inclusive"}, format="%H:%M"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channel_account"].choices = account_filter_choices()

    def clean_amount(self) -> int | None:
        typed = self.cleaned_data.get("amount") or ""
        if not typed.strip():
            return None
        try:
            # Full-width digits and point (an IME's "２３．５０") read as the ASCII ones; then plain digits only, as
            # for a refund (Decimal would read "1e1" as 10).
            fen = plain_yuan_to_fen(AMOUNT_DECORATIONS.sub("", unicodedata.normalize("NFKC", typed.strip())))
        except MoneyError:
            raise forms.ValidationError("Enter the amount in yuan as the payer says it, e.g. 23.50.") from None
        if fen < 1:
            raise forms.ValidationError("The amount must be at least 0.01 yuan.")
        return fen

    def clean(self):
        cleaned = super().clean()
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        time_from, time_to = cleaned.get("time_from"), cleaned.get("time_to")
        cleaned["created_from"] = cleaned["created_before"] = None
        if time_from is None and time_to is None:
            if date_from and date_to and date_from > date_to:
                self.add_error("date_to", f"To ({date_to:%Y-%m-%d}) is before From ({date_from:%Y-%m-%d}): swap "
                                          f"them.")
            return cleaned
        today = timezone.localdate()
        start_day, end_day = date_from or date_to or today, date_to or date_from or today
        start = dt.datetime.combine(start_day, time_from or dt.time.min)
        last = dt.datetime.combine(end_day, time_to or dt.time.max)  # the last moment asked for, as said
        if start > last:
            self.add_error("time_to" if time_to is not None else "date_to",
                           f"To ({last:%Y-%m-%d %H:%M}) is before From ({start:%Y-%m-%d %H:%M}): swap them.")
            return cleaned
        # The first and last days there are set no bound (aggpay.days.on_days: a bound there overflows).
        if (date_from or time_from is not None) and start_day > dt.date.min:
            cleaned["created_from"] = timezone.make_aware(start)
        if (date_to or time_to is not None) and end_day < dt.date.max:
            # "To 09:20" takes in the whole of that minute (or of that second, when one is given).
            step = (dt.timedelta(seconds=1) if time_to.second else dt.timedelta(minutes=1)) if time_to else None
            cleaned["created_before"] = timezone.make_aware(
                dt.datetime.combine(end_day, time_to) + step if time_to else day_start_after(end_day))
        return cleaned

    def filters(self) -> dict:
        if not self.is_bound or not self.is_valid():
            return {}
        data = dict(self.cleaned_data)
        if data["created_from"] is not None or data["created_before"] is not None:
            data.pop("date_from"), data.pop("date_to")  # the window says it to the minute
        data.pop("time_from"), data.pop("time_to")
        return {k: v for k, v in data.items() if v not in ("", None)}


class StaffRefundForm(forms.Form):
    amount = forms.CharField(label="Amount (yuan)", max_length=16,
                             widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "12.30"}))
    reason = forms.CharField(label="Reason", max_length=256, widget=forms.TextInput(
        attrs={"placeholder": "why (the merchant sees it)"}))
    # The number of the one refund this form may make, minted when it is rendered (staff_refund_form_no): submitted
    # twice, it replays that refund instead of making a second.
    form_no = forms.CharField(widget=forms.HiddenInput, max_length=512)

    def __init__(self, *args, order: Order, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = order
        if not self.is_bound:
            self.initial["form_no"] = staff_services.staff_refund_form_no(order_id=order.pk)

    def renew(self) -> None:
        """Carry a new number when shown again: this one is spent (its refund was made) or was not valid."""
        self.data = self.data.copy()
        self.data["form_no"] = staff_services.staff_refund_form_no(order_id=self.order.pk)

    def clean_amount(self) -> int:
        try:
            # Plain digits only: Decimal would read "1e1" as 10 yuan (and "Infinity", full-width "１０").
            fen = plain_yuan_to_fen(self.cleaned_data["amount"])
        except MoneyError:
            raise forms.ValidationError("Enter an amount in yuan as plain digits with at most two decimals, e.g. "
                                        "12.30.") from None
        if fen < 1:
            raise forms.ValidationError("The amount must be at least 0.01 yuan.")
        if fen > self.order.refundable_amount:
            raise forms.ValidationError(f"At most {format_yuan(self.order.refundable_amount)} yuan can still be "
                                        f"refunded.")
        return fen


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=256)


# --- helpers --------------------------------------------------------------------------------------------------
def _page(request, queryset):
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


def _order(order_id: str) -> Order:
    return get_object_or_404(Order.objects.select_related("merchant", "app", "channel_account", "contract"),
                             pk=order_id)


def _error(request, exc: ApplicationError) -> None:
    messages.error(request, exc.message)


def _back_order(request) -> str | None:
    """The trade page a form was on (its hidden ``order``), if that order exists."""
    back = request.POST.get("order", "")
    if back and Order.objects.filter(pk=back).exists():
        return back
    return None


# --- search ---------------------------------------------------------------------------------------------------
@require_safe
@permission_required_403(VIEW)
def search(request):
    form = TradeSearchForm(request.GET or None)
    filters = form.filters()
    page = _page(request, workbench.search_orders(**filters)) if filters else None
    if page is not None:
        workbench.with_yuan(page.object_list, "amount")
        workbench.with_stores(page.object_list)
    if page is not None and page.paginator.count == 1 and len(filters) == 1 and filters.get("q"):
        hit = page.object_list[0]
        # One trade's own number: open it. A merchant, a store code or a store names many trades: list even one.
        if not workbench.names_several_trades(filters["q"], hit):
            return redirect("trades:detail", hit.pk)
    return render(request, "trades/search.html", {
        "form": form, "page": page, "query": query_without(request, "page"), "counts": workbench.queue_counts(),
        "labels": workbench.QUEUE_LABELS,
    })


# --- the trade page -------------------------------------------------------------------------------------------
def _detail_context(request, order: Order, *, refund_form=None) -> dict:
    timeline = workbench.order_timeline(order)
    workbench.with_close_asked(order, timeline["audit"])
    user = request.user
    late = LatePayment.objects.filter(order=order).first()
    if late is not None:
        workbench.with_yuan([late], "amount")
    for entry in timeline["entries"]:
        workbench.with_attempt_rounds(entry.deliveries)
    return {
        "order": order, "payer": workbench.payer_masked(order), "store": workbench.with_stores([order])[0].store_place,
        "timeline": timeline["entries"],
        "refunds": workbench.with_refund_actions(workbench.with_yuan(timeline["refunds"], "amount"),
                                                 audit=timeline["audit"]),
        "deliveries": timeline["deliveries"],
        "late_payment": late, "late_money": workbench.late_money(late) if late is not None else None,
        "routing": order.routing or {}, "routing_layer": workbench.routing_layer(order.routing),
        "fees": workbench.fee_rows(order),
        "money": {"amount": format_yuan(order.amount), "refunded": format_yuan(order.refunded_amount),
                  "reserved": format_yuan(order.refund_reserved), "refundable": format_yuan(order.refundable_amount)},
        "refund_form": refund_form or StaffRefundForm(order=order),
        "can_refund": user.has_perm(REFUND) and order.state == OrderState.SUCCEEDED and order.refundable_amount > 0,
        "can_close": user.has_perm(staff_services.CLOSE_PERM) and order.state == OrderState.PENDING,
        "can_sync": user.has_perm(staff_services.SYNC_PERM) and order.state == OrderState.PENDING,
        "can_resend": user.has_perm(RESEND),
        "can_handle_abnormal": user.has_perm(REFUND),
        "can_retry_reverse": user.has_perm(REFUND) and workbench.can_retry_reverse(order),
        "can_mark_handled": user.has_perm(REFUND) and workbench.can_mark_handled(order),
        "can_requery": user.has_perm(REFUND) and workbench.can_requery(order),
        "can_settle_late": user.has_perm(REFUND) and late is not None and late_payment_can_settle_by_hand(late),
        # "Refund to payer" as on the late-payment queue (the same service and permission): a new attempt of an open
        # one, or the channel asked again about one being refunded.
        "can_refund_late": user.has_perm(REFUND) and late is not None and (
            late_payment_can_refund_again(late) or late.state == "refunding"),
        "late_outcomes": LATE_OUTCOMES, "channel_said": CHANNEL_SAID, "abnormal_outcomes": ABNORMAL_OUTCOMES,
        "queue_reason": (workbench.queue_reason(order)
                         if order.sync_state == SyncState.MANUAL or order.reverse_requested_at is not None
                         or (order.state == OrderState.PENDING and order.close_asked_at is not None) else ""),
        "close_asker": workbench.close_asker(order.close_asked_by) if order.close_asked_at is not None else "",
    }


@require_safe
@permission_required_403(VIEW)
def detail(request, order_id: str):
    return render(request, "trades/detail.html", _detail_context(request, _order(order_id)))


def _refund_replayed(request, order: Order, refund) -> object:
    messages.warning(request, f"This refund form was already submitted: refund {refund.pk} of "
                              f"{format_yuan(refund.amount)} yuan {staff_services.state_words(refund.state)}. "
                              f"Nothing more was refunded; "
                              f"use the form on this page for another refund.")
    return redirect(reverse("trades:detail", args=[order.pk]) + f"#refund-{refund.pk}")


@require_POST
@permission_required_403(VIEW, REFUND)
def refund(request, order_id: str):
    order = _order(order_id)
    form = StaffRefundForm(request.POST, order=order)
    try:
        # Before the fields are checked against the order as it is now: a resubmit after the first refund took
        # all that was left shows that refund, not "nothing left to refund".
        made = staff_services.staff_refund_of_form(order_id=order.pk, form_no=request.POST.get("form_no", ""))
    except ApplicationError as exc:
        form.is_valid()
        form.add_error(None, exc.message)
        form.renew()
        made = None
    if made is not None:
        return _refund_replayed(request, order, made)
    if order.state != OrderState.SUCCEEDED:
        # Said first and alone: the form's number and amount were checked against an order that cannot be refunded
        # at all, which read "this refund form was not issued… At most 0.00 yuan can still be refunded".
        messages.error(request, f"No refund was made: the order {staff_services.state_words(order.state)}; only "
                                f"paid orders can be refunded.")
        return render(request, "trades/detail.html", _detail_context(request, order), status=400)
    if form.is_valid():
        try:
            created, replayed = staff_services.order_refund_by_staff_form(
                order_id=order.pk, actor=request.user, amount=form.cleaned_data["amount"],
                reason=form.cleaned_data["reason"], form_no=form.cleaned_data["form_no"])
        except ApplicationError as exc:
            if exc.param in ("amount", "reason"):
                form.add_error(exc.param, exc.message)
            else:
                form.add_error(None, exc.message)
            if isinstance(exc, ChannelRefused) or exc.param == "form_no":
                form.renew()  # the refund was made and refused: trying again is a new refund, from a new number
        else:
            if replayed:
                return _refund_replayed(request, order, created)
            messages.success(request, f"Refund {created.pk} of {format_yuan(created.amount)} yuan "
                                      f"{staff_services.state_words(created.state)}.")
            return redirect(reverse("trades:detail", args=[order.pk]) + f"#refund-{created.pk}")
    messages.error(request, "The refund was not made: correct the marked fields.")
    order.refresh_from_db()
    return render(request, "trades/detail.html", _detail_context(request, order, refund_form=form), status=400)


@require_POST
@permission_required_403(VIEW, staff_services.SYNC_PERM)
def sync(request, order_id: str):
    order = _order(order_id)
    try:
        synced = staff_services.order_sync_by_staff(order_id=order.pk, actor=request.user)
    except ApplicationError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"Asked the channel: the order {staff_services.state_words(synced.state)} "
                                  f"({synced.get_sync_state_display().lower()}).")
    return redirect("trades:detail", order.pk)


@require_POST
@permission_required_403(VIEW, staff_services.CLOSE_PERM)
def close(request, order_id: str):
    order = _order(order_id)
    form = ReasonForm(request.POST)
    try:
        closed = staff_services.order_close_by_staff(order_id=order.pk, actor=request.user,
                                                     reason=form.data.get("reason", ""))
    except ApplicationError as exc:
        _error(request, exc)
    else:
        if closed.state == OrderState.PENDING:  # the channel did not answer: handed to the expiry sweeper
            messages.warning(request, staff_services.CLOSE_LEFT_TO_SWEEPER)
        else:
            messages.success(request, f"The order {staff_services.state_words(closed.state)}.")
    return redirect("trades:detail", order.pk)


def _latest_attempts(deliveries) -> dict[int, int | None]:
    """Each delivery's latest attempt id now (before a resend), to tell the attempt the resend makes."""
    return {d.pk: d.last_attempt_id for d in workbench.with_last_attempt(deliveries.order_by())}


def _resend_said(request, outcomes: list[workbench.ResendOutcome], *, what: str) -> None:
    """Say what the resend did, as far as it is known when the page comes back: sent and acknowledged, sent and
    refused again (retried on the ladder), or queued for a worker — not "will be sent again" for an attempt that had
    already been refused (the demo sends at once)."""
    acknowledged = [o for o in outcomes if o.acknowledged]
    refused = [o for o in outcomes if o.sent and not o.acknowledged]
    queued = [o for o in outcomes if not o.sent]
    if len(outcomes) == 1:
        one = outcomes[0]
        if one.acknowledged:
            messages.success(request, f"{what} was sent again and the merchant's server acknowledged it "
                                      f"({one.outcome}).")
        elif one.sent:
            later = one.delivery.next_attempt_at
            failed = ("the merchant's server refused it again" if one.outcome.startswith("HTTP")
                      else "the merchant's server could not be reached again")
            messages.warning(request, f"{what} was sent again, but {failed} ({one.outcome}): it is retried on the "
                                      f"ladder{f', next at {timezone.localtime(later):%Y-%m-%d %H:%M}' if later else ''}.")
        else:
            messages.success(request, f"{what} is queued to be sent again now; its attempts show on the trade page.")
        return
    parts = []
    if acknowledged:
        parts.append(f"{len(acknowledged)} acknowledged by the merchant's server")
    if refused:
        said = ", ".join(sorted({o.outcome for o in refused}))
        parts.append(f"{len(refused)} failed again ({said}) and retried on the ladder")
    if queued:
        parts.append(f"{len(queued)} queued to be sent now")
    text = f"{what}: {'; '.join(parts)}." if parts else f"{what}: nothing to send."
    (messages.warning if refused else messages.success)(request, text)


def _deliveries_back(request):
    """Back to the deliveries list the form was on: the exhausted ones, or the failing ones still being retried."""
    show = "?show=failing" if request.POST.get("show") == "failing" else ""
    return redirect(reverse("trades:queue", args=["exhausted"]) + show)


@require_POST
@permission_required_403(VIEW, RESEND)
def delivery_resend(request, delivery_id: int):
    before = _latest_attempts(Delivery.objects.filter(pk=delivery_id))
    try:
        resent = deliveries_resend(delivery_id=delivery_id, actor=request.user, reason=request.POST.get("reason", ""))
    except ApplicationError as exc:
        _error(request, exc)
        resent = []
    else:
        _resend_said(request, workbench.resend_outcomes(before), what=f"Notification #{delivery_id}")
    back = _back_order(request)
    if back:
        return redirect(reverse("trades:detail", args=[back]) + (f"#delivery-{resent[0].pk}" if resent else ""))
    return _deliveries_back(request)


@require_POST
@permission_required_403(VIEW, RESEND)
def resend_exhausted(request, merchant_no: str):
    merchant = get_object_or_404(Merchant, merchant_no=merchant_no)
    before = _latest_attempts(Delivery.objects.filter(event__merchant=merchant, state=DeliveryState.EXHAUSTED))
    try:
        resent = deliveries_resend(merchant=merchant, actor=request.user, reason=request.POST.get("reason", ""))
    except ApplicationError as exc:
        _error(request, exc)
    else:
        outcomes = workbench.resend_outcomes({d.pk: before.get(d.pk) for d in resent})
        _resend_said(request, outcomes, what=f"{len(resent)} exhausted notification(s) of {merchant_no} sent again")
    return redirect("trades:queue", "exhausted")


@require_POST
@permission_required_403(VIEW, REFUND)
def late_refund(request, late_payment_id: int):
    try:
        late = staff_services.late_payment_refund_by_staff(late_payment_id=late_payment_id, actor=request.user,
                                                           reason=request.POST.get("reason", ""))
    except ApplicationError as exc:
        _error(request, exc)
    else:
        _late_refund_said(request, late)
    return _back(request, "late")


def _late_refund_said(request, late: LatePayment) -> None:
    """What became of "Refund to payer", in a sentence with the channel's latest word — not the late payment's whole
    history pasted into one line."""
    amount, said = format_yuan(late.amount), workbench.late_last_note(late)
    words = f" (the channel's latest word: {said})" if said else ""
    if late.state == "resolved":
        messages.success(request, f"The late payment's ¥{amount} on {late.order_id} went back to the payer{words}.")
    elif late.state == "refunding":
        messages.success(request, f"The late payment's ¥{amount} on {late.order_id} is being refunded: the channel "
                                  f"has not said yet how it ended and is asked again every minute{words}.")
    else:
        messages.warning(request, f"The late payment's ¥{amount} on {late.order_id} was not refunded{words}: it is "
                                  f"back in the late-payment queue.")


def _back(request, default_queue: str):
    """Back to the trade page the form was on (``order``), else to the queue."""
    back = _back_order(request)
    if back:
        return redirect("trades:detail", back)
    return redirect("trades:queue", default_queue)


@require_POST
@permission_required_403(VIEW, REFUND)
def refund_abnormal_handled(request, refund_id: str):
    try:
        refund = staff_services.refund_abnormal_resolve(refund_id=refund_id, actor=request.user,
                                                        note=request.POST.get("note", ""),
                                                        outcome=request.POST.get("outcome", ""))
    except ApplicationError as exc:
        _error(request, exc)
    else:
        if refund.state == "closed" and request.POST.get("outcome") == "close":
            order = Order.objects.get(pk=refund.order_id)  # released after the refund was read with its order
            messages.success(request, f"Refund {refund.pk} is closed: its ¥{format_yuan(refund.amount)} did not go "
                                      f"back through the channel and is released — the order can be refunded again "
                                      f"(¥{format_yuan(order.refundable_amount)} refundable). The merchant is told "
                                      f"refund.closed.")
        elif refund.state == "pending":
            messages.success(request, f"Refund {refund.pk} is marked handled and back on the query ladder: the "
                                      f"channel is asked at the next sweep. Its ¥{format_yuan(refund.amount)} stays "
                                      f"held until the channel settles it; should it still say it cannot return the "
                                      f"money, the refund comes back to the abnormal refunds when the ladder runs "
                                      f"out.")
        else:
            messages.success(request, f"Refund {refund.pk} is marked handled "
                                      f"({staff_services.state_words(refund.state)}; nothing about its money "
                                      f"changed).")
    return _back(request, "abnormal")


@require_POST
@permission_required_403(VIEW, REFUND)
def refund_record_refunded(request, refund_id: str):
    """"Ask the channel and record as refunded" on a failed or closed refund flagged because the channel said it went
    back."""
    try:
        refund = staff_services.refund_abnormal_record_refunded(refund_id=refund_id, actor=request.user,
                                                                note=request.POST.get("note", ""))
    except ApplicationError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"The channel confirmed refund {refund.pk}: {format_yuan(refund.amount)} yuan went "
                                  f"back to the payer. It is recorded succeeded on the order, its fee given back, and "
                                  f"the merchant is told (refund.succeeded).")
    return _back(request, "abnormal")


@require_POST
@permission_required_403(VIEW, REFUND)
def reverse_retry(request, order_id: str):
    order = _order(order_id)
    try:
        retried = staff_services.order_reverse_retry(order_id=order.pk, actor=request.user,
                                                     reason=request.POST.get("reason", ""))
    except ApplicationError as exc:
        _error(request, exc)
    else:
        if retried.reverse_requested_at is None:
            messages.success(request, f"The channel answered: the order "
                                      f"{staff_services.state_words(retried.state)}.")
        else:
            messages.warning(request, "The channel did not confirm the reverse; the amount stays held.")
    return _back(request, "unknown")


@require_POST
@permission_required_403(VIEW, REFUND)
def late_settle(request, late_payment_id: int):
    try:
        late = staff_services.late_payment_settle_by_staff(late_payment_id=late_payment_id, actor=request.user,
                                                           outcome=request.POST.get("outcome", ""),
                                                           note=request.POST.get("note", ""))
    except ApplicationError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"The late payment on {late.order_id} is settled by hand "
                                  f"({BY_HAND_OUTCOMES[request.POST['outcome']]}).")
    return _back(request, "late")


@require_POST
@permission_required_403(VIEW, REFUND)
def order_handled(request, order_id: str):
    order = _order(order_id)
    try:
        handled = staff_services.order_manual_resolve(order_id=order.pk, actor=request.user,
                                                      note=request.POST.get("note", ""))
    except ApplicationError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"Order {handled.pk} ({handled.state}) is marked handled and leaves the queue.")
    return _back(request, "unknown")


@require_POST
@permission_required_403(VIEW, REFUND)
def order_requery(request, order_id: str):
    order = _order(order_id)
    try:
        requeried = staff_services.order_manual_requery(order_id=order.pk, actor=request.user,
                                                        note=request.POST.get("note", ""),
                                                        channel_said=request.POST.get("channel_said", ""))
    except ApplicationError as exc:
        _error(request, exc)
    else:
        messages.success(request, f"Order {requeried.pk} is back on the query ladder: the channel is asked at the "
                                  f"next sweep.")
    return _back(request, "unknown")


# --- queues ---------------------------------------------------------------------------------------------------
@require_safe
@permission_required_403(VIEW)
def queue(request, slug: str):
    if slug not in workbench.QUEUE_LABELS:
        raise Http404("no such queue")
    context = {"slug": slug, "label": workbench.QUEUE_LABELS[slug], "counts": workbench.queue_counts(),
               "labels": workbench.QUEUE_LABELS, "query": query_without(request, "page"),
               "can_refund": request.user.has_perm(REFUND), "can_resend": request.user.has_perm(RESEND),
               "late_outcomes": LATE_OUTCOMES, "channel_said": CHANNEL_SAID, "abnormal_outcomes": ABNORMAL_OUTCOMES}
    if slug == "unknown":
        page = _page(request, workbench.unknown_orders())
        workbench.with_yuan(page.object_list, "amount")
        workbench.with_queue_reasons(page.object_list)
        workbench.with_stores(page.object_list)
        context.update(page=page, refunds=workbench.with_yuan(list(workbench.unknown_refunds()[:200]), "amount"))
    elif slug in ("late", "abnormal"):
        page = _page(request, workbench.open_late_payments() if slug == "late" else workbench.abnormal_refunds())
        workbench.with_yuan(page.object_list, "amount")
        context.update(page=page)
        if slug == "abnormal":
            workbench.with_refund_actions(page.object_list)
        if slug == "late":
            for late in page.object_list:
                late.can_refund_again = late_payment_can_refund_again(late)
            context.update(refunding=workbench.with_yuan(list(workbench.refunding_late_payments()[:200]), "amount"))
    else:
        # Two lists: the exhausted deliveries (the ladder ran out: support resends), and the failing ones still
        # being retried on it, which support could see only in the raw admin.
        failing = request.GET.get("show") == "failing"
        listed = workbench.failing_deliveries() if failing else workbench.exhausted_deliveries()
        deliveries = workbench.with_delivery_rows(listed[:500])
        groups: dict = {}
        for delivery in deliveries:
            groups.setdefault(delivery.event.merchant, []).append(delivery)
        context.update(groups=list(groups.items()), show="failing" if failing else "exhausted",
                       failing_count=(len(deliveries) if failing and len(deliveries) < 500
                                      else workbench.failing_deliveries().count()))
    return render(request, "trades/queue.html", context)
