"""django-import-export resources for batch onboarding (批量进件, issue 4) and the onboarding exports.

``MerchantRecordResource`` maps one sheet row to one onboarding record. import-export drives the pass (row by row,
dry run or for real, in a transaction); the row's *instance* is a plain ``SheetRow``, never a model. Checking a row
is ``validate_record``'s job and writing it is ``merchant_onboard_draft``'s (plus ``document_add`` for the ZIP's
files): this module adds only what is about the batch itself — duplicates within the file and against merchants
already onboarded, unique row refs, the ZIP's files — and never saves a model or sets a state field (style.md 12).

The export resources write masked values only (design §5 rule 10); ``merchants.batch.export`` makes their cells
safe against formula injection.
"""

from __future__ import annotations

from collections import defaultdict

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from import_export import resources, widgets
from import_export.fields import Field
from import_export.instance_loaders import BaseInstanceLoader

from aggpay.errors import ApplicationError
from aggpay.masking import mask_bank_account, mask_email, mask_id_number, mask_name, mask_phone
from merchants.batch import cells
from merchants.batch.columns import (
    COLUMNS,
    COLUMNS_BY_KEY,
    DOCUMENTS_COLUMN,
    column_for_param,
    readable_message,
)
from merchants.batch.documents import DocumentsZip, normalise_ref
from merchants.models import Merchant, SubjectType
from merchants.services.onboarding import document_add, merchant_onboard_draft
from merchants.services.record import check_record, check_record_duplicates, lock_record_identities

ROW_NUMBER = "__row__"  # extra dataset column: the row number the clerk sees in Excel
MAX_REF_LENGTH = 64
_POSITIONS = {column.key: position for position, column in enumerate((*COLUMNS, DOCUMENTS_COLUMN))}


def _column_position(error: dict) -> int:
    """Where a row problem goes in the report: its column's place in the template; the documents ZIP after the
    columns, and a problem that names no column last."""
    return _POSITIONS.get(error["column"], len(_POSITIONS))


# --- widgets: cells ↔ record values (merchants.batch.cells does the mapping) -----------------------------------


class CellWidget(widgets.Widget):
    def clean(self, value, row=None, **kwargs):
        return cells.text(value)

    def render(self, value, obj=None, **kwargs):
        return "" if value is None else str(value)


class DateCellWidget(CellWidget):
    def clean(self, value, row=None, **kwargs):
        return cells.date_value(value)

    def render(self, value, obj=None, **kwargs):
        return cells.date_text(value)


class ChoiceCellWidget(CellWidget):
    def __init__(self, aliases: dict[str, str]):
        super().__init__()
        self.aliases = aliases

    def clean(self, value, row=None, **kwargs):
        return cells.choice(value, self.aliases)


class ProductsCellWidget(CellWidget):
    def clean(self, value, row=None, **kwargs):
        return cells.products(value)

    def render(self, value, obj=None, **kwargs):
        return cells.products_text(value)


class ScenariosCellWidget(CellWidget):
    def clean(self, value, row=None, **kwargs):
        return cells.scenarios(value)

    def render(self, value, obj=None, **kwargs):
        return cells.scenarios_text(value)


_WIDGETS = {"text": CellWidget, "date": DateCellWidget, "products": ProductsCellWidget,
            "scenarios": ScenariosCellWidget}


def sheet_field(key: str) -> Field:
    column = COLUMNS_BY_KEY[key]
    widget = ChoiceCellWidget(column.choices) if column.kind == "choice" else _WIDGETS[column.kind]()
    return Field(attribute=key, column_name=column.label, widget=widget)


# --- import ---------------------------------------------------------------------------------------------------


class SheetRow:
    """What import-export fills from one sheet row: the cells' values under their column keys. Not a model."""

    def __init__(self, row_number: int):
        self.row_number = row_number
        self.errors: list[dict] = []
        self.documents = []  # ZipDocument list from the documents ZIP
        self.normalised_licence = ""
        self.application = None

    def value(self, key: str):
        return getattr(self, key, None)

    def add_error(self, key: str | None, reason: str, *, kind: str = "invalid") -> None:
        label = COLUMNS_BY_KEY[key].label if key in COLUMNS_BY_KEY else (
            DOCUMENTS_COLUMN.label if key == DOCUMENTS_COLUMN.key else "")
        self.errors.append({"column": key or "", "label": label, "reason": reason, "kind": kind})

    def record(self) -> dict:
        """The nested record ``validate_record`` takes; empty cells are left out so its defaults apply."""
        data: dict = {}
        for column in COLUMNS:
            value = self.value(column.key)
            if column.key == "ref" or value is None:
                continue
            path = column.path
            if path[0] == "stores":
                data.setdefault("stores", [{}])[0][path[2]] = value
            elif len(path) == 2:
                data.setdefault(path[0], {})[path[1]] = value
            else:
                data[path[0]] = value
        return data


