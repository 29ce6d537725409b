"""Risk's pages for refused channel callbacks (拒绝的渠道回调), mounted under /staff/channels/security/ by
channels/urls.py: the queue with its counts and filters, one callback's stored notice (masked), and marking them
reviewed (issue 5 "Callbacks": a refused callback is a security event visible to risk). Its second tab holds the
channel answers to our own calls (a query's, a payment code's create) the same cross-check refused (拒绝的渠道应答):
the same event without a callback, recorded as an audit row on the order (channels.refused).

Every page needs the risk section and ``channels.view_channelcallback``; marking also needs
``channels.review_channelcallback`` and goes through channels.services.callback_reviews, which checks it again and
audits (design §5 rule 11).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.core.validators import RegexValidator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from aggpay.errors import ApplicationError
from aggpay.querystring import query_without
from aggpay.roles import SECTIONS_BY_SLUG, permission_required_403
from channels import refused
from channels.forms import account_filter_choices
from channels.services.callback_reviews import (
    NOTE_MAX_LENGTH,
    REVIEW_PERM,
    answer_review_mark,
    callback_review_mark,
)

VIEW = "channels.view_channelcallback"
RISK = SECTIONS_BY_SLUG["risk"].permission
PAGE_SIZE = 25


class RefusedFilterForm(forms.Form):
    review = forms.ChoiceField(required=False, choices=refused.REVIEW_STATES, widget=forms.HiddenInput)
    account = forms.ChoiceField(required=False, label="Channel account")
    kind = forms.ChoiceField(required=False, label="Reason", choices=[("", "any reason"), *refused.REASON_KINDS])
    date_from = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    remote_addr = forms.CharField(
        required=False, label="Remote address", max_length=45,
        validators=[RegexValidator(r"^[0-9A-Fa-f:.]+$", "an IP address, or the start of one (10.8.)")],
        widget=forms.TextInput(attrs={"placeholder": "203.0.113.7 or 203.0.113."}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].choices = account_filter_choices()

    def filters(self) -> dict:
        """The valid filters; the queue opens on the unreviewed ones (it is a work queue)."""
        values = self.cleaned_data if self.is_bound and self.is_valid() else {}
        chosen = {k: v for k, v in values.items() if v not in ("", None)}
        chosen.setdefault("review", "unreviewed")
        return chosen


class AnswerFilterForm(RefusedFilterForm):
    """The queue's filters for refused answers: what did not match instead of the reason, the call, and no remote
    address (we called the channel: there is no sender to trace)."""

    field_order = ["review", "account", "field", "verb", "date_from", "date_to"]
    kind = None
    remote_addr = None
    field = forms.ChoiceField(required=False, label="Did not match",
                              choices=[("", "anything"), *refused.ANSWER_FIELDS])
    verb = forms.ChoiceField(required=False, label="Call",
                             choices=[("", "any call"), *refused.ANSWER_VERB_LABELS.items()])


class ReviewForm(forms.Form):
    note = forms.CharField(max_length=NOTE_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 2}))


@require_safe
@permission_required_403(RISK, VIEW)
def refused_callbacks(request):
    form = RefusedFilterForm(request.GET or None)
    filters = form.filters()
    callbacks = refused.filter_refused(refused.refused(), **filters)
    page = Paginator(callbacks, PAGE_SIZE).get_page(request.GET.get("page"))
    links = refused.trade_links(page.object_list, request.user)
    rows = [{"callback": c, "reason": refused.reason_kind(c), "link": links.get(c.pk)} for c in page.object_list]
    for row in rows:
        row["reason_label"] = refused.REASON_LABELS[row["reason"]]
        row["tone"] = refused.REASON_TONES[row["reason"]]
    counts = refused.counts()
    return render(request, "channels/refused_callbacks.html", {
        "form": form, "filters": filters, "page": page, "rows": rows, "counts": counts,
        "query": query_without(request, "page"), "tab_query": query_without(request, "page", "review"),
        "review_tabs": refused.REVIEW_STATES, "can_review": request.user.has_perm(REVIEW_PERM),
        "review_form": ReviewForm(), "next": request.get_full_path(),
        "security_tabs": _security_tabs("callbacks", callbacks=counts["unreviewed"]),
    })


@require_safe
@permission_required_403(RISK, VIEW)
def refused_callback_detail(request, pk: int):
    callback = get_object_or_404(refused.refused(), pk=pk)
    reason = refused.reason_kind(callback)
    return render(request, "channels/refused_callback_detail.html", {
        "callback": callback, "reason": reason, "reason_label": refused.REASON_LABELS[reason],
        "tone": refused.REASON_TONES[reason], "link": refused.trade_links([callback], request.user).get(callback.pk),
        "notice": refused.notice(callback), "can_review": request.user.has_perm(REVIEW_PERM),
        "review_form": ReviewForm(), "next": request.get_full_path(),
    })


@require_POST
@permission_required_403(RISK, VIEW, REVIEW_PERM)
def refused_callbacks_review(request):
    _mark_reviewed(request, field="callback", one="callback", many="callbacks", marked="refused callback",
                   mark=lambda ids, note: callback_review_mark(callback_ids=ids, actor=request.user, note=note),
                   by=lambda result, c: c.reviewed_by.get_username() if c.reviewed_by else "system")
    return _back(request)


def _mark_reviewed(request, *, field: str, one: str, many: str, marked: str, mark, by) -> None:
    """The two queues' "Mark selected reviewed": the ids under ``field`` and the note, through ``mark`` (the
    service, which checks the permission again and audits), its outcome told in messages; ``by`` names who had
    reviewed one already."""
    form = ReviewForm(request.POST)
    ids = request.POST.getlist(field)
    if not ids:
        messages.error(request, f"Choose at least one {one} to mark reviewed.")
    elif not form.is_valid():
        messages.error(request, f"Say what you found: a note is required to mark {many} reviewed.")
    else:
        try:
            result = mark(ids, form.cleaned_data["note"])
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            if result.reviewed:
                n = len(result.reviewed)
                messages.success(request, f"Marked {n} {marked}{'s' if n != 1 else ''} reviewed.")
            if result.already_reviewed:
                who = ", ".join(f"#{row.pk} by {by(result, row)}" for row in result.already_reviewed)
                messages.warning(request, f"Already reviewed, left as they were: {who}.")


def _back(request, default: str = "channels:refused_callbacks"):
    target = request.POST.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return redirect(target)
    return redirect(reverse(default))


def _security_tabs(active: str, *, callbacks: int | None = None, answers: int | None = None) -> list[dict]:
    """The queue's two tabs, each with its unreviewed count (the one already counted for the page is passed in)."""
    return [
        {"key": "callbacks", "label": "Refused callbacks", "url": reverse("channels:refused_callbacks"),
         "n": refused.unreviewed_count() if callbacks is None else callbacks, "active": active == "callbacks"},
        {"key": "answers", "label": "Refused query answers", "url": reverse("channels:refused_answers"),
         "n": refused.answers_unreviewed_count() if answers is None else answers, "active": active == "answers"},
    ]


