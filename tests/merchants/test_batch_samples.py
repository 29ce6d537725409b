"""The sample batch shipped in samples/: it is what samples/make_samples.py writes, it imports cleanly with every
document, and — as a new user would try it in the demo — its merchants reach the channels and become active."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import pytest
import requests
from django.core.files.uploadedfile import SimpleUploadedFile

from merchants.batch import services
from merchants.batch.examples import needed_documents
from merchants.batch.reader import read_sheet
from merchants.models import ApplicationState, ContractState, ImportJobState, Merchant, MerchantState

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
sys.path.insert(0, str(SAMPLES))
import make_samples  # noqa: E402

SHEET, DOCUMENTS = SAMPLES / make_samples.SHEET, SAMPLES / make_samples.DOCUMENTS


def upload(path: Path) -> SimpleUploadedFile:
    return SimpleUploadedFile(path.name, path.read_bytes())


def test_the_shipped_files_are_what_make_samples_writes(tmp_path):
    make_samples.main(["--out", str(tmp_path)])
    expected = make_samples.sample_rows()
    shipped = read_sheet(SHEET.read_bytes(), "xlsx", max_rows=100)
    regenerated = read_sheet((tmp_path / make_samples.SHEET).read_bytes(), "xlsx", max_rows=100)
    as_text = [{key: value or "" for key, value in values.items()} for _number, values in shipped.rows]
    assert as_text == [{key: value or "" for key, value in values.items()} for _n, values in regenerated.rows]
    assert as_text == expected
    assert DOCUMENTS.read_bytes() == (tmp_path / make_samples.DOCUMENTS).read_bytes()


def test_the_sample_requests_only_what_the_demo_channel_accounts_onboard():
    for row in make_samples.sample_rows():
        products = {p.strip() for p in row["requested_products"].split(",")}
        assert products and all(p.split(".")[0] in ("wechat", "alipay", "unionpay") for p in products)
    kinds = {row["subject_type"] for row in make_samples.sample_rows()}
    assert kinds == {"enterprise", "individual_business", "micro"}


@pytest.mark.django_db
def test_the_sample_batch_imports_with_all_its_documents_and_every_draft_can_be_submitted(
        staff_member, django_capture_on_commit_callbacks):
    clerk = staff_member("onboarding_clerk")
    with django_capture_on_commit_callbacks(execute=True):
        job = services.import_job_create(actor=clerk, sheet=upload(SHEET), documents=upload(DOCUMENTS))
        job = services.import_job_confirm(job_id=job.pk, actor=clerk)

    assert job.state == ImportJobState.DONE and job.imported_rows == 10 and not job.warnings
    with zipfile.ZipFile(io.BytesIO(DOCUMENTS.read_bytes())) as archive:
        assert job.documents_attached == len(archive.namelist()) == sum(
            len(needed_documents(row)) for row in make_samples.sample_rows())
    rows = services.import_job_bulk_submit(job_id=job.pk, actor=clerk)
    assert [(row.ref, row.submit_outcome) for row in rows] == [(f"R{i:03d}", "submitted") for i in range(1, 11)]


def _account(code, kind, root, config):
    from channels.models import ChannelAccount

    return ChannelAccount.objects.create(code=code, kind=kind, name=code, base_url=f"{root}/{kind}", config=config,
                                         enabled=True)


@pytest.mark.slow
def test_the_sample_merchants_reach_the_channels_and_become_active(
        transactional_db, live_server, simulator_server, settings, staff_member):
    from channels.simulators import alipay as alipay_sim
    from channels.simulators import bank as bank_sim
    from channels.simulators import wechatpay as wechat_sim
    from merchants.services.onboarding import application_approve, application_review_start
    from tests.merchants.conftest import offer

    settings.AGGPAY_PUBLIC_BASE_URL = live_server.url  # the bank's apply notify comes back here
    root = simulator_server.base_url
    wechat = _account("wechatpay-isv", "wechatpay", root, wechat_sim.provision(root, name="batch-wechat"))
    alipay = _account("alipay-isv", "alipay", root, alipay_sim.provision(
        root, name="batch-alipay", message_url=f"{live_server.url}/callbacks/alipay-isv/"))
    bank_a = _account("bank-a", "bank", root, bank_sim.provision(root, name="batch-bank-a",
                                                                  settings={"auto_review": None}))
    for product in ("wechat.native", "wechat.barcode"):
        offer(wechat, product, "0.0030")
    for product in ("alipay.qr", "alipay.barcode"):
        offer(alipay, product, "0.0028")
    for product in ("wechat.native", "wechat.barcode", "alipay.qr", "alipay.barcode", "unionpay.qr"):
        offer(bank_a, product, "0.0020")
    clerk, risk = staff_member("onboarding_clerk"), staff_member("risk_officer")

    job = services.import_job_create(actor=clerk, sheet=upload(SHEET), documents=upload(DOCUMENTS))
    job = services.import_job_confirm(job_id=job.pk, actor=clerk)
    services.import_job_bulk_submit(job_id=job.pk, actor=clerk)
    for row in job.rows.all():
        application_review_start(application_id=row.application_id, actor=risk)
        application_approve(application_id=row.application_id, actor=risk)  # commits: Celery submits (eager)

    merchants = Merchant.objects.filter(pk__in=job.rows.values("merchant_id"))
    contracts = [contract for merchant in merchants for contract in merchant.contracts.all()]
    assert len(contracts) == 30  # each sample merchant on WeChat, Alipay and Bank A
    refused = [(c.merchant.short_name, c.channel_account.code, c.state, c.rejection_reasons) for c in contracts
               if c.state not in (ContractState.SUBMITTED, ContractState.AUDITING)]
    assert not refused  # the strict simulators accepted every sample application
    assert all(contract.channel_application_id for contract in contracts)

    for contract in contracts:
        if contract.channel_account_id == bank_a.pk:
            requests.post(f"{root}/bank/_control/applications/{contract.channel_application_id}",
                          json={"action": "approve"}, timeout=5).raise_for_status()
    requests.post(f"{root}/bank/_control/flush", timeout=30).raise_for_status()
    assert sorted(merchants.values_list("state", flat=True)) == [MerchantState.ACTIVE] * 10
    assert set(job.rows.values_list("application__state", flat=True)) == {ApplicationState.COMPLETED}
