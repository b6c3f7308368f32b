from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from flows import views as flow_views
from studio import views
from studio.governance import api as governance_api
from studio.governance import views as governance_views
from studio.telemetry import api as telemetry_api
from studio.telemetry import views as telemetry_views
from studio.tenants import api as tenant_api
from studio.tenants import views as tenant_views

api_v1 = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("me/", tenant_api.MeApi.as_view(), name="me"),
    path("secrets/", tenant_api.SecretListApi.as_view(), name="secrets"),
    path("secrets/<int:pk>/", tenant_api.SecretDetailApi.as_view(), name="secret"),
    path("api-keys/", tenant_api.ApiKeyListApi.as_view(), name="api_keys"),
    path("api-keys/<int:pk>/", tenant_api.ApiKeyDetailApi.as_view(), name="api_key"),
    path("reviews/", include("studio.inbox.urls_api")),
    path("memory/", include("studio.memory.urls_api")),
    path("metrics/summary/", telemetry_api.MetricsSummaryApi.as_view(), name="metrics_summary"),
    path("audit/export/", governance_api.AuditExportApi.as_view(), name="audit_export"),
    path("redaction-rules/", governance_api.RedactionRuleListApi.as_view(), name="redaction_rules"),
    path(
        "redaction-rules/<str:name>/", governance_api.RedactionRuleDetailApi.as_view(), name="redaction_rule"
    ),
    # Last: an include without a prefix of its own is searched whole (and its misses listed) by
    # every path that reaches it; the ones above are passed over on their prefix.
    path("", include("flows.urls_api")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", telemetry_views.prometheus_metrics, name="metrics"),
    path("login/", tenant_views.SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tenants/switch/", tenant_views.tenant_switch, name="tenant_switch"),
    path("account/", tenant_views.account, name="account"),
    path("flows/", include("flows.urls")),
    path("runs/<int:pk>/", flow_views.run_detail, name="run"),
    *[
        path(f"runs/<int:pk>/{action}/", flow_views.run_action, {"action": action}, name=f"run_{action}")
        for action in ("cancel", "retry", "replay")
    ],
    path("inbox/", include("studio.inbox.urls")),
    path("dashboard/", telemetry_views.dashboard, name="dashboard"),
    path("settings/memory/", include("studio.memory.urls")),
    path("settings/", include("flows.urls_settings")),
    path("settings/audit/", governance_views.audit_log, name="audit"),
    path("settings/audit/export/", governance_views.audit_export, name="audit_export"),
    path("settings/redaction/", governance_views.redaction_rules, name="redaction"),
    path("settings/", include("studio.tenants.urls")),
    path("api/v1/", include((api_v1, "api"))),
    path("admin/", admin.site.urls),
]

handler400 = "studio.views.bad_request"
handler403 = "studio.views.permission_denied"
handler404 = "studio.views.not_found"
handler500 = "studio.views.server_error"
