"""Channel configuration pages and the queue of callbacks not processed for operations, and risk's refused callbacks
and answers, mounted at /staff/channels/ by aggpay/urls.py (namespace ``channels``)."""

from django.urls import path

from channels import views, views_risk

app_name = "channels"

urlpatterns = [
    # Risk's queue of refused callbacks (views_risk). Two segments and more, so no account code is shadowed.
    path("security/callbacks/", views_risk.refused_callbacks, name="refused_callbacks"),
    path("security/callbacks/review/", views_risk.refused_callbacks_review, name="refused_callbacks_review"),
    path("security/callbacks/<int:pk>/", views_risk.refused_callback_detail, name="refused_callback"),
    # … and its second tab: channel answers to our queries that the same cross-check refused.
    path("security/answers/", views_risk.refused_answers, name="refused_answers"),
    path("security/answers/review/", views_risk.refused_answers_review, name="refused_answers_review"),
    path("security/answers/<int:pk>/", views_risk.refused_answer_detail, name="refused_answer"),
    # Operations' queue of callbacks we did not process (views.unprocessed_callbacks); two segments, the second no
    # account page's, so no account code is shadowed.
    path("callbacks/unprocessed/", views.unprocessed_callbacks, name="unprocessed_callbacks"),
    path("", views.account_list, name="account_list"),
    path("new/", views.account_create, name="account_create"),
    path("<slug:code>/", views.account_detail, name="account_detail"),
    path("<slug:code>/edit/", views.account_edit, name="account_edit"),
    path("<slug:code>/enable/", views.account_enable, name="account_enable"),
    path("<slug:code>/disable/", views.account_disable, name="account_disable"),
    path("<slug:code>/products/", views.product_add, name="product_add"),
    path("<slug:code>/products/<str:product>/", views.product_edit, name="product_edit"),
    path("<slug:code>/evaluation/", views.evaluation_current, name="evaluation_current"),
    path("<slug:code>/evaluation/start/", views.evaluation_start, name="evaluation_start"),
    path("<slug:code>/evaluations/<int:pk>/", views.evaluation_detail, name="evaluation_detail"),
    path("<slug:code>/evaluations/<int:pk>/<slug:action>/", views.evaluation_transition,
         name="evaluation_transition"),
]