class MerchantRecordResource(resources.Resource):
    """One sheet row ↔ one onboarding record (the template's columns, in order)."""

    ref = sheet_field("ref")
    subject_type = sheet_field("subject_type")
    legal_name = sheet_field("legal_name")
    short_name = sheet_field("short_name")
    licence_no = sheet_field("licence_no")
    licence_valid_from = sheet_field("licence_valid_from")
    licence_valid_until = sheet_field("licence_valid_until")
    registered_address = sheet_field("registered_address")
    legal_person_name = sheet_field("legal_person_name")
    legal_person_id_type = sheet_field("legal_person_id_type")
    legal_person_id_number = sheet_field("legal_person_id_number")
    legal_person_id_valid_from = sheet_field("legal_person_id_valid_from")
    legal_person_id_valid_until = sheet_field("legal_person_id_valid_until")
    contact_name = sheet_field("contact_name")
    contact_phone = sheet_field("contact_phone")
    contact_email = sheet_field("contact_email")
    service_phone = sheet_field("service_phone")
    mcc = sheet_field("mcc")
    industry = sheet_field("industry")
    requested_products = sheet_field("requested_products")
    scenarios = sheet_field("scenarios")
    store_no = sheet_field("store_no")
    store_name = sheet_field("store_name")
    store_area_code = sheet_field("store_area_code")
    store_address = sheet_field("store_address")
    settlement_account_type = sheet_field("settlement_account_type")
    settlement_bank_name = sheet_field("settlement_bank_name")
    settlement_bank_branch = sheet_field("settlement_bank_branch")
    settlement_bank_branch_code = sheet_field("settlement_bank_branch_code")
    settlement_account_number = sheet_field("settlement_account_number")
    settlement_account_holder = sheet_field("settlement_account_holder")

    class Meta:
        instance_loader_class = BaseInstanceLoader
        force_init_instance = True  # every row is a new record; nothing is looked up or updated
        skip_diff = True
        use_transactions = True
        import_order = tuple(column.key for column in COLUMNS)
        export_order = import_order

    def __init__(self, *, actor=None, documents: DocumentsZip | None = None, progress=None):
        super().__init__()
        self.actor = actor
        self.documents = documents
        self.progress = progress
        self.rows: dict[int, SheetRow] = {}  # by row number, in sheet order
        self.crashed: list[tuple[int, Exception]] = []
        self.processed = 0
        self._seen_licences: dict[str, int] = {}
        self._seen_micro_ids: dict[str, int] = {}
        self._seen_refs: dict[str, int] = {}

    # import-export hooks, in the order a pass calls them

    def init_instance(self, row=None):
        return SheetRow(row[ROW_NUMBER])

    def import_row(self, row, instance_loader, **kwargs):
        result = super().import_row(row, instance_loader, **kwargs)
        for error in result.errors:  # an unexpected exception (not a row problem): the pass will be rolled back
            self.crashed.append((row[ROW_NUMBER], error.error))
        return result

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        row: SheetRow = instance
        self.rows[row.row_number] = row
        unreadable = set()
        for key, problems in (import_validation_errors or {}).items():
            unreadable.add(key)
            for message in ValidationError(problems).messages:
                row.add_error(key, message)
        self._check_ref(row)
        # Every problem of the row in one pass, so the clerk corrects them all before uploading again. A cell that
        # could not be read is reported above already: the record only lacks it, which would say the same twice.
        checked = check_record(row.record())
        for problem in checked.problems:
            key = column_for_param(problem.param)
            if key not in unreadable:
                row.add_error(key, readable_message(problem.message))
        self._check_duplicates(row, checked.record.merchant)
        if self.documents is not None:
            row.documents = self.documents.for_ref(row.value("ref"))
            for problem in self.documents.problems_for(row.value("ref")):
                row.add_error(DOCUMENTS_COLUMN.key, problem)
        row.errors.sort(key=_column_position)  # stable: a column's problems keep the order they were found in
        if row.errors:
            by_column = defaultdict(list)
            for error in row.errors:
                by_column[error["column"] or NON_FIELD_ERRORS].append(error["reason"])
            raise ValidationError(dict(by_column))

    def save_instance(self, instance, is_create, row, **kwargs):
        if self._is_dry_run(kwargs):
            return
        sheet_row: SheetRow = instance
        stage = "record"
        # In the pass's transaction, not the row's savepoint: one lock on every merchant identity until the batch
        # commits, instead of one per row (thousands would crowd the server's lock table; aggpay/locks.py).
        lock_record_identities()
        try:
            # A savepoint per row: a row refused while writing leaves nothing behind, even when the clerk imports
            # the valid rows only and the pass as a whole commits.
            with transaction.atomic():
                application = merchant_onboard_draft(actor=self.actor, data=sheet_row.record())
                stage = DOCUMENTS_COLUMN.key
                for document in sheet_row.documents:
                    document_add(merchant_id=application.merchant_id, actor=self.actor, doc_type=document.doc_type,
                                 uploaded_file=self.documents.upload(document))
        except ApplicationError as exc:
            key = DOCUMENTS_COLUMN.key if stage == DOCUMENTS_COLUMN.key else column_for_param(exc.param)
            sheet_row.add_error(key, readable_message(exc.message))
            raise ValidationError({key or NON_FIELD_ERRORS: exc.message})
        sheet_row.application = application

    def after_import_row(self, row, row_result, **kwargs):
        self.processed += 1
        if self.progress is not None:
            self.progress(self.processed)

    # batch-level checks: what no single record can know

    def _check_ref(self, row: SheetRow) -> None:
        ref = row.value("ref")
        if not ref:
            return
        if len(ref) > MAX_REF_LENGTH:
            row.add_error("ref", f"a ref has at most {MAX_REF_LENGTH} characters")
            return
        first = self._seen_refs.setdefault(normalise_ref(ref), row.row_number)
        if first != row.row_number:
            row.add_error("ref", f"ref “{ref}” is also used by row {first}; each row needs its own ref")

    def _check_duplicates(self, row: SheetRow, merchant: dict) -> None:
        """``merchant`` holds the row's fields that passed validate_record: a licence or ID number that is itself
        wrong is not compared (its problem is reported instead); one that is right is, even if other cells are not.

        Within the file first: during the real import the rows above are already written, and a repeat must still
        read "same … as row N" as it did in the dry run, not "already onboarded" by the row above. Then against the
        merchants already onboarded, with the check the form and the partner API use (``check_record_duplicates``).
        """
        licence = merchant.get("licence_no") or ""
        row.normalised_licence = licence
        if licence:
            first = self._seen_licences.setdefault(licence, row.row_number)
            if first != row.row_number:
                row.add_error("licence_no", f"same licence number as row {first}", kind="duplicate")
                return
        elif merchant.get("subject_type") == SubjectType.MICRO:
            # 小微 merchants have no licence: the owner's ID number identifies them.
            id_number = merchant.get("legal_person_id_number") or ""
            if not id_number:
                return
            first = self._seen_micro_ids.setdefault(id_number, row.row_number)
            if first != row.row_number:
                row.add_error("legal_person_id_number", f"same 小微 owner ID number as row {first}", kind="duplicate")
                return
        for problem in check_record_duplicates(merchant=merchant):
            # The column is named beside the reason already: "licence_no: already onboarded…" → "already onboarded…"
            reason = problem.message.removeprefix(f"{problem.param}: ")
            row.add_error(column_for_param(problem.param), reason, kind="duplicate")


