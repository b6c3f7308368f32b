"""Inbox API (mounted at /api/v1/): reviews/…"""

from __future__ import annotations

from django.urls import path

from studio.inbox import api

urlpatterns = [
    path("reviews/", api.ReviewListApi.as_view(), name="reviews"),
    path("reviews/metrics/", api.ReviewMetricsApi.as_view(), name="review_metrics"),
    path("reviews/bulk-decide/", api.ReviewBulkDecideApi.as_view(), name="reviews_bulk_decide"),
    path("reviews/<int:pk>/", api.ReviewDetailApi.as_view(), name="review"),
    path("reviews/<int:pk>/claim/", api.ReviewClaimApi.as_view(), name="review_claim"),
    path("reviews/<int:pk>/release/", api.ReviewReleaseApi.as_view(), name="review_release"),
    path("reviews/<int:pk>/decide/", api.ReviewDecideApi.as_view(), name="review_decide"),
]
