"""The batch onboarding pages (/staff/onboarding/batch/): who may open them, the template, upload → preview →
confirm → drafts → bulk submit, the progress endpoint, and exports that are safe to open in Excel."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from openpyxl import load_workbook

from aggpay.models import AuditLog
from merchants.batch.columns import COLUMNS
from merchants.batch.examples import documents_zip, example_rows, sheet_bytes
from merchants.batch.export import safe_cell
from merchants.models import ImportJob, ImportJobState, Merchant

pytestmark = pytest.mark.django_db

INDEX = "/staff/onboarding/batch/"


@pytest.fixture
def clerk_client(client, staff_member):
    client.force_login(staff_member("onboarding_clerk", username="lin.clerk"))
    return client


def post_upload(client, rows, *, documents=None, fmt="xlsx"):
    data = {"sheet": SimpleUploadedFile(f"batch.{fmt}", sheet_bytes(rows, fmt))}
    if documents is not None:
        data["documents"] = SimpleUploadedFile("documents.zip", documents)
    return client.post(INDEX, data)


def batch_urls(job_id: int) -> list[tuple[str, str]]:
    return [("get", INDEX), ("get", INDEX + "template.xlsx"), ("get", INDEX + "merchants.csv"),
            ("get", f"{INDEX}{job_id}/"), ("get", f"{INDEX}{job_id}/progress/"), ("post", f"{INDEX}{job_id}/confirm/"),
            ("post", f"{INDEX}{job_id}/submit/"), ("get", f"{INDEX}{job_id}/submitted/"),
            ("get", f"{INDEX}{job_id}/rows.xlsx"), ("get", INDEX + "samples/batch-onboarding-10.xlsx")]


@pytest.mark.parametrize("role", ["risk_officer", "support_agent", "operations", "finance", "admin"])
def test_only_onboarding_clerks_reach_the_batch_pages(client, staff_member, role):
    clerk = staff_member("onboarding_clerk")
    from merchants.batch.services import import_job_create

    job = import_job_create(actor=clerk, sheet=SimpleUploadedFile("b.xlsx", sheet_bytes(example_rows(1))))
    client.force_login(staff_member(role))
    for method, url in batch_urls(job.pk):
        response = getattr(client, method)(url)
        assert response.status_code == 403, url
    client.logout()
    assert client.get(INDEX).url.startswith("/staff/login/")


def test_the_template_has_every_column_and_an_instructions_sheet(clerk_client):
    response = clerk_client.get(INDEX + "template.xlsx")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="batch-onboarding-template.xlsx"'
    book = load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["商户 Merchants", "说明 Instructions"]
    sheet = book["商户 Merchants"]
    headers = [cell.value for cell in sheet[1]]
    assert headers == [column.label for column in COLUMNS]
    assert "商户简称 Short name" in headers and "银行账号 Account number" in headers
    assert sheet.max_row == 1  # no example row that could be imported by mistake
    choices = {str(v.sqref): v.formula1 for v in sheet.data_validations.dataValidation}
    assert '"enterprise,individual_business,micro"' in choices.values()
    assert sheet.column_dimensions["K"].number_format == "@"  # ID numbers stay text
    guide = "\n".join(str(c.value) for row in book["说明 Instructions"].iter_rows() for c in row if c.value)
    assert "<doc_type>.jpg" in guide and "wechat.native" in guide and "长期" in guide

    csv_response = clerk_client.get(INDEX + "template.csv")
    text = csv_response.content.decode("utf-8")
    assert text.startswith("\ufeff参考号 Ref,主体类型 Subject type,")


def test_uploading_a_file_with_bad_rows_shows_each_problem_and_writes_nothing(clerk_client):
    rows = example_rows(6)
    rows[1]["contact_phone"] = "12345"
    rows[4]["requested_products"] = "wechat.native, paypal"
    response = post_upload(clerk_client, rows)
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response.url == f"{INDEX}{job.pk}/"

    page = clerk_client.get(response.url).content.decode()
    assert job.state == ImportJobState.VALIDATED and Merchant.objects.count() == 0
    assert '<tr data-row="3">' in page and '<tr data-row="6">' in page
    assert "联系人手机 Contact mobile" in page and "a mainland mobile number has 11 digits" in page
    assert "unknown product(s) paypal" in page
    assert "2 rows cannot be imported" in page
    assert 'name="valid_only"' in page

    refused = clerk_client.post(f"{INDEX}{job.pk}/confirm/", follow=True)
    assert "2 row(s) are invalid" in refused.content.decode()
    assert Merchant.objects.count() == 0

    clerk_client.post(f"{INDEX}{job.pk}/confirm/", {"valid_only": "1"})
    job.refresh_from_db()
    assert job.state == ImportJobState.DONE and Merchant.objects.count() == 4


def test_the_preview_and_the_row_export_show_every_problem_of_a_row(clerk_client):
    rows = example_rows(4)
    rows[1].update(contact_phone="12345", mcc="58", settlement_account_number="6222-ABC")  # Excel row 3
    rows[2]["legal_person_id_valid_from"] = "someday"  # Excel row 4
    response = post_upload(clerk_client, rows)
    job = ImportJob.objects.get()

    page = clerk_client.get(response.url).content.decode()

    assert page.count('<tr data-row="3">') == 3 and page.count('<tr data-row="4">') == 1
    assert "4 problems in 2 rows" in page
    problems = page[page.index('<table class="table" id="problems">'):]
    problems = problems[:problems.index("</table>")]
    labels = [label for label in ("联系人手机 Contact mobile", "MCC码 MCC", "银行账号 Account number",
                                  "证件起始日 ID valid from") if f"<td>{label}</td>" in problems]
    assert len(labels) == 4
    assert [problems.index(f"<td>{label}</td>") for label in labels] == sorted(
        problems.index(f"<td>{label}</td>") for label in labels)  # row by row, in the template's column order
    for reason in ("a mainland mobile number has 11 digits", "an MCC has 4 digits", "8 to 30 digits",
                   "must be a date written YYYY-MM-DD"):
        assert reason in problems

    csv_text = clerk_client.get(f"{INDEX}{job.pk}/rows.csv").content.decode("utf-8-sig")
    line = next(line for line in csv_text.splitlines() if line.startswith("3,"))
    assert "联系人手机 Contact mobile: " in line and "MCC码 MCC: " in line and "银行账号 Account number: " in line

    refused = clerk_client.post(f"{INDEX}{job.pk}/confirm/", follow=True)  # all-or-nothing: nothing written
    assert "2 row(s) are invalid" in refused.content.decode()
    job.refresh_from_db()
    assert job.state == ImportJobState.VALIDATED and Merchant.objects.count() == 0


def test_a_wrong_file_is_refused_on_the_upload_form(clerk_client):
    response = clerk_client.post(INDEX, {"sheet": SimpleUploadedFile("b.csv", "名字,电话\n张三,1\n".encode())})
    assert response.status_code == 400
    assert "no header row found" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_confirm_then_bulk_submit_lists_each_merchant_submitted_or_refused(clerk_client):
    rows = example_rows(3)
    post_upload(clerk_client, rows, documents=documents_zip(rows, skip={"R003": {"id_back"}}))
    job = ImportJob.objects.get()
    clerk_client.post(f"{INDEX}{job.pk}/confirm/")
    page = clerk_client.get(f"{INDEX}{job.pk}/").content.decode()
    assert 'data-count="imported">3<' in page and 'data-count="documents">' in page
    assert "id_back" in page  # R003's missing document is shown before submitting

    response = clerk_client.post(f"{INDEX}{job.pk}/submit/", {"all": "1"})
    assert response.url == f"{INDEX}{job.pk}/submitted/"
    result = clerk_client.get(response.url).content.decode()
    assert result.count('data-outcome="submitted"') == 2
    assert '<tr data-row="4" data-outcome="refused">' in result and "documents missing: id_back" in result


def test_the_progress_endpoint_answers_json_and_an_htmx_fragment(clerk_client):
    post_upload(clerk_client, example_rows(2))
    job = ImportJob.objects.get()
    data = clerk_client.get(f"{INDEX}{job.pk}/progress/").json()
    assert data == {"id": job.pk, "state": "validated", "state_label": "Validated", "running": False,
                    "total_rows": 2, "processed_rows": 2, "percent": 100, "valid_rows": 2, "invalid_rows": 0,
                    "imported_rows": 0}
    fragment = clerk_client.get(f"{INDEX}{job.pk}/progress/", HTTP_HX_REQUEST="true")
    assert fragment["HX-Refresh"] == "true"  # the pass is over: the page reloads to show the preview
    assert '<progress max="100" value="100"' in fragment.content.decode()
    assert "hx-trigger" not in fragment.content.decode()


INJECTIONS = {"ref": "@SUM(1+1)*cmd|' /C calc'!A0", "short_name": "=HYPERLINK(\"http://evil.example\",\"x\")",
              "legal_name": "+1+2 茶馆有限公司", "registered_address": "-2+3+cmd|' /C notepad'!A1",
              "store_name": "=1+1", "industry": "@cmd"}


def _injected_rows():
    rows = example_rows(2)
    rows[0].update(INJECTIONS)
    rows[0]["settlement_account_holder"] = INJECTIONS["legal_name"]  # a corporate account is in the legal name
    return rows


def test_exported_batch_rows_are_safe_against_formula_injection(clerk_client):
    post_upload(clerk_client, _injected_rows())
    job = ImportJob.objects.get()
    clerk_client.post(f"{INDEX}{job.pk}/confirm/")
    assert Merchant.objects.filter(short_name=INJECTIONS["short_name"]).exists()  # valid text, stored as typed

    xlsx = clerk_client.get(f"{INDEX}{job.pk}/rows.xlsx")
    assert xlsx["Content-Type"].startswith("application/vnd.openxmlformats")
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert not [cell.coordinate for cell in cells if cell.data_type == "f"]  # no formula anywhere
    values = {cell.value for cell in cells}
    for key in ("ref", "short_name", "legal_name"):
        assert "'" + INJECTIONS[key] in values
    with zipfile.ZipFile(io.BytesIO(xlsx.content)) as archive:
        assert b"<f>" not in archive.read("xl/worksheets/sheet1.xml")

    csv_text = clerk_client.get(f"{INDEX}{job.pk}/rows.csv").content.decode("utf-8-sig")
    assert "'@SUM(1+1)*cmd|' /C calc'!A0" in csv_text and "'+1+2 茶馆有限公司" in csv_text
    assert not [line for line in csv_text.splitlines() if line.startswith(("=", "+", "-", "@"))]
    exports = AuditLog.objects.filter(action="merchants.batch.exported").order_by("id")
    assert [e.data["format"] for e in exports] == ["xlsx", "csv"]


def test_the_exported_merchant_list_is_masked_and_safe(clerk_client):
    rows = _injected_rows()
    post_upload(clerk_client, rows)
    clerk_client.post(f"{INDEX}{ImportJob.objects.get().pk}/confirm/")
    response = clerk_client.get(INDEX + "merchants.xlsx")
    sheet = load_workbook(io.BytesIO(response.content)).active
    header = [cell.value for cell in sheet[1]]
    assert header[:3] == ["商户号 Merchant no.", "商户状态 Merchant state", "进件状态 Application state"]
    values = {cell.value for row in sheet.iter_rows() for cell in row}
    for key in ("short_name", "registered_address", "store_name", "industry"):
        assert "'" + INJECTIONS[key] in values
    text = " ".join(str(v) for v in values)
    for row in rows:
        assert row["legal_person_id_number"] not in text and row["settlement_account_number"] not in text
        assert row["contact_phone"] not in text
    assert rows[1]["contact_phone"][:3] + "****" + rows[1]["contact_phone"][-4:] in values
    assert AuditLog.objects.get(action="merchants.merchant.list_exported").data == {"rows": 2, "format": "xlsx"}


@pytest.mark.parametrize("trigger", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_trigger_gets_a_leading_quote(trigger):
    assert safe_cell(trigger + "1+1") == "'" + trigger + "1+1"
    assert safe_cell("a" + trigger) == "a" + trigger
    assert safe_cell(42) == 42 and safe_cell(None) is None


def test_the_sample_batch_can_be_downloaded(clerk_client):
    response = clerk_client.get(INDEX + "samples/batch-onboarding-10-documents.zip")
    assert response.status_code == 200
    assert zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))).namelist()[0].startswith("R001/")
    assert clerk_client.get(INDEX + "samples/..%2Fmanage.py").status_code == 404


def test_the_batch_list_shows_each_upload(clerk_client):
    post_upload(clerk_client, example_rows(2), fmt="csv")
    page = clerk_client.get(INDEX).content.decode()
    job = ImportJob.objects.get()
    assert f'href="{reverse("merchants_batch:job", args=[job.pk])}"' in page and "batch.csv" in page