# --- refused channel answers (the queue's second tab) --------------------------------------------------------------
@require_safe
@permission_required_403(RISK, VIEW)
def refused_answers(request):
    form = AnswerFilterForm(request.GET or None)
    filters = form.filters()
    page = Paginator(refused.filter_answers(refused.refused_answers(), **filters),
                     PAGE_SIZE).get_page(request.GET.get("page"))
    counts = refused.answer_counts()
    return render(request, "channels/refused_answers.html", {
        "form": form, "filters": filters, "page": page, "rows": refused.answer_rows(page.object_list, request.user),
        "counts": counts, "query": query_without(request, "page"),
        "tab_query": query_without(request, "page", "review"), "review_tabs": refused.REVIEW_STATES,
        "can_review": request.user.has_perm(REVIEW_PERM), "next": request.get_full_path(),
        "security_tabs": _security_tabs("answers", answers=counts["unreviewed"]),
    })


@require_safe
@permission_required_403(RISK, VIEW)
def refused_answer_detail(request, pk: int):
    (row,) = refused.answer_rows([get_object_or_404(refused.refused_answers(), pk=pk)], request.user)
    return render(request, "channels/refused_answer_detail.html", {
        "a": row, "answer": refused.answer(row.row), "can_review": request.user.has_perm(REVIEW_PERM),
        "next": request.get_full_path(),
    })


@require_POST
@permission_required_403(RISK, VIEW, REVIEW_PERM)
def refused_answers_review(request):
    _mark_reviewed(request, field="answer", one="refused answer", many="refused answers", marked="refused answer",
                   mark=lambda ids, note: answer_review_mark(answer_ids=ids, actor=request.user, note=note),
                   by=lambda result, row: result.reviews[row.pk].actor_label)
    return _back(request, "channels:refused_answers")
