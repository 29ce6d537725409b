"""Staff shell URLs (namespace ``staff``). Channel pages are mounted separately at /staff/channels/."""

from django.contrib.auth import views as auth_views
from django.urls import path
from django.views.generic import RedirectView

from aggpay.staff import views
from aggpay.staff.forms import StaffAuthenticationForm

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
    path("staff/onboarding/", views.onboarding, name="onboarding"),
    path("staff/risk/", views.risk, name="risk"),
    path("staff/support/", views.support, name="support"),
    path("staff/operations/", views.operations, name="operations"),
    path("staff/finance/", views.finance, name="finance"),
    path("staff/admin/", views.admin, name="admin"),
    path("staff/admin/audit/", views.audit, name="audit"),
]