# --- exports (masked) -----------------------------------------------------------------------------------------


def _latest_application(merchant: Merchant):
    applications = sorted(merchant.applications.all(), key=lambda a: (a.created_at, a.pk))
    return applications[-1] if applications else None


def merchant_cell(merchant: Merchant, key: str):
    """The export value of one template column for a merchant, PII masked."""
    account = next((a for a in merchant.settlement_accounts.all() if a.current), None)
    store = next(iter(sorted(merchant.stores.all(), key=lambda s: s.store_no)), None)
    masked = {
        "legal_person_name": mask_name, "legal_person_id_number": mask_id_number, "contact_name": mask_name,
        "contact_phone": mask_phone, "contact_email": mask_email,
    }
    if key in masked:
        return masked[key](getattr(merchant, key))
    if key.startswith("store_"):
        attribute = {"store_no": "store_no", "store_name": "name", "store_area_code": "area_code",
                     "store_address": "address"}[key]
        return getattr(store, attribute) if store else ""
    if key.startswith("settlement_"):
        if account is None:
            return ""
        attribute = COLUMNS_BY_KEY[key].path[1]
        value = getattr(account, attribute)
        if attribute == "account_number":
            return mask_bank_account(value)
        if attribute == "account_holder" and account.account_type == "personal":
            return mask_name(value)
        return value
    if key in ("licence_valid_until", "legal_person_id_valid_until"):
        return cells.date_text(getattr(merchant, key), empty=cells.LONG_TERM)
    if key in ("licence_valid_from", "legal_person_id_valid_from"):
        return cells.date_text(getattr(merchant, key))
    if key == "requested_products":
        return cells.products_text(merchant.requested_products)
    if key == "scenarios":
        return cells.scenarios_text(merchant.scenarios)
    return getattr(merchant, key, "") or ""


