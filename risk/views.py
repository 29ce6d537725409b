"""Risk's staff pages, mounted at /staff/risk/notices/ by aggpay/urls.py (namespace ``risk``): the queue of channel
risk notices (risk.notice_queue), one notice, and handling it (risk.services.channel_notices).

Every page needs the risk section and ``risk.view_channelrisknotice``; handling also needs
``risk.handle_channelrisknotice``, and the service checks it again with the action's own permission and audits
(design §5 rules 9 and 11).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST, require_safe

from aggpay.errors import ApplicationError
from aggpay.querystring import query_without
from aggpay.roles import SECTIONS_BY_SLUG, permission_required_403
from channels.forms import account_filter_choices
from channels.models import CallbackOutcome
from risk import notice_queue
from risk.models import ChannelRiskNoticeKind, ChannelRiskNoticeState
from risk.services.channel_notices import HANDLE_PERM, NOTE_MAX_LENGTH, VIEW_PERM, channel_risk_notice_handle

RISK = SECTIONS_BY_SLUG["risk"].permission
PAGE_SIZE = 25


class NoticeFilterForm(forms.Form):
    state = forms.ChoiceField(required=False, choices=notice_queue.STATES, widget=forms.HiddenInput)
    kind = forms.ChoiceField(required=False, label="Kind", choices=[("", "any kind"), *ChannelRiskNoticeKind.choices])
    account = forms.ChoiceField(required=False, label="Channel account")
    match = forms.ChoiceField(required=False, label="Contract", choices=[("", "matched or not"),
                                                                         *notice_queue.MATCHES])
    q = forms.CharField(required=False, label="Search", max_length=128, widget=forms.TextInput(
        attrs={"placeholder": "record id, sub-merchant id, merchant no. or name", "type": "search"}))
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = account_filter_choices()

    def filters(self) -> dict:
        """The valid filters (an invalid one is shown with its error and left out); the queue opens on the new
        notices: it is a work queue."""
        values = {}
        if self.is_bound:
            self.is_valid()
            values = {k: v for k, v in self.cleaned_data.items() if v not in ("", None)}
        values.setdefault("state", "new")
        return values


class HandleForm(forms.Form):
    action = forms.ChoiceField(label="Action", widget=forms.RadioSelect)
    note = forms.CharField(label="Note", max_length=NOTE_MAX_LENGTH, widget=forms.Textarea(attrs={
        "rows": 3, "placeholder": "what you did and why (channel contact, ticket, appeal filed)"}))

    def __init__(self, *args, actions, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = actions
        self.fields["action"].initial = actions[0][0]


@require_safe
@permission_required_403(RISK, VIEW_PERM)
def notices(request):
    form = NoticeFilterForm(request.GET or None)
    filters = form.filters()
    page = Paginator(notice_queue.filter_notices(notice_queue.notices(), **filters),
                     PAGE_SIZE).get_page(request.GET.get("page"))
    counts = notice_queue.counts()
    # A tab counts what it lists under the other filters ("Handled 12" above a filtered list of 2 misled); the
    # "All" tab has no number, as before.
    tab_counts = notice_queue.tab_counts(**filters)
    tabs = [{"key": key, "label": label, "active": filters["state"] == key, "n": tab_counts.get(key)}
            for key, label in notice_queue.STATES]
    return render(request, "risk/notices.html", {
        "form": form, "filters": filters, "page": page, "rows": notice_queue.rows(page.object_list),
        "counts": counts, "tabs": tabs, "query": query_without(request, "page"),
        "tab_query": query_without(request, "page", "state"),
    })


def _detail(request, pk: int, *, form: HandleForm | None = None, status: int = 200):
    notice = get_object_or_404(notice_queue.notices(), pk=pk)
    can_handle = request.user.has_perm(HANDLE_PERM) and notice.state == ChannelRiskNoticeState.NEW
    limit = notice_queue.current_limit(notice)
    # A limit risk lifted since: the page says whose and when, and the form offers to limit the contract "again".
    lifted = notice_queue.lifted_limit(notice, limit=limit)
    if can_handle and form is None:
        form = HandleForm(actions=notice_queue.available_actions(notice, request.user, limit=limit, lifted=lifted))
    callback = notice.source_callback()
    actions = form.fields["action"].choices if can_handle else []
    return render(request, "risk/notice_detail.html", {
        "n": notice_queue.view(notice), "notice": notice, "callback": callback,
        "callback_refused": callback is not None and callback.outcome == CallbackOutcome.REJECTED,
        "can_handle": can_handle, "form": form if can_handle else None, "limit": limit, "lifted": lifted,
        "can_view_merchants": request.user.has_perm("merchants.view_merchant"),
        "preview": notice_queue.traffic(notice, actions=actions),
    }, status=status)


@require_safe
@permission_required_403(RISK, VIEW_PERM)
def notice_detail(request, pk: int):
    return _detail(request, pk)


@require_POST
@permission_required_403(RISK, VIEW_PERM, HANDLE_PERM)
def notice_handle(request, pk: int):
    notice = get_object_or_404(notice_queue.notices(), pk=pk)
    form = HandleForm(request.POST, actions=notice_queue.available_actions(notice, request.user))
    if not form.is_valid():
        messages.error(request, "Not handled: choose an action and say what you did and why.")
        return _detail(request, pk, form=form, status=400)
    try:
        notice = channel_risk_notice_handle(notice_id=notice.pk, actor=request.user, note=form.cleaned_data["note"],
                                            action=form.cleaned_data["action"])
    except ApplicationError as exc:
        messages.error(request, f"Not handled: {exc.message}")
        return _detail(request, pk, form=form, status=exc.status)
    messages.success(request, f"Notice {notice.record_id} handled: {notice.get_handled_action_display().lower()}.")
    return redirect("risk:notice", notice.pk)
