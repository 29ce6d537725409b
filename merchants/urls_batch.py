"""Batch onboarding pages, mounted at /staff/onboarding/batch/ by aggpay/urls.py (namespace ``merchants_batch``)."""

from django.urls import path, re_path

from merchants import views_batch as views

app_name = "merchants_batch"

FMT = r"(?P<fmt>xlsx|csv)"

urlpatterns = [
    path("", views.index, name="index"),
    re_path(rf"^template\.{FMT}$", views.template_download, name="template"),
    path("samples/<str:name>", views.sample_download, name="sample"),
    re_path(rf"^merchants\.{FMT}$", views.export_merchants, name="merchants_export"),
    path("<int:job_id>/", views.job_detail, name="job"),
    path("<int:job_id>/progress/", views.progress, name="progress"),
    path("<int:job_id>/confirm/", views.confirm, name="confirm"),
    path("<int:job_id>/submit/", views.submit, name="submit"),
    path("<int:job_id>/submitted/", views.submitted, name="submitted"),
    re_path(rf"^(?P<job_id>\d+)/rows\.{FMT}$", views.export_rows, name="export"),
]
