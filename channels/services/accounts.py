"""Channel account services: create, update (write-only credentials), enable, disable.

Issue 3 "Channel configuration". Every change writes a ``ChannelConfigChange`` and an audit row in the same
transaction (design §5 rule 9); secrets appear in neither (their diff entry is "(changed)").

An account takes traffic only after its interface evaluation went live (design §1 "before a channel is connected
its interface is evaluated"; issue 3 "Interface evaluation"): enabling is refused until then (``enable_refusal``).
There is no override: the way to enable is to finish the evaluation, which the same operations staff can do in a
few audited steps, and an emergency switch goes to an account that is already live. Disabling is never blocked.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_slug
from django.db import IntegrityError, transaction

from aggpay.errors import InvalidRequest, InvalidState, NotFound
from channels.models import DEFAULT_MODE, ChannelAccount, ChannelMode, EvaluationState
from channels.services.config import build_config, config_as_dict, config_fields, is_blank, kind_adapter
from channels.services.history import UNSET, diff, record_change

_url = URLValidator(schemes=["http", "https"])
# Account codes are URL segments under /staff/channels/ (channels/urls.py); these are taken by pages.
RESERVED_CODES = frozenset({"new"})


def _check_common(*, name=UNSET, base_url=UNSET, mode=UNSET, code=UNSET, notes=UNSET) -> None:
    if code is not UNSET:
        if not isinstance(code, str):  # validate_slug checks str(code): 123 passed it, then len() failed
            raise InvalidRequest("code must be a text", param="code")
        try:
            validate_slug(code)
        except ValidationError:
            raise InvalidRequest("code must be letters, digits, - or _", param="code")
        if len(code) > 40:
            raise InvalidRequest("code must be at most 40 characters", param="code")
        if code in RESERVED_CODES:
            raise InvalidRequest(f"{code!r} is reserved (it is a page of /staff/channels/)", param="code")
    if name is not UNSET and (not isinstance(name, str) or not name.strip() or len(name) > 100):
        # The page strips what is typed; admin actions and APIs call this directly, so "   " is refused here too.
        raise InvalidRequest("name is required (a text of at most 100 characters, not only spaces)", param="name")
    if notes is not UNSET and not isinstance(notes, str):
        raise InvalidRequest("notes must be a text", param="notes")
    if base_url is not UNSET:
        try:
            _url(base_url)
        except ValidationError:
            raise InvalidRequest("base_url must be an http(s) URL", param="base_url")
        if len(base_url) > 255:
            raise InvalidRequest("base_url must be at most 255 characters", param="base_url")
    if mode is not UNSET and mode not in ChannelMode.values:
        raise InvalidRequest(f"mode must be one of {ChannelMode.values}", param="mode")


def _snapshot(account: ChannelAccount) -> dict:
    data = {"name": account.name, "mode": account.mode, "base_url": account.base_url, "notes": account.notes,
            "enabled": account.enabled}
    data.update({f"config.{key}": value for key, value in (account.config or {}).items()})
    return data


# Where ops finish an evaluation, and what is left to do from each state of it (issue 3's state machine).
_EVALUATION_PLACE = "Interface evaluation, on the account's page"
_STILL_TO_DO = {
    EvaluationState.EVALUATING: ("is still evaluating; finish its checklist, approve it, integrate and take it "
                                 "live first"),
    EvaluationState.APPROVED: "is approved; start integrating and take it live first",
    EvaluationState.INTEGRATING: "is integrating; take it live first",
    EvaluationState.REJECTED: "was rejected; start a new one and take it live first",
}


def enable_refusal(account: ChannelAccount) -> str:
    """Why the account may not be enabled yet, as a sentence saying what to do; "" once it may.

    The account's newest evaluation decides, as the pages show it (design §1, issue 3): it must be live. A live
    evaluation is final and, being open, blocks a new one (``interface_evaluation_start``), so an account enabled
    by this rule keeps a live newest evaluation. Accounts enabled before the rule existed may have none or a
    rejected one: they stay enabled — turning traffic off is a deliberate ops decision, never a side effect — and
    the account page warns that they take traffic without a live evaluation.
    """
    evaluation = account.evaluations.order_by("-created_at", "-id").first()
    if evaluation is None:
        return (f"channel account {account.code} has no interface evaluation; start one and take it live first "
                f"({_EVALUATION_PLACE})")
    if evaluation.state == EvaluationState.LIVE:
        return ""
    return f"the interface evaluation of {account.code} {_STILL_TO_DO[evaluation.state]} ({_EVALUATION_PLACE})"


def channel_account_create(
    *,
    actor,
    kind: str,
    code: str,
    name: str,
    base_url: str,
    config: dict,
    mode: str = "",
    enabled: bool = False,
    notes: str = "",
    reason: str = "",
) -> ChannelAccount:
    """Create an account. ``config`` must build the kind's typed config; errors name ``config.<field>``.

    Always created disabled: a new account has no interface evaluation, and an account takes traffic only once
    its evaluation is live (``enable_refusal``), so ``enabled=True`` is refused before anything is written.
    """
    if enabled:
        raise InvalidState(
            f"a new channel account has no interface evaluation; create {code} disabled, take its interface "
            f"evaluation live ({_EVALUATION_PLACE}), then enable it", param="enabled")
    kind_adapter(kind)
    mode = mode or DEFAULT_MODE[kind]
    _check_common(code=code, name=name, base_url=base_url, mode=mode, notes=notes)
    typed = build_config(kind, config)
    secret = {f"config.{f.name}" for f in config_fields(kind) if f.write_only}
    with transaction.atomic():
        if ChannelAccount.objects.filter(code=code).exists():
            raise InvalidRequest(f"a channel account with code {code!r} exists", param="code")
        try:
            with transaction.atomic():
                account = ChannelAccount.objects.create(
                    kind=kind, code=code, name=name, mode=mode, base_url=base_url, config=config_as_dict(typed),
                    enabled=enabled, notes=notes,
                )
        except IntegrityError:  # the unique code: someone created it since the check above (it was a 500)
            raise InvalidRequest(f"a channel account with code {code!r} exists", param="code") from None
        record_change(actor=actor, account=account, target=account, target_type="account", action="account.created",
                      changes=diff({}, _snapshot(account), secret=secret), reason=reason)
    return account


def channel_account_update(
    *,
    account_id: int,
    actor,
    reason: str,
    name: str = UNSET,
    base_url: str = UNSET,
    mode: str = UNSET,
    notes: str = UNSET,
    config: dict | None = None,
) -> ChannelAccount:
    """Change an account's settings and/or config.

    ``config`` holds the submitted config fields only: a blank (or absent) write-only field — a secret or a PEM
    key — keeps the stored value, because pages never send it back (issue 3: credentials are write-only).
    """
    if not reason or not reason.strip():
        raise InvalidRequest("a reason is required to change a channel account", param="reason")
    _check_common(name=name, base_url=base_url, mode=mode, notes=notes)
    with transaction.atomic():
        account = _locked(account_id)
        before = _snapshot(account)
        specs = config_fields(account.kind)
        if config is not None:
            if not isinstance(config, dict):
                raise InvalidRequest("config must be a mapping of field names to values", param="config")
            unknown = sorted(set(config) - {spec.name for spec in specs})
            if unknown:
                raise InvalidRequest(f"{unknown[0]} is not a {account.kind} config field", param=f"config.{unknown[0]}")
            merged = dict(account.config or {})
            for spec in specs:
                value = config.get(spec.name, "")
                if spec.name not in config or (spec.write_only and is_blank(value)):
                    continue
                merged[spec.name] = value
            account.config = config_as_dict(build_config(account.kind, merged))
        for field, value in (("name", name), ("base_url", base_url), ("mode", mode), ("notes", notes)):
            if value is not UNSET:
                setattr(account, field, value)
        changes = diff(before, _snapshot(account), secret={f"config.{s.name}" for s in specs if s.write_only})
        if not changes:
            return account
        account.save()
        record_change(actor=actor, account=account, target=account, target_type="account", action="account.updated",
                      changes=changes, reason=reason)
    return account


def _locked(account_id: int) -> ChannelAccount:
    # FOR NO KEY UPDATE: a second change of the account waits as it would for FOR UPDATE, but the orders, contracts and
    # notices that keep being inserted on the account (their foreign key takes FOR KEY SHARE on it) do not.
    try:
        return ChannelAccount.objects.select_for_update(no_key=True).get(pk=account_id)
    except ChannelAccount.DoesNotExist:
        raise NotFound(f"no channel account {account_id}", param="account_id")


def _set_enabled(*, account_id: int, actor, reason: str, enabled: bool) -> ChannelAccount:
    verb = "enable" if enabled else "disable"
    if not reason or not reason.strip():
        raise InvalidRequest(f"a reason is required to {verb} a channel account", param="reason")
    with transaction.atomic():
        account = _locked(account_id)
        if account.enabled == enabled:
            raise InvalidState(f"channel account {account.code} is already {verb}d")
        if enabled:
            # An account that cannot build its adapter would fail every trade routed to it.
            account.typed_config  # noqa: B018 - raises ChannelConfigInvalid
            # Read under the account's lock: starting an evaluation takes it too, so the newest evaluation cannot
            # be replaced meanwhile, and one that is live stays live (its last state).
            refusal = enable_refusal(account)
            if refusal:
                raise InvalidState(refusal, param="account_id")
        account.enabled = enabled
        account.save(update_fields=["enabled", "updated_at"])
        record_change(actor=actor, account=account, target=account, target_type="account",
                      action=f"account.{verb}d", changes={"enabled": {"old": not enabled, "new": enabled}},
                      reason=reason)
    return account


def channel_account_enable(*, account_id: int, actor, reason: str) -> ChannelAccount:
    return _set_enabled(account_id=account_id, actor=actor, reason=reason, enabled=True)


def channel_account_disable(*, account_id: int, actor, reason: str) -> ChannelAccount:
    return _set_enabled(account_id=account_id, actor=actor, reason=reason, enabled=False)
