"""Inbox API (mounted at /api/v1/): reviews/…"""

from __future__ import annotations

from django.urls import path

from studio.inbox import api

urlpatterns = [
    path("", api.ReviewListApi.as_view(), name="reviews"),
    path("metrics/", api.ReviewMetricsApi.as_view(), name="review_metrics"),
    path("bulk-decide/", api.ReviewBulkDecideApi.as_view(), name="reviews_bulk_decide"),
    path("<int:pk>/", api.ReviewDetailApi.as_view(), name="review"),
    path("<int:pk>/claim/", api.ReviewClaimApi.as_view(), name="review_claim"),
    path("<int:pk>/release/", api.ReviewReleaseApi.as_view(), name="review_release"),
    path("<int:pk>/decide/", api.ReviewDecideApi.as_view(), name="review_decide"),
]
