"""The channel's free text on a risk notice is encrypted at rest (design §5 rule 10; risk.models
ChannelRiskNotice): WeChat writes it for people, and what it says about a punished merchant can carry an owner's
name, ID or card numbers. The row gives it back in clear to the code, the pages mask it, and the database holds
only ciphertext — migration risk 0002 encrypted the rows stored before."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection

from aggpay.crypto import decrypt_text
from risk.models import ChannelRiskNotice
from tests.risk.violations import TEA_SUB, post_violation

pytestmark = pytest.mark.django_db

ID_NUMBER = "330106199001011234"
COLUMNS = ("punish_plan", "punish_description", "risk_description", "company_name")


def _stored(notice_id: int) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM risk_channelrisknotice WHERE id = %s", [notice_id])
        return dict(zip(COLUMNS, cursor.fetchone(), strict=True))


def test_the_channels_words_are_stored_encrypted_and_read_back_in_clear(client, wx, tea_contract):
    post_violation(client, wx, record_id="VR-ENC1", sub_mchid=TEA_SUB, event_id="EV-ENC1",
                   punish_plan=f"关闭支付权限，法人 {ID_NUMBER}")
    notice = ChannelRiskNotice.objects.get()

    stored = _stored(notice.pk)
    for column in ("punish_plan", "punish_description", "risk_description"):
        assert stored[column] and "支付" not in stored[column] and "欺诈" not in stored[column]
        assert decrypt_text(stored[column]) == getattr(notice, column)
    assert ID_NUMBER not in stored["punish_plan"]
    assert notice.punish_plan == f"关闭支付权限，法人 {ID_NUMBER}"
    # The business's registered name stays searchable in the queue (risk.notice_queue's search box).
    assert stored["company_name"] == notice.company_name == "杭州茶馆有限公司"


def test_the_queue_still_shows_the_text_masked(client, wx, tea_contract, risk_zhao):
    post_violation(client, wx, record_id="VR-ENC2", sub_mchid=TEA_SUB, event_id="EV-ENC2",
                   punish_plan=f"关闭支付权限，法人 {ID_NUMBER}")
    client.force_login(risk_zhao)
    page = client.get("/staff/risk/notices/").content.decode()
    assert "关闭支付权限" in page and ID_NUMBER not in page


def test_the_migration_encrypts_the_rows_stored_before_and_reverses(client, wx, tea_contract):
    post_violation(client, wx, record_id="VR-ENC3", sub_mchid=TEA_SUB, event_id="EV-ENC3", punish_plan="旧的明文")
    notice = ChannelRiskNotice.objects.get()
    migration = importlib.import_module("risk.migrations.0002_encrypt_notice_free_text")
    # A row as 0001 stored it: plaintext in the columns (an empty one stays empty).
    with connection.cursor() as cursor:
        cursor.execute("UPDATE risk_channelrisknotice SET punish_plan = %s, punish_description = %s, "
                       "risk_description = %s WHERE id = %s", ["旧的明文", "", "涉嫌欺诈", notice.pk])

    with connection.schema_editor() as editor:
        migration.encrypt_stored(None, editor)
    stored = _stored(notice.pk)
    assert stored["punish_description"] == ""
    assert decrypt_text(stored["punish_plan"]) == "旧的明文" and decrypt_text(stored["risk_description"]) == "涉嫌欺诈"
    notice.refresh_from_db()
    assert (notice.punish_plan, notice.risk_description) == ("旧的明文", "涉嫌欺诈")

    with connection.schema_editor() as editor:
        migration.decrypt_stored(None, editor)
    assert _stored(notice.pk)["punish_plan"] == "旧的明文"
