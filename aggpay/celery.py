"""The Celery app. Queues: default, notify, channel, recon (design §3); settings under CELERY_* in settings.py.

Without CELERY_BROKER_URL tasks run eagerly in-process (the embedded default); with it they go to the broker.
Periodic jobs are declared in code in ``beat_schedule`` and synced into django-celery-beat's database scheduler.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aggpay.settings")

app = Celery("aggpay")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic jobs, declared in code (style.md §11). Later issues add sweepers here.
app.conf.beat_schedule = {
    "aggpay-heartbeat": {"task": "aggpay.tasks.heartbeat", "schedule": 300.0},
    # Onboarding reviews are polled where the channel sends no notification (channel-protocols.md A.13).
    "merchants-poll-due-contracts": {"task": "merchants.tasks.poll_due_contracts", "schedule": 60.0},
    # Merchant notifications: retries on the contract's ladder, and whatever a broker outage or a lost worker
    # left behind (design §5 rule 8).
    "trades-sweep-deliveries": {"task": "trades.tasks.sweep_deliveries", "schedule": 60.0},
    # Orders and refunds whose outcome is unknown are queried on the ladder; overdue orders expire (design §5).
    "trades-sync-due-orders": {"task": "trades.tasks_orders.sync_due_orders", "schedule": 60.0},
    "merchants-poll-due-settlement-changes": {"task": "merchants.tasks.poll_due_settlement_changes",
                                              "schedule": 60.0},
}
