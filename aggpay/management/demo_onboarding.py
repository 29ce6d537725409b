"""The demo's onboarding desk: five small businesses at the stages a clerk and a risk officer work on (issue 4's
queues), so their home pages open on work rather than on zeros.

Each applicant goes through the same services a clerk and a risk officer use (merchants.services.onboarding), as
the demo users ``clerk`` and ``risk`` when they exist, so every step has its audit row under a name a visitor can
sign in as. Nothing here calls a channel: approval (which submits contracts) is left to the visitor.

Idempotent: an applicant already on file is skipped — found by its licence (or, for a 小微 merchant, owner's ID)
number or by its name, whichever a visitor left as the seed made it: the returned applicant is there to be corrected,
and onboarding the business again under the number it still has would be refused as a duplicate.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Q

from aggpay.management import demo
from merchants.documents import one_colour_png
from merchants.models import Merchant, SubjectType
from merchants.models.merchant import id_number_digest
from merchants.validation import id_card_check_char, org_code_check_char, uscc_check_char


def _licence_no(serial: int) -> str:
    # Characters 9–17 are an organisation code with its own check character (GB 11714), then the whole code's.
    body = f"MA2D{serial:04d}"
    first17 = "91330105" + body + org_code_check_char(body)
    return first17 + uscc_check_char(first17)


def _id_number(serial: int) -> str:
    first17 = f"33010619800101{serial:03d}"
    return first17 + id_card_check_char(first17)


# Where each applicant stops: the queue it fills.
DRAFT_MISSING_DOCUMENTS = "draft, documents missing"
DRAFT_READY = "draft, ready to submit"
WAITING_FOR_RISK = "submitted, waiting for risk"
IN_REVIEW = "in risk review"
RETURNED = "returned for correction"


@dataclass(frozen=True)
class Applicant:
    serial: int
    stage: str
    legal_name: str
    short_name: str
    mcc: str
    industry: str
    store: str
    address: str
    micro: bool = False
    products: tuple[str, ...] = ("wechat.native", "alipay.qr", "unionpay.qr")
    returned_reasons: tuple[tuple[str, str], ...] = field(default=())

    @property
    def identity(self) -> str:
        """The number the duplicate check knows this business by (a 小微 merchant has no licence)."""
        return _id_number(self.serial) if self.micro else _licence_no(self.serial)


APPLICANTS = (
    Applicant(1, DRAFT_MISSING_DOCUMENTS, "杭州龙井面馆有限公司", "龙井面馆", "5812", "餐饮",
              "龙井路店", "浙江省杭州市西湖区龙井路18号"),
    Applicant(2, DRAFT_READY, "李小花", "小花鲜花店", "5992", "鲜花", "西溪店", "浙江省杭州市西湖区文二西路9号",
              micro=True, products=("wechat.native", "alipay.qr")),
    Applicant(3, WAITING_FOR_RISK, "杭州拱墅便民超市有限公司", "拱墅便民超市", "5411", "便利店",
              "湖墅南路店", "浙江省杭州市拱墅区湖墅南路66号"),
    Applicant(4, IN_REVIEW, "杭州滨江健身服务有限公司", "滨江健身", "7997", "健身",
              "江南大道店", "浙江省杭州市滨江区江南大道200号"),
    Applicant(5, RETURNED, "杭州上城烘焙有限公司", "上城烘焙坊", "5462", "烘焙",
              "解放路店", "浙江省杭州市上城区解放路31号",
              returned_reasons=(("licence", "营业执照照片模糊，请重新拍摄上传"),
                                ("stores[0].name", "门头照上的店名与申请的门店名称不符"))),
)


def _record(applicant: Applicant) -> dict:
    person = "李小花" if applicant.micro else "王" + applicant.short_name[:1] + "明"
    data = {
        "subject_type": "micro" if applicant.micro else "enterprise",
        "legal_name": applicant.legal_name,
        "short_name": applicant.short_name,
        "licence_no": "" if applicant.micro else _licence_no(applicant.serial),
        "licence_valid_from": None if applicant.micro else "2021-03-01",
        "licence_valid_until": None,
        "registered_address": applicant.address,
        "legal_person_name": person,
        "legal_person_id_type": "id_card",
        "legal_person_id_number": _id_number(applicant.serial),
        "legal_person_id_valid_from": "2018-06-01",
        "legal_person_id_valid_until": "2038-06-01",
        "contact_name": person,
        "contact_phone": f"1390571{applicant.serial:04d}",
        "contact_email": f"shop{applicant.serial}@example.com",
        "service_phone": f"0571-8600{applicant.serial:04d}",
        "mcc": applicant.mcc,
        "industry": applicant.industry,
        "requested_products": list(applicant.products),
        "scenarios": [{"type": "store", "name": applicant.store}],
        "stores": [{"store_no": "S001", "name": applicant.store, "area_code": "330106",
                    "address": applicant.address}],
        "settlement_account": {
            "account_type": "personal" if applicant.micro else "corporate",
            "bank_name": "中国工商银行",
            "bank_branch": "杭州分行",
            "bank_branch_code": "102331000015",
            "account_number": f"62220210010{applicant.serial:08d}",
            "account_holder": person if applicant.micro else applicant.legal_name,
        },
    }
    return copy.deepcopy(data)


def _on_file(applicant: Applicant) -> Merchant | None:
    """The merchant the seed made for ``applicant``, however it was corrected since (any state: one risk rejected is
    the visitor's work too, not a gap to fill)."""
    if applicant.micro:
        identity = Q(subject_type=SubjectType.MICRO, legal_person_id_digest=id_number_digest(applicant.identity))
    else:
        identity = Q(licence_no=applicant.identity)
    return Merchant.objects.filter(identity | Q(legal_name=applicant.legal_name)).order_by("pk").first()


def _staff(username: str):
    """The demo user a visitor can sign in as, or the seed's label when the staff users were skipped."""
    return get_user_model().objects.filter(username=username).first() or demo.SEED_ACTOR


def demo_onboarding_seed() -> list[str]:
    """Create the applicants that are missing; returns a line per applicant for the seed's report."""
    from merchants.services.onboarding import (
        application_return,
        application_review_start,
        application_submit,
        document_add,
        merchant_onboard_draft,
        missing_documents,
    )

    clerk, risk = _staff(demo.DEMO_USERNAMES["onboarding_clerk"]), _staff(demo.DEMO_USERNAMES["risk_officer"])
    lines = []
    for applicant in APPLICANTS:
        existing = _on_file(applicant)
        if existing is not None:
            lines.append(f"exists  applicant {existing.merchant_no} {applicant.short_name!r} ({applicant.stage})")
            continue
        application = merchant_onboard_draft(actor=clerk, data=_record(applicant))
        merchant = application.merchant
        needed = missing_documents(merchant)
        # The first applicant has only its ID photos so far: the clerk's draft queue shows what is missing.
        uploads = [d for d in needed if d.startswith("id_")] if applicant.stage == DRAFT_MISSING_DOCUMENTS else needed
        for number, doc_type in enumerate(uploads):
            document_add(merchant_id=merchant.pk, actor=clerk, doc_type=doc_type, uploaded_file=SimpleUploadedFile(
                f"{doc_type}.png", one_colour_png(applicant.serial * 16 + number), content_type="image/png"))
        if applicant.stage in (WAITING_FOR_RISK, IN_REVIEW, RETURNED):
            application_submit(application_id=application.pk, actor=clerk)
        if applicant.stage in (IN_REVIEW, RETURNED):
            application_review_start(application_id=application.pk, actor=risk)
        if applicant.stage == RETURNED:
            application_return(application_id=application.pk, actor=risk, reasons=[
                {"field": name, "reason": reason} for name, reason in applicant.returned_reasons])
        lines.append(f"created applicant {merchant.merchant_no} {applicant.short_name!r} ({applicant.stage})")
    return lines
