"""The downloadable batch template: an .xlsx with the merchants sheet and an instructions sheet, or a .csv header.

The merchants sheet has one header row (Chinese + English labels), its columns formatted as text so Excel keeps
every digit of ID and account numbers, drop-down lists on the choice columns, and a note on each header. The sample
batch (samples/make_samples.py) is this template with rows filled in, so the two cannot drift apart.

Pure Python + openpyxl: no Django needed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

from channels.adapters.base import PRODUCTS
from merchants.batch.columns import COLUMNS, NOT_MICRO, REQUIRED

MERCHANTS_SHEET = "商户 Merchants"
INSTRUCTIONS_SHEET = "说明 Instructions"
DOC_TYPES = ("licence", "id_front", "id_back", "store_front", "store_inside", "bank_card", "site_screenshot", "other")
_VALIDATION_ROWS = 5000
_FIXED_TIME = dt.datetime(2026, 1, 1)  # workbook properties: regenerated files differ only where content does

GUIDE = (
    "Fill in one merchant per row of the “商户 Merchants” sheet, under the header row. Keep the headers as they are; "
    "columns that are not in the template are ignored. 每行一个商户，请勿修改表头。",
    "Row numbers in the upload preview are the row numbers Excel shows (the header is row 1). "
    "预览中的行号即 Excel 行号。",
    "The columns are formatted as text so that long numbers (ID, bank account) keep every digit. If you paste from "
    "elsewhere, paste values only. 请保持文本格式，避免长数字被截断。",
    "Dates: YYYY-MM-DD (2030-12-31). For a long-term licence or ID write 长期 or leave “valid until” empty.",
    "Products (申请产品): product codes separated by commas: " + ", ".join(PRODUCTS) + ".",
    "Scenarios (经营场景): type:name:url_or_appid, several separated by ';' — for example "
    "“store:龙井路店;website:官网:https://tea.example.com;mini_program:点单:wx1234567890abcdef”. "
    "A store scenario needs the store columns filled in.",
    "Documents (证件照片, optional): upload a ZIP beside the sheet with one folder per row, named after the row's "
    "ref, holding <doc_type>.jpg, .png or .pdf (at most 5 MB each) — e.g. R001/licence.jpg, R001/id_front.png. "
    "Document types: " + ", ".join(DOC_TYPES) + ". Without a ZIP the drafts are created without documents and you "
    "upload them on each merchant later.",
    "Documents needed before submitting: id_front, id_back and bank_card always; licence unless 小微; store_front and "
    "store_inside for a store scenario or a 小微 merchant; site_screenshot for website/app/mini program/official "
    "account scenarios.",
    "Upload: Onboarding → Batch import. You see a preview of every problem (row, column, reason) before anything is "
    "written; confirming creates all drafts or none, unless you tick “import only the valid rows”.",
)


def template_xlsx(rows: list[dict[str, str]] = ()) -> bytes:
    """The workbook; ``rows`` (column key → cell text) are written under the header (the sample batch)."""
    from openpyxl import Workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    book = Workbook()
    book.properties.creator = "aggpay"
    book.properties.created = book.properties.modified = _FIXED_TIME
    sheet = book.active
    sheet.title = MERCHANTS_SHEET
    required_fill = PatternFill("solid", fgColor="FFE7C2")
    optional_fill = PatternFill("solid", fgColor="E8EFFD")
    for index, column in enumerate(COLUMNS, start=1):
        letter = get_column_letter(index)
        cell = sheet.cell(row=1, column=index, value=column.label)
        cell.font = Font(bold=True)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        cell.fill = required_fill if column.required in (REQUIRED, NOT_MICRO) else optional_fill
        cell.comment = Comment(f"{column.required}. {column.help} e.g. {column.example}".strip(), "aggpay",
                               width=320, height=120)
        sheet.column_dimensions[letter].width = max(12, min(40, len(column.label) + 6))
        sheet.column_dimensions[letter].number_format = "@"
        if column.kind == "choice":
            validation = DataValidation(type="list", formula1='"' + ",".join(column.codes) + '"', allow_blank=True,
                                        showErrorMessage=False)
            validation.add(f"{letter}2:{letter}{_VALIDATION_ROWS}")
            sheet.add_data_validation(validation)
    sheet.freeze_panes = "B2"
    for number, row in enumerate(rows, start=2):
        for index, column in enumerate(COLUMNS, start=1):
            value = row.get(column.key, "")
            cell = sheet.cell(row=number, column=index, value=value if value != "" else None)
            cell.number_format = "@"
            if cell.data_type == "f":  # openpyxl reads a leading "=" as a formula; these are the clerk's words
                cell.data_type = "s"

    guide = book.create_sheet(INSTRUCTIONS_SHEET)
    guide.column_dimensions["A"].width = 30
    guide.column_dimensions["B"].width = 28
    guide.column_dimensions["C"].width = 80
    guide.column_dimensions["D"].width = 36
    guide.cell(row=1, column=1, value="批量进件模板 Batch onboarding template").font = Font(bold=True, size=14)
    line = 3
    for paragraph in GUIDE:
        cell = guide.cell(row=line, column=1, value=paragraph)
        guide.merge_cells(start_row=line, start_column=1, end_row=line, end_column=4)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        guide.row_dimensions[line].height = 48
        line += 1
    line += 1
    for index, title in enumerate(("列 Column", "必填 Required", "说明 Format", "示例 Example"), start=1):
        guide.cell(row=line, column=index, value=title).font = Font(bold=True)
    for column in COLUMNS:
        line += 1
        guide.cell(row=line, column=1, value=column.label)
        guide.cell(row=line, column=2, value=column.required)
        guide.cell(row=line, column=3, value=column.help).alignment = Alignment(wrap_text=True)
        guide.cell(row=line, column=4, value=column.example).number_format = "@"
    book.active = 0

    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def template_csv(rows: list[dict[str, str]] = ()) -> bytes:
    """UTF-8 with a BOM, so Excel opens the Chinese headers correctly."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([column.label for column in COLUMNS])
    for row in rows:
        writer.writerow([row.get(column.key, "") for column in COLUMNS])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
