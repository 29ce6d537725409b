"""How many documents, and how many bytes, a partner's create may carry (docs/api.md "Partner onboarding"): a body
over the 8 MB request limit and more than 20 inline documents are 400s that name the field to change and say how
to send the rest; nothing is created."""

from __future__ import annotations

import pytest

from aggpay.errors import InvalidRequest
from merchants.models import Document, Merchant
from merchants.services.partner import MAX_CREATE_DOCUMENTS, partner_merchant_create
from tests.merchants.records import png, png_bytes, record
from tests.merchants.test_partner_api import document

pytestmark = pytest.mark.django_db


@pytest.fixture
def partner(signed_api, westlake_app):
    return signed_api(westlake_app)


def test_a_create_whose_photos_exceed_the_body_limit_names_documents_and_the_way_to_send_them(partner):
    # 3 MB photos: 4 MB each as base64, under the 5 MB document limit, three over the 8 MB body limit
    photos = [document(doc_type, content=png_bytes(doc_type, size=3 * 1024 * 1024))
              for doc_type in ("licence", "id_front", "id_back")]
    response = partner.post("/api/v1/merchants", json={**record(), "documents": photos})
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_request", "documents")
    assert "8 MB" in error["message"] and "/documents" in error["message"]
    assert not Merchant.objects.filter(partner__isnull=False).exists()


def test_a_document_upload_over_the_body_limit_names_its_content(partner):
    merchant_no = partner.post("/api/v1/merchants", json=record()).json()["merchant_no"]
    huge = document("licence", content=png_bytes("licence", size=7 * 1024 * 1024))
    response = partner.post(f"/api/v1/merchants/{merchant_no}/documents", json=huge)
    assert response.status_code == 400, response.json()
    assert (response.json()["error"]["param"], "8 MB" in response.json()["error"]["message"]) == (
        "content_base64", True)
    assert not Document.objects.exists()


def test_a_create_carries_at_most_20_documents(partner):
    many = [document("store_inside", filename=f"inside{n}.png") for n in range(MAX_CREATE_DOCUMENTS + 1)]
    response = partner.post("/api/v1/merchants", json={**record(), "documents": many})
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == "documents"
    assert not Merchant.objects.filter(partner__isnull=False).exists()

    response = partner.post("/api/v1/merchants", json={**record(), "documents": many[:MAX_CREATE_DOCUMENTS]})
    assert response.status_code == 201, response.json()
    assert len(response.json()["documents"]) == MAX_CREATE_DOCUMENTS == 20


def test_the_service_refuses_more_than_20_documents_naming_documents(westlake_agency):
    documents = [("store_inside", png(f"inside{n}.png")) for n in range(MAX_CREATE_DOCUMENTS + 1)]
    with pytest.raises(InvalidRequest) as refused:
        partner_merchant_create(partner=westlake_agency, actor="api:app_westlake0001", data=record(),
                                documents=documents)
    assert refused.value.param == "documents"
    assert not Merchant.objects.filter(partner=westlake_agency).exists()
