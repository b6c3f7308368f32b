from __future__ import annotations

from django.urls import path

from flows import api

urlpatterns = [
    path("node-types/", api.NodeTypesApi.as_view(), name="node_types"),
    path("flows/", api.FlowListApi.as_view(), name="flows"),
    path("flows/import/", api.ImportApi.as_view(), name="flow_import"),
    path("flows/<int:pk>/", api.FlowDetailApi.as_view(), name="flow"),
    path("flows/<int:pk>/duplicate/", api.FlowDuplicateApi.as_view(), name="flow_duplicate"),
    path("flows/<int:pk>/draft/", api.DraftApi.as_view(), name="flow_draft"),
    path("flows/<int:pk>/publish/", api.PublishApi.as_view(), name="flow_publish"),
    path("flows/<int:pk>/versions/", api.VersionListApi.as_view(), name="flow_versions"),
    path("flows/<int:pk>/versions/<int:number>/", api.VersionDetailApi.as_view(), name="flow_version"),
    path(
        "flows/<int:pk>/versions/<int:number>/restore/", api.VersionRestoreApi.as_view(), name="flow_restore"
    ),
    path("flows/<int:pk>/export/", api.ExportApi.as_view(), name="flow_export"),
    path("flows/<int:pk>/runs/", api.FlowRunsApi.as_view(), name="flow_runs"),
    path("runs/<int:pk>/", api.RunDetailApi.as_view(), name="run"),
    path("runs/<int:pk>/cancel/", api.RunCancelApi.as_view(), name="run_cancel"),
    path("runs/<int:pk>/retry/", api.RunRetryApi.as_view(), name="run_retry"),
    path("runs/<int:pk>/replay/", api.RunReplayApi.as_view(), name="run_replay"),
    path("hooks/<str:token>/", api.WebhookApi.as_view(), name="webhook"),
    path("policies/", api.PolicyListApi.as_view(), name="policies"),
    path("policies/<str:name>/", api.PolicyDetailApi.as_view(), name="policy"),
]
