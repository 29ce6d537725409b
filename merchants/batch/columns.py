"""The batch sheet's columns: one per field of the merchant record (issue 4 "The merchant record"), flattened.

A column knows its header label (Chinese + English, as the clerk sees it), where its value goes in the record that
``validate_record`` checks, and what the template's instructions say about it. ``InvalidRequest.param`` values
(``settlement_account.account_number``, ``stores[0].address``, ``scenarios[1].url``) map back to a column here, so
the preview can name the column a clerk has to fix.

Pure Python: no Django imports (samples/make_samples.py builds the sample sheet without a database).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Machine-readable values with the words clerks actually type for them (the widgets map these aliases).
SUBJECT_TYPES = {"enterprise": "enterprise", "企业": "enterprise", "individual_business": "individual_business",
                 "个体工商户": "individual_business", "个体户": "individual_business", "个体": "individual_business",
                 "micro": "micro", "小微": "micro", "小微商户": "micro"}
ID_TYPES = {"id_card": "id_card", "身份证": "id_card", "居民身份证": "id_card", "passport": "passport", "护照": "passport",
            "hk_macao_permit": "hk_macao_permit", "港澳居民来往内地通行证": "hk_macao_permit",
            "taiwan_permit": "taiwan_permit", "台湾居民来往大陆通行证": "taiwan_permit",
            "foreign_resident": "foreign_resident", "外国人永久居留身份证": "foreign_resident"}
ACCOUNT_TYPES = {"corporate": "corporate", "对公": "corporate", "对公账户": "corporate",
                 "personal": "personal", "对私": "personal", "对私账户": "personal", "个人": "personal"}
SCENARIO_TYPES = {"store": "store", "门店": "store", "线下门店": "store", "website": "website", "网站": "website",
                  "app": "app", "应用": "app", "mini_program": "mini_program", "小程序": "mini_program",
                  "official_account": "official_account", "公众号": "official_account"}

REQUIRED = "required"
OPTIONAL = "optional"
NOT_MICRO = "required, except for 小微 (micro)"


@dataclass(frozen=True)
class Column:
    key: str  # attribute on the import row and the import-export field name
    zh: str
    en: str
    path: tuple  # where the value goes in validate_record's input, e.g. ("settlement_account", "bank_name")
    required: str
    example: str
    help: str
    kind: str = "text"  # text | date | choice | products | scenarios
    choices: dict = field(default_factory=dict)  # alias → code, for choice columns

    @property
    def label(self) -> str:
        """The header cell: Chinese first (the clerk's language), English for everyone else."""
        return f"{self.zh} {self.en}"

    @property
    def codes(self) -> list[str]:
        return list(dict.fromkeys(self.choices.values()))


COLUMNS: tuple[Column, ...] = (
    Column("ref", "参考号", "Ref", ("ref",), OPTIONAL, "R001",
           "Your own reference for the row, unique in the file. Documents in the ZIP are matched by it: "
           "<ref>/<doc_type>.jpg|png|pdf."),
    Column("subject_type", "主体类型", "Subject type", ("subject_type",), REQUIRED, "enterprise",
           "enterprise (企业), individual_business (个体工商户) or micro (小微).", kind="choice",
           choices=SUBJECT_TYPES),
    Column("legal_name", "商户全称", "Legal name", ("legal_name",), REQUIRED, "杭州西湖茶馆有限公司",
           "As printed on the business licence (小微: the name the merchant trades under)."),
    Column("short_name", "商户简称", "Short name", ("short_name",), REQUIRED, "西湖茶馆",
           "Shown to payers on their receipts; at most 64 characters."),
    Column("licence_no", "统一社会信用代码", "Licence no. (USCC)", ("licence_no",), NOT_MICRO, "91330106MA2B00000U",
           "18 characters; the last is a check character. Left empty for 小微."),
    Column("licence_valid_from", "执照起始日", "Licence valid from", ("licence_valid_from",), NOT_MICRO,
           "2020-01-01", "YYYY-MM-DD.", kind="date"),
    Column("licence_valid_until", "执照截止日", "Licence valid until", ("licence_valid_until",), OPTIONAL, "长期",
           "YYYY-MM-DD, or 长期 / empty for a long-term licence.", kind="date"),
    Column("registered_address", "注册地址", "Registered address", ("registered_address",), OPTIONAL,
           "浙江省杭州市西湖区龙井路1号",
           "As on the licence (小微: the owner's address). WeChat Pay also takes it as the ID card address."),
    Column("legal_person_name", "法人姓名", "Legal person", ("legal_person_name",), REQUIRED, "张三",
           "The legal representative (小微: the owner)."),
    Column("legal_person_id_type", "法人证件类型", "ID type", ("legal_person_id_type",), OPTIONAL, "id_card",
           "id_card (身份证, the default), passport, hk_macao_permit, taiwan_permit or foreign_resident.",
           kind="choice", choices=ID_TYPES),
    Column("legal_person_id_number", "法人证件号", "ID number", ("legal_person_id_number",), REQUIRED,
           "11010519491231002X", "A resident ID has 17 digits and a check digit or X."),
    Column("legal_person_id_valid_from", "证件起始日", "ID valid from", ("legal_person_id_valid_from",), REQUIRED,
           "2015-05-01", "YYYY-MM-DD.", kind="date"),
    Column("legal_person_id_valid_until", "证件截止日", "ID valid until", ("legal_person_id_valid_until",), OPTIONAL,
           "2035-05-01", "YYYY-MM-DD, or 长期 / empty for a long-term ID.", kind="date"),
    Column("contact_name", "联系人", "Contact name", ("contact_name",), REQUIRED, "李四",
           "Who the channels contact about the application."),
    Column("contact_phone", "联系人手机", "Contact mobile", ("contact_phone",), REQUIRED, "13800138000",
           "A mainland mobile number, 11 digits."),
    Column("contact_email", "联系邮箱", "Contact e-mail", ("contact_email",), OPTIONAL, "li.si@example.com", ""),
    Column("service_phone", "客服电话", "Service phone", ("service_phone",), REQUIRED, "0571-88888888",
           "Shown to payers: a mobile, a landline with area code, or a 400/95 number."),
    Column("mcc", "MCC码", "MCC", ("mcc",), REQUIRED, "5814", "4-digit merchant category code."),
    Column("industry", "行业", "Industry", ("industry",), OPTIONAL, "餐饮", ""),
    Column("requested_products", "申请产品", "Products", ("requested_products",), REQUIRED,
           "wechat.native, alipay.qr, unionpay.qr", "Product codes separated by commas.", kind="products"),
    Column("scenarios", "经营场景", "Scenarios", ("scenarios",), REQUIRED, "store:龙井路店",
           "type:name:url_or_appid, several separated by ';'. Types: store, website (with its https:// URL), "
           "app, mini_program, official_account (with the appid).", kind="scenarios"),
    Column("store_no", "门店编号", "Store no.", ("stores", 0, "store_no"), "required for a store scenario", "S001",
           "Your id for the (first) store."),
    Column("store_name", "门店名称", "Store name", ("stores", 0, "name"), "required for a store scenario", "龙井路店", ""),
    Column("store_area_code", "门店地区码", "Store area code", ("stores", 0, "area_code"),
           "required for a store scenario", "330106", "6-digit administrative division code (行政区划代码)."),
    Column("store_address", "门店地址", "Store address", ("stores", 0, "address"), "required for a store scenario",
           "龙井路1号", ""),
    Column("settlement_account_type", "账户类型", "Account type", ("settlement_account", "account_type"), REQUIRED,
           "corporate", "corporate (对公, enterprises) or personal (对私, 小微; 个体户 may use either).",
           kind="choice", choices=ACCOUNT_TYPES),
    Column("settlement_bank_name", "开户银行", "Bank", ("settlement_account", "bank_name"), REQUIRED, "招商银行", ""),
    Column("settlement_bank_branch", "开户支行", "Branch", ("settlement_account", "bank_branch"), OPTIONAL,
           "杭州西湖支行", ""),
    Column("settlement_bank_branch_code", "联行号", "Branch code (CNAPS)", ("settlement_account", "bank_branch_code"),
           OPTIONAL, "308331012345", "12-digit CNAPS code of the branch."),
    Column("settlement_account_number", "银行账号", "Account number", ("settlement_account", "account_number"),
           REQUIRED, "571234567890123", "8 to 30 digits. Keep the column as text so Excel keeps every digit."),
    Column("settlement_account_holder", "开户名", "Account holder", ("settlement_account", "account_holder"),
           REQUIRED, "杭州西湖茶馆有限公司",
           "The legal name for a corporate account; the legal person's name for a personal one."),
)
COLUMNS_BY_KEY = {column.key: column for column in COLUMNS}

# Columns that must be present in every sheet (a row may still leave some empty where the record allows it).
REQUIRED_COLUMNS = tuple(c.key for c in COLUMNS if c.required in (REQUIRED, NOT_MICRO))

# Not a sheet column: where problems with a row's files in the documents ZIP are reported.
DOCUMENTS_COLUMN = Column("documents", "证件照片", "Documents (ZIP)", (), OPTIONAL, "", "")


def _normalise(text: str) -> str:
    return re.sub(r"[\s_*:：()（）.\-/]+", "", str(text)).lower()


_HEADER_ALIASES: dict[str, str] = {}
for _column in COLUMNS:
    for _alias in (_column.key, _column.label, _column.zh, _column.en, f"{_column.label} ({_column.key})"):
        _HEADER_ALIASES.setdefault(_normalise(_alias), _column.key)


def column_for_header(header) -> str | None:
    """The column key a header cell names: the template's label, or its Chinese, English or key part alone."""
    if header is None:
        return None
    return _HEADER_ALIASES.get(_normalise(header))


_PATH_TO_KEY = {c.path: c.key for c in COLUMNS}
_PARAM_PART = re.compile(r"([A-Za-z_]+)(?:\[(\d+)\])?")
# Whole-collection params name the first column of their group ("settlement_account is required").
_GROUP_PARAMS = {"settlement_account": "settlement_account_type", "stores": "store_no"}


def column_for_param(param: str | None) -> str | None:
    """Map an ``InvalidRequest.param`` back to the sheet column; None when it names no single column."""
    if not param:
        return None
    if param in _GROUP_PARAMS:
        return _GROUP_PARAMS[param]
    parts: list = []
    for match in _PARAM_PART.finditer(param):
        parts.append(match.group(1))
        if match.group(2) is not None:
            parts.append(int(match.group(2)))
    while parts:
        key = _PATH_TO_KEY.get(tuple(parts))
        if key is not None:
            return key
        if parts[0] == "stores" and len(parts) > 1:  # stores[i] with i > 0 cannot come from a one-store row
            return "store_no"
        if parts[0] == "scenarios":
            return "scenarios"
        parts.pop()
    return None


# Param names inside messages ("licence_valid_until must be after licence_valid_from") read better as the labels
# the clerk sees in the header row.
_PLAIN_PARAMS = sorted([c.key for c in COLUMNS if len(c.path) == 1 and c.key != "ref"] + list(_GROUP_PARAMS),
                       key=len, reverse=True)
_PARAM_IN_TEXT = re.compile(
    r"(?<![A-Za-z_.\[])(settlement_account\.[a-z_]+|stores\[\d+\]\.[a-z_]+|scenarios\[\d+\](?:\.[a-z_]+)?|"
    + "|".join(_PLAIN_PARAMS) + r")(?![A-Za-z_])"
)


_GROUP_WORDS = {"settlement_account": "the settlement account (结算账户)", "stores": "stores (门店)"}


def readable_message(message: str) -> str:
    def label(match: re.Match) -> str:
        param = match.group(1)
        if param in _GROUP_WORDS:
            return _GROUP_WORDS[param]
        key = column_for_param(param)
        if key is None:
            return param
        scenario = re.fullmatch(r"scenarios\[(\d+)\](?:\.([a-z_]+))?", param)
        if scenario:
            detail = f"#{int(scenario.group(1)) + 1}" + (f" {scenario.group(2)}" if scenario.group(2) else "")
            return f"“{COLUMNS_BY_KEY[key].label}” ({detail})"
        return f"“{COLUMNS_BY_KEY[key].label}”"

    return _PARAM_IN_TEXT.sub(label, message)