class MerchantExportResource(resources.Resource):
    """The merchant list in the template's columns (PII masked), with merchant no., state and application state."""

    merchant_no = Field(attribute="merchant_no", column_name="商户号 Merchant no.")
    state = Field(attribute="state", column_name="商户状态 Merchant state")
    application_state = Field(column_name="进件状态 Application state")

    class Meta:
        export_order = ("merchant_no", "state", "application_state")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for column in COLUMNS:
            if column.key != "ref":
                self.fields[column.key] = Field(attribute=column.key, column_name=column.label)

    def get_export_order(self):
        return ("merchant_no", "state", "application_state", *(c.key for c in COLUMNS if c.key != "ref"))

    def export_field(self, field, instance, **kwargs):
        name = self.get_field_name(field)
        if name == "application_state":
            application = _latest_application(instance)
            return application.state if application else ""
        if name in ("merchant_no", "state"):
            return getattr(instance, name)
        return merchant_cell(instance, name)

    @staticmethod
    def queryset(queryset=None):
        base = queryset if queryset is not None else Merchant.objects.all()
        return base.prefetch_related("settlement_accounts", "stores", "applications").order_by("created_at", "pk")


class ImportRowExportResource(resources.Resource):
    """A batch's rows as the clerk sees them on the batch page: outcome, problems, the draft each became."""

    row_number = Field(attribute="row_number", column_name="行号 Row")
    ref = Field(attribute="ref", column_name=COLUMNS_BY_KEY["ref"].label)
    outcome = Field(attribute="outcome", column_name="结果 Outcome")
    problems = Field(column_name="问题 Problems")
    subject_type = Field(attribute="subject_type", column_name=COLUMNS_BY_KEY["subject_type"].label)
    legal_name = Field(attribute="legal_name", column_name=COLUMNS_BY_KEY["legal_name"].label)
    short_name = Field(attribute="short_name", column_name=COLUMNS_BY_KEY["short_name"].label)
    licence_no = Field(attribute="licence_no", column_name=COLUMNS_BY_KEY["licence_no"].label)
    documents = Field(column_name=DOCUMENTS_COLUMN.label)
    merchant_no = Field(column_name="商户号 Merchant no.")
    application_state = Field(column_name="进件状态 Application state")
    submit_outcome = Field(attribute="submit_outcome", column_name="提交结果 Submit result")
    submit_message = Field(attribute="submit_message", column_name="提交说明 Submit message")

    class Meta:
        export_order = ("row_number", "ref", "outcome", "problems", "subject_type", "legal_name", "short_name",
                        "licence_no", "documents", "merchant_no", "application_state", "submit_outcome",
                        "submit_message")

    def dehydrate_problems(self, row):
        return "; ".join(f"{e['label']}: {e['reason']}" if e.get("label") else e["reason"] for e in row.errors or [])

    def dehydrate_documents(self, row):
        return ", ".join(row.documents or [])

    def dehydrate_merchant_no(self, row):
        return row.merchant.merchant_no if row.merchant_id else ""

    def dehydrate_application_state(self, row):
        return row.application.state if row.application_id else ""
