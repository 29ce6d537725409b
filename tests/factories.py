"""factory_boy factories for volume; named personas live in conftest.py."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from merchants.models import Merchant, MerchantApp


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    is_staff = True
    password = factory.django.Password("correct horse battery")


class MerchantFactory(factory.django.DjangoModelFactory):
    """A merchant row. Its state is protected: use merchants.services to move it (see ``active_merchant``)."""

    class Meta:
        model = Merchant

    merchant_no = factory.Sequence(lambda n: f"M26112600{n:06d}")
    legal_name = factory.Sequence(lambda n: f"Hangzhou Tea House No.{n} Co., Ltd.")
    short_name = factory.Sequence(lambda n: f"Tea House {n}")


class MerchantAppFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MerchantApp

    merchant = factory.SubFactory(MerchantFactory)
    app_id = factory.Sequence(lambda n: f"app_test{n:08d}")
    scopes = factory.LazyFunction(lambda: ["payments"])
    sign_type = "hmac"
    secret = factory.Sequence(lambda n: f"test-secret-{n:04d}-0123456789abcdef")
    notify_url = "http://127.0.0.1:9/notify"
