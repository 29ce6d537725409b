"""Staff shell URLs (namespace ``staff``). Channel pages are mounted separately at /staff/channels/, merchant pages
at /staff/merchants/."""

from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from aggpay.staff import views
from aggpay.staff.forms import StaffAuthenticationForm
from merchants import views as merchant_views
from trades import views_finance as finance_views

app_name = "staff"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="staff:home", permanent=False)),
    path(
        "staff/login/",
        auth_views.LoginView.as_view(authentication_form=StaffAuthenticationForm, redirect_authenticated_user=True),
        name="login",
    ),
    # Django 5 logs out on POST only, so a link crawler or prefetch cannot sign a user out.
    path("staff/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("staff/", views.home, name="home"),
    # The onboarding and risk sections open on their workbench queues (issue 4 "Clerk workbench").
    path("staff/onboarding/", merchant_views.clerk_queue, name="onboarding"),
    path("staff/risk/", merchant_views.review_queue, name="risk"),
    path("staff/support/", views.support, name="support"),
    path("staff/operations/", views.operations, name="operations"),
    # Finance opens on the fees and profit report and the merchant statement lookup (trades.views_finance).
    path("staff/finance/", finance_views.finance, name="finance"),
    path("staff/finance/fees.csv", finance_views.fees_csv, name="finance_fees_csv"),
    path("staff/finance/statement.csv", finance_views.statement_csv, name="finance_statement_csv"),
    path("staff/admin/", views.admin, name="admin"),
    path("staff/admin/audit/", views.audit, name="audit"),
]
