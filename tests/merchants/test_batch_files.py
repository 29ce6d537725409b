"""Reading and writing batch files: header matching, Excel row numbers, cells Excel has damaged, the column ↔
param mapping the preview relies on, the documents ZIP layout, and the example merchants behind the samples."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from openpyxl import Workbook

from aggpay.errors import InvalidRequest
from merchants.batch import cells
from merchants.batch.columns import COLUMNS, column_for_header, column_for_param, readable_message
from merchants.batch.documents import DocumentsZip
from merchants.batch.examples import documents_zip, example_rows, needed_documents, png
from merchants.batch.reader import read_sheet
from merchants.batch.template import DOC_TYPES
from merchants.models import DocumentType
from merchants.resources import SheetRow, sheet_field
from merchants.services.record import required_documents, validate_record
from merchants.validation import validate_id_number, validate_licence_no


def workbook(rows: list[list]) -> bytes:
    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


HEADERS = [column.label for column in COLUMNS]


def test_headers_are_recognised_by_label_chinese_english_or_key():
    assert column_for_header("商户简称 Short name") == "short_name"
    assert column_for_header(" 商户简称 ") == "short_name"
    assert column_for_header("Short name") == "short_name"
    assert column_for_header("SHORT_NAME") == "short_name"
    assert column_for_header("银行账号 Account number") == "settlement_account_number"
    assert column_for_header("Remarks") is None


@pytest.mark.parametrize(("param", "column"), [
    ("licence_no", "licence_no"), ("settlement_account.account_holder", "settlement_account_holder"),
    ("stores[0].area_code", "store_area_code"), ("stores", "store_no"), ("scenarios[2].url", "scenarios"),
    ("settlement_account", "settlement_account_type"), ("requested_products", "requested_products"), (None, None),
])
def test_every_record_param_maps_back_to_a_sheet_column(param, column):
    assert column_for_param(param) == column


def test_messages_name_columns_as_the_clerk_sees_them():
    assert readable_message("licence_valid_until must be after licence_valid_from") == (
        "“执照截止日 Licence valid until” must be after “执照起始日 Licence valid from”")
    assert readable_message("scenarios[1].url must start with http:// or https://") == (
        "“经营场景 Scenarios” (#2 url) must start with http:// or https://")


def test_the_row_numbers_are_the_ones_excel_shows_even_below_a_title_and_across_blank_rows():
    rows = [["2026 batch — 杭州"], [], HEADERS, ["R1", "enterprise"], [None] * 5, [], ["R2", "micro"]]
    sheet = read_sheet(workbook(rows), "xlsx", max_rows=10)
    assert [(number, values["ref"]) for number, values in sheet.rows] == [(4, "R1"), (7, "R2")]


def test_the_merchants_sheet_is_found_even_when_another_sheet_was_active():
    book = Workbook()
    book.active.title = "说明"
    book.active.append(["read me"])
    data = book.create_sheet("Merchants")
    data.append(HEADERS)
    data.append(["R1"])
    book.active = 0
    out = io.BytesIO()
    book.save(out)
    assert read_sheet(out.getvalue(), "xlsx", max_rows=5).rows[0][0] == 2


def test_unknown_columns_are_ignored_with_a_warning_and_a_repeated_column_is_refused():
    sheet = read_sheet(workbook([[*HEADERS, "备注 Remarks"], ["R1"]]), "xlsx", max_rows=5)
    assert sheet.warnings == ["column AF “备注 Remarks” is not in the template and was ignored"]
    with pytest.raises(InvalidRequest, match="appears twice"):
        read_sheet(workbook([[*HEADERS, "Short name"], ["R1"]]), "xlsx", max_rows=5)


def test_too_many_rows_are_refused():
    with pytest.raises(InvalidRequest, match="more than 2 merchant rows"):
        read_sheet(workbook([HEADERS, ["R1"], ["R2"], ["R3"]]), "xlsx", max_rows=2)


def test_a_long_number_excel_has_rounded_is_refused_rather_than_guessed():
    assert cells.text(330106199001011.0) == "330106199001011"  # 15 digits survive
    with pytest.raises(cells.CellError, match="15 significant digits"):
        cells.text(6.222021234567890e18)
    assert cells.text(5814) == "5814" and cells.text(dt.datetime(2020, 1, 2, 0, 0)) == "2020-01-02"


@pytest.mark.parametrize(("value", "expected"), [
    ("2020/1/2", dt.date(2020, 1, 2)), ("2020年1月2日", dt.date(2020, 1, 2)), ("20200102", dt.date(2020, 1, 2)),
    ("长期", None), ("", None), ("02-01-2020", "02-01-2020"), ("2020/13/40", "2020/13/40"),
    ("2020-1-2", dt.date(2020, 1, 2)), ("2020-01-02", dt.date(2020, 1, 2)), ("2020.1.2", dt.date(2020, 1, 2)),
    ("2020-1/2", "2020-1/2"),  # separators mixed: not one of the usual ways, validation names the field
])
def test_dates_are_read_in_the_usual_ways_and_anything_else_is_left_for_validation(value, expected):
    assert cells.date_value(value) == expected


def test_scenarios_and_products_are_split_as_the_instructions_say():
    assert cells.scenarios("门店:龙井路店；website:官网:https://tea.example.com/a?b=1;小程序:点单:wx12") == [
        {"type": "store", "name": "龙井路店"},
        {"type": "website", "name": "官网", "url": "https://tea.example.com/a?b=1"},
        {"type": "mini_program", "name": "点单", "appid": "wx12"}]
    assert cells.products("wechat.native，alipay.qr; unionpay.qr") == ["wechat.native", "alipay.qr", "unionpay.qr"]
    assert cells.choice("个体户", {"个体户": "individual_business"}) == "individual_business"


def test_the_documents_zip_layout_is_read_with_its_problems():
    rows = example_rows(2)
    index = DocumentsZip.from_bytes(documents_zip(rows))
    assert [document.doc_type for document in index.for_ref("r001")] == sorted(needed_documents(rows[0]))
    assert index.read(index.for_ref("R001")[0]).startswith(b"\x89PNG")
    with pytest.raises(InvalidRequest, match="not a ZIP archive"):
        DocumentsZip.from_bytes(b"PK not really")


def test_the_template_names_every_document_type():
    assert sorted(DOC_TYPES) == sorted(DocumentType.values)


def test_the_example_merchants_are_valid_records_with_correct_check_characters():
    for row in example_rows(40, seed=7):
        if row["licence_no"]:
            assert validate_licence_no(row["licence_no"]) == row["licence_no"]
        assert validate_id_number(row["legal_person_id_number"]) == row["legal_person_id_number"]
        sheet_row = SheetRow(2)
        for key, value in row.items():
            setattr(sheet_row, key, sheet_field(key).widget.clean(value))
        record = validate_record(sheet_row.record())
        assert needed_documents(row) == sorted(required_documents(
            subject_type=record.merchant["subject_type"], scenarios=record.merchant["scenarios"]))


def test_the_generated_pictures_are_real_pngs():
    from zlib import decompress

    picture = png(20, 12, colour=(10, 20, 30), stripe=3)
    assert picture.startswith(b"\x89PNG\r\n\x1a\n") and b"IHDR" in picture and picture.endswith(b"IEND\xaeB`\x82")
    start = picture.index(b"IDAT") + 4
    raw = decompress(picture[start:picture.index(b"IEND") - 8])
    assert len(raw) == 12 * (1 + 20 * 3)
